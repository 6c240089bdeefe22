"""Helpers shared by test_core_swim_suspicion.py and test_core_swim_health.py: cores on
a tick grid and a small driver that delivers one core's effects to scripted peers."""

from __future__ import annotations

from collections.abc import Iterable

# Re-exported: the driver tests take their constants and cores from here too.
from swim_support import A_ADDR, EPS, LAN, LOCAL, TICK, addr, make_core  # noqa: F401

from dynago.config import Config
from dynago.core import (
    Member,
    MemberEvent,
    MembershipCore,
    Publish,
    Send,
)
from dynago.core.messages import Ack, Effect, Ping


def peers(count: int, *, base_port: int = 8000) -> dict[str, Member]:
    width = len(str(count - 1))
    return {
        f"p{i:0{width}d}": Member(f"p{i:0{width}d}", addr(base_port + i)) for i in range(count)
    }


def with_peers(
    count: int, *, config: Config = LOCAL, seed: int = 1
) -> tuple[MembershipCore, dict[str, Member]]:
    """Node "a" that knows ``count`` ALIVE peers (learnt at time 0)."""
    core = make_core(config=config, seed=seed)
    members = peers(count)
    core.merge(members.values(), 0.0)
    return core, members


def sends(effects: Iterable[Effect], kind: type | None = None) -> list[Send]:
    return [
        e for e in effects if isinstance(e, Send) and (kind is None or isinstance(e.message, kind))
    ]


def events(effects: Iterable[Effect]) -> list[MemberEvent]:
    return [e.event for e in effects if isinstance(e, Publish)]


def held(core: MembershipCore, name: str) -> Member:
    record = core.get(name)
    assert record is not None, f"{core.name} does not know {name}"
    return record.member


def ticks(start: float, stop: float, step: float = TICK) -> list[float]:
    out: list[float] = []
    k = 0
    while (now := start + k * step) < stop - EPS:
        out.append(now)
        k += 1
    return out


class Driver:
    """Ticks one core on an unbroken grid; Pings to ``responders`` are acked at once."""

    def __init__(self, core: MembershipCore, responders: dict[str, Member], now: float = 0.0):
        self.core = core
        self.responders = dict(responders)
        self.step = core.config.tick_interval_s
        self.start = now
        self.k = 0
        self.log: list[tuple[float, Effect]] = []

    @property
    def now(self) -> float:
        """The time of the last tick (or the start)."""
        return self.start + max(0, self.k - 1) * self.step

    def run_until(self, stop: float, *, answer: bool = True) -> list[tuple[float, Effect]]:
        """Tick on the grid up to (not including) ``stop``; the effects, with times."""
        out: list[tuple[float, Effect]] = []
        while (now := self.start + self.k * self.step) < stop - EPS:
            self.k += 1
            for effect in self.core.tick(now):
                out.append((now, effect))
                if (answer and isinstance(effect, Send) and isinstance(effect.message, Ping)
                        and effect.to in self.responders):
                    self.core.handle(
                        effect.to, Ack(effect.message.seq, self.responders[effect.to]), now
                    )
        self.log.extend(out)
        return out

    def next_ping(self, limit: float = 10.0, *, answer: bool = True) -> tuple[float, Send]:
        """Tick until the core sends a Ping; (when, the Send). With ``answer`` False, the
        Pings of that tick are not acked, even to responders."""
        stop = self.now + limit
        while (now := self.start + self.k * self.step) < stop:
            out = self.run_until(now + self.step / 2, answer=answer)
            pings = [(t, e) for t, e in out if isinstance(e, Send) and isinstance(e.message, Ping)]
            if pings:
                return pings[0]
        raise AssertionError("no Ping")
