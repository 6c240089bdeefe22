"""Simulation scenarios and what each measures.

Every scenario starts from a cluster (converged, except the joiners of ``join``), makes
one thing happen at a fixed time, and watches every node's member events to time when
each node saw it. Times are reported in seconds, in probe periods and, for what spreads
by gossip, in gossip rounds, as median / p99 / max over the nodes.

* ``join``    — a wave of new nodes (1 % of N, at least 1, at most 100) starts over one
  second, each with a random member of the converged rest as its seed: time from the last
  joiner's start until each node lists all N alive.
* ``crash``   — one random member stops silently (no stream is closed, no notice): first
  suspicion anywhere, and time until each survivor holds it failed.
* ``leave``   — one random member leaves gracefully: time until each node holds it left.
* ``partition`` — the cluster splits into two random halves for 40 % of the run, then
  heals: time until each node holds the whole other half failed, and, after the heal,
  until each node lists all N alive again.
* ``loss``    — the crash scenario once per message-loss rate of a sweep.

A suspicion or failure of a member that is running and reachable from the node that
raised it is false; every scenario counts them.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynago.config import Config
from dynago.core.messages import EventKind, MemberEvent
from dynago.sim.args import DEFAULT_LOSS_RATES, KV_SCENARIOS, SCENARIOS
from dynago.sim.cluster import SimCluster
from dynago.sim.nodes import node_address, node_name

EVENT_AT_S = 5.0
"""When the scenario's event happens (or a quarter of the run, if that is earlier)."""


@dataclass(frozen=True, slots=True)
class SimOptions:
    nodes: int
    duration_s: float
    seed: int
    scenario: str
    config: Config
    preset: str = "lan"
    latency_s: float = 0.001
    loss: float = 0.0
    loss_rates: tuple[float, ...] = DEFAULT_LOSS_RATES
    count_bytes: bool = True
    keep_log: bool = False
    workers: int = 1
    """Processes that share the nodes (at most the machine's cores make sense)."""
    kv_clients: int = 6
    """KV scenarios: simulated clients."""
    seeds: int = 1
    """KV scenarios: run seeds ``seed`` to ``seed + seeds - 1`` and summarize them."""

    def problem(self) -> str | None:
        """Why these options cannot run, or None."""
        if self.scenario not in SCENARIOS + KV_SCENARIOS:
            return (f"unknown scenario {self.scenario!r} "
                    f"(one of: {', '.join(SCENARIOS + KV_SCENARIOS)})")
        if self.scenario in KV_SCENARIOS:
            if self.workers != 1:
                return "the KV scenarios run in one process (--workers 1)"
            if not 1 <= self.kv_clients <= 1000:
                return "--kv-clients must be between 1 and 1000"
            if not 1 <= self.seeds <= 100_000:
                return "--seeds must be between 1 and 100000"
            if not 5.0 <= self.duration_s <= 3600.0:
                return "a KV scenario's --duration must be between 5 and 3600 seconds"
        elif self.seeds != 1:
            return "--seeds is for the KV scenarios"
        if not 2 <= self.nodes <= self.config.max_members:
            return f"--nodes must be between 2 and {self.config.max_members}"
        if self.scenario == "partition" and self.nodes < 4:
            return "the partition scenario needs at least 4 nodes"
        if not 1.0 <= self.duration_s <= 86400.0:
            return "--duration must be between 1 and 86400 seconds"
        if not 0.0 <= self.loss < 1.0 or any(not 0.0 <= r < 1.0 for r in self.loss_rates):
            return "loss rates must be in [0, 1)"
        if not 0.0 < self.latency_s <= 10.0:
            return "--latency-ms must be above 0 and at most 10000"
        if not 1 <= self.workers <= 64 or self.workers > self.nodes:
            return "--workers must be between 1 and 64, and at most --nodes"
        return None


