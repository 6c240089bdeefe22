"""Helpers shared by the one-node SWIM tests (test_core_swim.py,
test_core_swim_hint_leave.py): cores on a tick grid, effect filters, peers."""

from __future__ import annotations

import random
from collections.abc import Iterable

from dynago.config import Config
from dynago.core import (
    Member,
    MemberEvent,
    MembershipCore,
    Publish,
    Send,
)
from dynago.core.messages import Ack, Effect, Ping

LOCAL = Config.local()
LAN = Config.lan()
TICK = LOCAL.tick_interval_s
EPS = 1e-9


def addr(port: int) -> str:
    return f"127.0.0.1:{port}"


A_ADDR = addr(7001)


def make_core(
    name: str = "a",
    port: int = 7001,
    *,
    config: Config = LOCAL,
    seed: int = 1,
    now: float = 0.0,
    seeds: Iterable[str] = (),
) -> MembershipCore:
    return MembershipCore(name, addr(port), config, random.Random(seed), now, seeds)


def peers(count: int, *, base_port: int = 8000) -> list[Member]:
    return [Member(f"p{i}", addr(base_port + i)) for i in range(count)]


def with_peers(
    count: int, *, config: Config = LOCAL, seed: int = 1
) -> tuple[MembershipCore, dict[str, Member]]:
    """Node "a" that knows ``count`` ALIVE peers p0.. (learnt at time 0)."""
    core = make_core(config=config, seed=seed)
    members = peers(count)
    core.merge(members, 0.0)
    return core, {m.name: m for m in members}


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
    """The tick grid start, start+step, ... below stop (computed, not accumulated)."""
    out: list[float] = []
    k = 0
    while (now := start + k * step) < stop - EPS:
        out.append(now)
        k += 1
    return out


def tick_range(core: MembershipCore, start: float, stop: float) -> list[tuple[float, Effect]]:
    """Tick ``core`` every tick_interval_s from ``start`` (inclusive) to ``stop`` (exclusive)."""
    return [
        (now, effect)
        for now in ticks(start, stop, core.config.tick_interval_s)
        for effect in core.tick(now)
    ]


def tick_range_answering(
    core: MembershipCore, start: float, stop: float, responders: dict[str, Member]
) -> list[tuple[float, Effect]]:
    """Like tick_range, but every Ping to a name in ``responders`` is acked at once with
    that member's record (a healthy peer)."""
    out: list[tuple[float, Effect]] = []
    for now in ticks(start, stop, core.config.tick_interval_s):
        for effect in core.tick(now):
            out.append((now, effect))
            if (isinstance(effect, Send) and isinstance(effect.message, Ping)
                    and effect.to in responders):
                core.handle(effect.to, Ack(effect.message.seq, responders[effect.to]), now)
    return out


def first_ping(core: MembershipCore, start: float = 0.0) -> tuple[float, Send]:
    """Tick ``core`` from ``start`` until it sends a Ping; (when, the Send)."""
    for now in ticks(start, start + 10 * core.config.probe_interval_s, core.config.tick_interval_s):
        pings = sends(core.tick(now), Ping)
        if pings:
            assert len(pings) == 1
            return now, pings[0]
    raise AssertionError("no Ping within ten protocol periods")


def ping_of(send: Send) -> Ping:
    assert isinstance(send.message, Ping)
    return send.message
