"""Whole-cluster SWIM scenarios: several MembershipCores driven by an in-memory network
in simulated time — a crash, a partition and its healing, a paused node, determinism, and
clocks that differ by a constant.

Rules are cited from SWIM (Das, Gupta, Motivala, DSN 2002) and Lifeguard (Dadgar,
Phillips, Currey, 2018) by section, and from the header of dynago/core/membership.py.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import pytest

from dynago.config import Config
from dynago.core import EventKind, Member, MemberEvent, MembershipCore, Publish, Send, Status
from dynago.core.messages import CoreMessage, DialSeed, Effect
from dynago.core.suspicion import suspicion_bounds

LOCAL = Config.local()
TICK = LOCAL.tick_interval_s
EPS = 1e-9
NAMES = ["a", "b", "c", "d", "e"]


def addr(port: int) -> str:
    return f"127.0.0.1:{port}"


class Sim:
    """An in-memory network of cores in simulated time.

    Every core is ticked every tick_interval_s (in name order); a Send is delivered at
    once, in FIFO order, unless the link is cut or an end has crashed. A crashed node
    neither ticks nor handles, and messages to it vanish. A paused node neither ticks nor
    handles either, but its inbound messages are queued and delivered, in order, when it
    resumes. ``offsets`` adds a constant to every ``now`` one node is given (its clock).
    """

    def __init__(
        self,
        names: Iterable[str] = NAMES,
        *,
        config: Config = LOCAL,
        seed: int = 0,
        offsets: Mapping[str, float] | None = None,
    ) -> None:
        self.names = sorted(names)
        self.config = config
        self.offsets = dict(offsets or {})
        self.step = config.tick_interval_s
        self.k = 0
        self.members = {n: Member(n, addr(7001 + i)) for i, n in enumerate(self.names)}
        self.cores: dict[str, MembershipCore] = {}
        for i, name in enumerate(self.names):
            me = self.members[name]
            core = MembershipCore(name, me.address, config, random.Random(seed * 1000 + i),
                                  self.clock(name, 0.0))
            core.merge([m for n, m in self.members.items() if n != name], self.clock(name, 0.0))
            self.cores[name] = core
        self.cut: set[tuple[str, str]] = set()
        self.crashed: set[str] = set()
        self.paused: set[str] = set()
        self.inbox: dict[str, list[tuple[str, CoreMessage]]] = {n: [] for n in self.names}
        self.log: list[tuple[float, str, MemberEvent]] = []
        self.delivered = 0

    # ------------------------------------------------------------------ time

    @property
    def now(self) -> float:
        return self.k * self.step

    def clock(self, name: str, now: float) -> float:
        return now + self.offsets.get(name, 0.0)

    def up(self, name: str) -> bool:
        return name not in self.crashed and name not in self.paused

    def tick(self) -> None:
        now = self.now
        for name in self.names:
            if self.up(name):
                self._dispatch(name, self.cores[name].tick(self.clock(name, now)), now)
        self.k += 1

    def run_until(self, done: Callable[[], bool], limit_s: float) -> float | None:
        """Tick until ``done()`` (checked after every tick); the simulated time that took,
        or None if ``limit_s`` passed first."""
        start = self.now
        while self.now <= start + limit_s + EPS:
            self.tick()
            if done():
                return self.now - self.step - start
        return None

    def run_for(self, seconds: float) -> None:
        stop = self.now + seconds
        while self.now < stop - EPS:
            self.tick()

    # ------------------------------------------------------------------ faults

    def partition(self, left: Iterable[str], right: Iterable[str]) -> None:
        for x in left:
            for y in right:
                self.cut |= {(x, y), (y, x)}

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, name: str) -> None:
        self.crashed.add(name)

    def pause(self, name: str) -> None:
        self.paused.add(name)

    def resume(self, name: str) -> None:
        """Wake ``name`` up: its queued inbound messages are handled first, in order."""
        self.paused.discard(name)
        queued, self.inbox[name] = self.inbox[name], []
        now = self.now
        for source, message in queued:
            self._dispatch(name, self.cores[name].handle(source, message,
                                                         self.clock(name, now)), now)

    # ------------------------------------------------------------------ delivery

    def _dispatch(self, origin: str, effects: Iterable[Effect], now: float) -> None:
        queue: deque[tuple[str, Effect]] = deque((origin, e) for e in effects)
        budget = 20_000
        recent: deque[tuple[str, Effect]] = deque(maxlen=4)
        while queue:
            budget -= 1
            assert budget > 0, (
                f"message storm at t={now:.2f}: 20000 deliveries in one instant; "
                f"last: {list(recent)}"
            )
            source, effect = queue.popleft()
            recent.append((source, effect))
            if isinstance(effect, Publish):
                self.log.append((now, source, effect.event))
            elif isinstance(effect, DialSeed):
                raise AssertionError(f"{source} dialled a seed, but no node has seeds")
            else:
                assert isinstance(effect, Send)
                to = effect.to
                assert to in self.cores, f"{source} sent to unknown {to}"
                if effect.address:
                    assert effect.address == self.members[to].address
                if (source, to) in self.cut or to in self.crashed or source in self.crashed:
                    continue
                if to in self.paused:
                    self.inbox[to].append((source, effect.message))
                    continue
                self.delivered += 1
                out = self.cores[to].handle(source, effect.message, self.clock(to, now))
                queue.extend((to, e) for e in out)

    # ------------------------------------------------------------------ views

    def status(self, observer: str, name: str) -> Status | None:
        record = self.cores[observer].get(name)
        return record.member.status if record is not None else None

    def holds_everywhere(self, name: str, status: Status,
                         observers: Iterable[str] | None = None) -> bool:
        observers = [o for o in (observers or self.names) if o != name]
        return all(self.status(o, name) is status for o in observers)

    def all_alive(self) -> bool:
        return all(self.status(o, n) is Status.ALIVE for o in self.names for n in self.names)

    def views(self) -> dict[str, list[tuple[str, Status, int]]]:
        return {
            o: [(r.member.name, r.member.status, r.member.incarnation)
                for r in self.cores[o].records()]
            for o in self.names
        }

    def alarms_about(self, names: Iterable[str]) -> list[tuple[float, str, MemberEvent]]:
        """SUSPECTED or FAILED events, seen anywhere, about any of ``names``."""
        watched = set(names)
        return [
            entry for entry in self.log
            if entry[2].member.name in watched
            and entry[2].kind in (EventKind.SUSPECTED, EventKind.FAILED)
        ]


def bounds(n: int, config: Config = LOCAL) -> tuple[float, float]:
    return suspicion_bounds(config.suspicion_mult, config.suspicion_max_timeout_mult,
                            config.probe_interval_s, n)


# ====================================================================== crash


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cluster_crash_detected_everywhere_without_false_alarms(seed: int) -> None:
    """SWIM §3.1, §4.2 / Lifeguard §IV-B: five nodes, one crashes (stops, its messages
    vanish): every survivor holds it FAILED within probe_interval + maximum suspicion
    timeout + 1 s, and no survivor is ever SUSPECT or FAILED in any view (no false
    alarms, before or after the crash)."""
    sim = Sim(seed=seed)
    sim.run_for(3.0)
    assert sim.all_alive()
    victim = NAMES[seed % len(NAMES)]
    survivors = [n for n in NAMES if n != victim]
    sim.crash(victim)
    _, maximum = bounds(len(NAMES))
    limit = LOCAL.probe_interval_s + maximum + 1.0
    took = sim.run_until(lambda: sim.holds_everywhere(victim, Status.FAILED, survivors), limit)
    assert took is not None, sim.views()
    sim.run_for(3.0)
    assert sim.alarms_about(survivors) == []
    for observer in survivors:
        for name in survivors:
            assert sim.status(observer, name) is Status.ALIVE
        assert sim.status(observer, victim) is Status.FAILED


# ====================================================================== partition


@pytest.mark.parametrize("seed", range(6))
def test_cluster_partition_each_side_fails_other_then_heals(seed: int) -> None:
    """SWIM §4.2 and membership.py (every reconnect_interval_s a failed member gets a
    push-pull; a member held failed that talks is told so and refutes): with links cut
    between {a,b} and {c,d}, each side declares the other FAILED (and never its own
    side); once healed, within 15 s simulated every node holds every node ALIVE, the
    members that were failed at higher incarnations."""
    sim = Sim(["a", "b", "c", "d"], seed=seed)
    sim.run_for(2.0)
    sim.partition(["a", "b"], ["c", "d"])

    def split() -> bool:
        return all(sim.holds_everywhere(x, Status.FAILED, side)
                   for side, other in ((["a", "b"], ["c", "d"]), (["c", "d"], ["a", "b"]))
                   for x in other)

    assert sim.run_until(split, 15.0) is not None, sim.views()
    for x, y in (("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")):
        assert sim.status(x, y) is Status.ALIVE
    sim.heal()
    took = sim.run_until(sim.all_alive, 15.0)
    assert took is not None, sim.views()
    views = sim.views()
    assert all(view == views["a"] for view in views.values())
    assert all(inc >= 1 for _, _, inc in views["a"])


# ====================================================================== paused node


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cluster_pause_shorter_than_minimum_timeout_never_failed(seed: int) -> None:
    """Lifeguard §IV-B (the minimum suspicion timeout is the shortest time a silent
    member can be declared failed) / SWIM §4.2: a node paused (no ticks, no handling, its
    inbound queued) for less than the minimum suspicion timeout is never FAILED anywhere;
    it may be suspected, refutes on resume, and all are ALIVE again."""
    sim = Sim(seed=seed)
    sim.run_for(3.0)
    minimum, _ = bounds(len(NAMES))
    sleeper = "e"
    sim.pause(sleeper)
    sim.run_for(0.9 * minimum)
    sim.resume(sleeper)
    sim.run_for(5.0)
    failed = [entry for entry in sim.alarms_about([sleeper])
              if entry[2].kind is EventKind.FAILED]
    assert failed == []
    assert sim.all_alive(), sim.views()
    assert sim.alarms_about([n for n in NAMES if n != sleeper]) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cluster_pause_longer_than_maximum_timeout_failed_then_back(seed: int) -> None:
    """SWIM §4.2 / Lifeguard §IV-B: a node paused for longer than the maximum suspicion
    timeout (plus a protocol period) is FAILED everywhere; after it resumes it learns so
    (its queued inbound, and answers to what it sends), refutes with a higher incarnation
    and within a few seconds every node holds it ALIVE again. Nobody else is ever
    suspected, the sleeper's own view included."""
    sim = Sim(seed=seed)
    sim.run_for(3.0)
    _, maximum = bounds(len(NAMES))
    sleeper = "e"
    others = [n for n in NAMES if n != sleeper]
    sim.pause(sleeper)
    sim.run_for(LOCAL.probe_interval_s + maximum + 1.0)
    assert sim.holds_everywhere(sleeper, Status.FAILED, others), sim.views()
    sim.resume(sleeper)
    took = sim.run_until(sim.all_alive, 3.0)
    assert took is not None, sim.views()
    assert sim.cores[sleeper].local_member.incarnation >= 1
    for observer in others:
        record = sim.cores[observer].get(sleeper)
        assert record is not None
        assert record.member == sim.cores[sleeper].local_member
    assert sim.alarms_about(others) == []