@dataclass(slots=True)
class Watch:
    """Observes every member event; the scenario reads what it needs afterwards.

    A suspicion is false when the suspect was running and reachable from the node that
    raised it throughout the probe that failed (the protocol period before it); a
    failure is false when the suspect was running and reachable throughout, from when
    that node first held it suspect.
    """

    probe_period_s: float
    down: set[str] = field(default_factory=set)
    """Members that were stopped: suspecting them is not false."""
    cuts: list[tuple[float, float, Callable[[str, str], bool]]] = field(default_factory=list)
    """(from, until, cut): between those times, node a could not reach b if cut(a, b)."""
    live_count: dict[str, int] = field(default_factory=dict)
    suspected_at: dict[tuple[str, str], float] = field(default_factory=dict)
    false_suspicions: int = 0
    false_failures: int = 0
    on_event: list[Callable[[float, str, MemberEvent], None]] = field(default_factory=list)

    def unreachable(self, node: str, member: str, start: float, end: float) -> bool:
        """Whether ``node`` could not reach ``member`` at some time in [start, end]."""
        return any(begin <= end and start <= until and cut(node, member)
                   for begin, until, cut in self.cuts)

    def __call__(self, now: float, node: str, event: MemberEvent) -> None:
        member = event.member
        previous = event.previous
        was_live = previous is not None and previous.status.is_live
        delta = int(member.status.is_live) - int(was_live)
        if delta:
            self.live_count[node] = self.live_count.get(node, 0) + delta
        kind = event.kind
        if kind is EventKind.SUSPECTED:
            self.suspected_at.setdefault((node, member.name), now)
            if (member.origin == node and member.name not in self.down
                    and not self.unreachable(node, member.name, now - self.probe_period_s,
                                             now)):
                self.false_suspicions += 1
        elif kind is EventKind.FAILED:
            since = self.suspected_at.pop((node, member.name), now)
            if (member.origin == node and member.name not in self.down
                    and not self.unreachable(node, member.name, since, now)):
                self.false_failures += 1
        elif kind in (EventKind.JOINED, EventKind.CHANGED):
            self.suspected_at.pop((node, member.name), None)
        for callback in self.on_event:
            callback(now, node, event)


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """Median, p99 and max of ``values`` (None if there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {"median": round(statistics.median(ordered), 4), "p99": round(p99, 4),
            "max": round(ordered[-1], 4)}


def timing(values: Sequence[float], config: Config, *, gossip: bool = False) -> dict[str, Any]:
    """A latency over nodes in seconds, probe periods and (if ``gossip``) gossip rounds."""
    seconds = spread(values)
    out: dict[str, Any] = {"nodes": len(values), "seconds": seconds}
    if seconds is not None:
        out["probe_periods"] = {k: round(v / config.probe_interval_s, 2)
                                for k, v in seconds.items()}
        if gossip:
            out["gossip_rounds"] = {k: round(v / config.gossip_interval_s, 2)
                                    for k, v in seconds.items()}
    return out


def event_time(options: SimOptions) -> float:
    return min(EVENT_AT_S, options.duration_s / 4)


@dataclass(slots=True)
class Outcome:
    """What one worker saw: ``meta`` is the same on every worker (drawn from the
    scenario's own random stream); ``times`` maps a measure to node -> seconds, for the
    nodes this worker ran, and merges across workers by union."""

    meta: dict[str, Any]
    times: dict[str, dict[str, float]]


def _first_times(
    watch: Watch, subject: str, kind: EventKind, since: float
) -> dict[str, float]:
    """node -> first time from ``since`` on that it published ``kind`` about ``subject``
    (filled while running)."""
    times: dict[str, float] = {}

    def record(now: float, node: str, event: MemberEvent) -> None:
        if (event.kind is kind and event.member.name == subject and node not in times
                and now >= since):
            times[node] = now

    watch.on_event.append(record)
    return times


def drive_join(sim: SimCluster, watch: Watch, options: SimOptions,
               rng: random.Random) -> Outcome:
    n = options.nodes
    wave = max(1, min(100, n // 100))
    settled = n - wave
    for name in sim.converged(settled):
        watch.live_count[name] = settled
    start = event_time(options)
    step = 1.0 / wave
    reached: dict[str, float] = {}

    def record(now: float, node: str, _event: MemberEvent) -> None:
        if watch.live_count.get(node) == n and node not in reached:
            reached[node] = now

    watch.on_event.append(record)
    last_start = start
    for i in range(wave):
        last_start = start + i * step
        sim.run_until(last_start)
        index = settled + i
        seed = node_address(rng.randrange(settled))
        watch.live_count[node_name(index)] = 1
        sim.add_node(node_name(index), node_address(index), seeds=[seed])
    sim.run_until(options.duration_s)
    return Outcome({"joiners": wave, "wave_s": round((wave - 1) * step, 4),
                    "last_start": last_start},
                   {"reached": reached})


def summarize_join(options: SimOptions, meta: dict[str, Any],
                   times: dict[str, dict[str, float]]) -> dict[str, Any]:
    last = meta["last_start"]
    reached = times["reached"]
    return {
        "joiners": meta["joiners"],
        "wave_s": meta["wave_s"],
        "all_alive_everywhere": timing([max(0.0, t - last) for t in reached.values()],
                                       options.config, gossip=True),
        "nodes_not_converged": options.nodes - len(reached),
    }


def drive_crash(sim: SimCluster, watch: Watch, options: SimOptions,
                rng: random.Random) -> Outcome:
    n = options.nodes
    sim.converged(n)
    victim = node_name(rng.randrange(n))
    at = event_time(options)
    suspected = _first_times(watch, victim, EventKind.SUSPECTED, at)
    failed = _first_times(watch, victim, EventKind.FAILED, at)
    sim.run_until(at)
    sim.crash(victim)
    watch.down.add(victim)
    sim.run_until(options.duration_s)
    return Outcome({"victim": victim, "at": at},
                   {"suspected": suspected, "failed": failed})


def summarize_crash(options: SimOptions, meta: dict[str, Any],
                    times: dict[str, dict[str, float]]) -> dict[str, Any]:
    at = meta["at"]
    first = min(times["suspected"].values(), default=None)
    failed = times["failed"]
    return {
        "victim": meta["victim"],
        "first_suspicion_s": None if first is None else round(first - at, 4),
        "first_suspicion_probe_periods": (
            None if first is None else round((first - at) / options.config.probe_interval_s, 2)),
        "failed_everywhere": timing([t - at for t in failed.values()], options.config,
                                    gossip=True),
        "survivors_not_knowing": (options.nodes - 1) - len(failed),
    }


def drive_leave(sim: SimCluster, watch: Watch, options: SimOptions,
                rng: random.Random) -> Outcome:
    n = options.nodes
    sim.converged(n)
    leaver = node_name(rng.randrange(n))
    at = event_time(options)
    left = _first_times(watch, leaver, EventKind.LEFT, at)
    sim.run_until(at)
    sim.leave(leaver)
    # A real node flushes its notice, then exits (within 2 s).
    sim.run_until(min(options.duration_s, at + 1.0))
    sim.crash(leaver)
    watch.down.add(leaver)
    sim.run_until(options.duration_s)
    left.pop(leaver, None)
    return Outcome({"leaver": leaver, "at": at}, {"left": left})


def summarize_leave(options: SimOptions, meta: dict[str, Any],
                    times: dict[str, dict[str, float]]) -> dict[str, Any]:
    left = times["left"]
    return {
        "leaver": meta["leaver"],
        "left_everywhere": timing([t - meta["at"] for t in left.values()], options.config,
                                  gossip=True),
        "nodes_not_knowing": (options.nodes - 1) - len(left),
    }


def drive_partition(sim: SimCluster, watch: Watch, options: SimOptions,
                    rng: random.Random) -> Outcome:
    n = options.nodes
    names = sim.converged(n)
    for name in names:
        watch.live_count[name] = n
    order = names.copy()
    rng.shuffle(order)
    side_a, side_b = order[: n // 2], order[n // 2:]
    side_of = {name: 0 for name in side_a} | {name: 1 for name in side_b}
    split_at = event_time(options)
    heal_at = split_at + 0.4 * options.duration_s
    detected: dict[str, float] = {}
    healed: dict[str, float] = {}
    state = {"healed": False}

    def record(now: float, node: str, _event: MemberEvent) -> None:
        live = watch.live_count.get(node, 0)
        own_side = len(side_a) if side_of[node] == 0 else len(side_b)
        if not state["healed"] and live == own_side and node not in detected:
            detected[node] = now
        if state["healed"] and live == n and node not in healed:
            healed[node] = now

    watch.on_event.append(record)
    watch.cuts.append((split_at, heal_at, lambda a, b: side_of.get(a) != side_of.get(b)))
    sim.run_until(split_at)
    sim.network.partition(side_a, side_b)
    sim.run_until(heal_at)
    sim.network.heal()
    state["healed"] = True
    for name in sim.nodes:
        if watch.live_count.get(name) == n:
            healed[name] = heal_at
    sim.run_until(options.duration_s)
    return Outcome({"sides": [len(side_a), len(side_b)], "split_at": split_at,
                    "heal_at": heal_at},
                   {"detected": detected, "healed": healed})


def summarize_partition(options: SimOptions, meta: dict[str, Any],
                        times: dict[str, dict[str, float]]) -> dict[str, Any]:
    split_at, heal_at = meta["split_at"], meta["heal_at"]
    n = options.nodes
    return {
        "sides": meta["sides"],
        "split_s": round(heal_at - split_at, 4),
        "other_side_failed": timing([t - split_at for t in times["detected"].values()],
                                    options.config, gossip=True),
        "all_alive_after_heal": timing([t - heal_at for t in times["healed"].values()],
                                       options.config, gossip=True),
        "nodes_not_detecting": n - len(times["detected"]),
        "nodes_not_healed": n - len(times["healed"]),
    }


Driver = Callable[[SimCluster, Watch, SimOptions, random.Random], Outcome]
Summary = Callable[[SimOptions, dict[str, Any], dict[str, dict[str, float]]], dict[str, Any]]

SCENARIO_STEPS: dict[str, tuple[Driver, Summary]] = {
    "join": (drive_join, summarize_join),
    "crash": (drive_crash, summarize_crash),
    "leave": (drive_leave, summarize_leave),
    "partition": (drive_partition, summarize_partition),
}