# ====================================================================== determinism


def _scenario(seed: int, offsets: Mapping[str, float] | None = None) -> Sim:
    """Crash of c and a long pause of e, in a 5-node cluster."""
    sim = Sim(seed=seed, offsets=offsets)
    sim.run_for(2.0)
    sim.crash("c")
    sim.pause("e")
    sim.run_for(5.0)
    sim.resume("e")
    sim.run_for(5.0)
    return sim


def _event_log(sim: Sim) -> list[tuple[int, str, EventKind, Member]]:
    return [(round(now / TICK), observer, ev.kind, ev.member) for now, observer, ev in sim.log]


def test_cluster_same_seed_same_event_log() -> None:
    """membership.py (the core takes its randomness from the seeded Random it is given):
    the same seeds and the same inputs give the identical event log, tick for tick; other
    seeds give another."""
    first, second = _scenario(7), _scenario(7)
    assert _event_log(first) == _event_log(second)
    assert first.views() == second.views()
    assert first.delivered == second.delivered
    assert _event_log(_scenario(8)) != _event_log(first)


def test_cluster_constant_clock_offset_changes_nothing() -> None:
    """member.py (no wall clock of any node takes part) / membership.py (``now`` is
    seconds on the caller's monotonic clock): the core only uses differences of times.
    Adding a constant (+3600 s) to every ``now`` given to one node gives the same final
    statuses and incarnations everywhere."""
    plain = _scenario(5)
    shifted = _scenario(5, {"b": 3600.0})
    assert shifted.views() == plain.views()
    assert shifted.holds_everywhere("c", Status.FAILED, ["a", "b", "d", "e"])
    for name in ("a", "b", "d", "e"):
        assert shifted.holds_everywhere(name, Status.ALIVE, ["a", "b", "d", "e"])
