"""Run a scenario and build its report: measurements next to the analytical references."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import math
import multiprocessing
import os
import random
import resource
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, cast

from dynago.config import Config
from dynago.core.broadcast import retransmit_limit
from dynago.core.member import Member
from dynago.core.messages import Ack, CoreMessage, Gossip, Ping, PingReq, StateSync
from dynago.core.suspicion import suspicion_bounds
from dynago.sim.args import KV_SCENARIOS
from dynago.sim.cluster import SimCluster
from dynago.sim.crossing import EXCHANGE_TIMEOUT_S
from dynago.sim.kv_scenarios import run_kv, run_kv_seeds
from dynago.sim.scenarios import SCENARIO_STEPS, SimOptions, Watch

SWIM_FIRST_DETECTION_PERIODS = math.e / (math.e - 1)
"""SWIM (Das et al. 2002, §3.1): expected protocol periods until some member probes a
failed one, when each of N-1 members picks a target uniformly: 1 / (1 - 1/e) ≈ 1.58."""


def references(config: Config, nodes: int) -> dict[str, Any]:
    """What theory predicts for this configuration and cluster size."""
    period = config.probe_interval_s
    fanout = config.gossip_fanout
    rounds = math.log(nodes, fanout + 1) + math.log(nodes) / fanout
    dissemination = rounds * config.gossip_interval_s
    minimum, maximum = suspicion_bounds(
        config.suspicion_mult, config.suspicion_max_timeout_mult, period, nodes)
    return {
        "first_detection_probe_periods": round(SWIM_FIRST_DETECTION_PERIODS, 3),
        "first_detection_s": round(SWIM_FIRST_DETECTION_PERIODS * period, 4),
        "first_detection_note": "SWIM with synchronous rounds: e/(e-1) periods until the "
                                "round in which a failed member is first probed ends",
        "first_suspicion_s": {"mean": round(2 * period, 4),
                              "median": round((1 + math.log(2)) * period, 4)},
        "first_suspicion_note": "free-running periods (as here): the first probe of the "
                                "failed member starts after ~Exp(one period), and the "
                                "suspicion is raised one period later",
        "dissemination_rounds": round(rounds, 2),
        "dissemination_s": round(dissemination, 4),
        "dissemination_note": f"push gossip with fan-out {fanout} in synchronous rounds "
                              f"reaches N members in about log_(f+1) N + ln N / f rounds",
        "suspicion_timeout_s": {"min": round(minimum, 4), "max": round(maximum, 4)},
        "suspicion_note": "Lifeguard: a suspicion starts at max and shrinks toward min as "
                          "independent members confirm it (min after "
                          f"{max(0, config.suspicion_mult - 2)} confirmation(s))",
        "failed_everywhere_s": round(2 * period + minimum + dissemination, 4),
        "failed_everywhere_note": "first suspicion (mean) + minimum suspicion timeout + "
                                  "dissemination of the failure",
        "retransmit_rounds": retransmit_limit(config.retransmit_mult, nodes),
    }


def message_sizer() -> Callable[[CoreMessage], int]:
    """Bytes of each message as the gRPC transport encodes it (a protobuf Envelope).

    Exact, without encoding millions of messages: probe messages differ only in their
    sequence number, so their size is cached by (kind, record, length of the sequence
    number's varint); gossip and full-state messages are sums of their records' sizes
    (cached per record) plus protobuf's tag and length bytes. Records are immutable and
    shared, so caches are keyed by identity; each entry keeps its record, so an id is
    never reused while its entry lives.
    """
    from dynago.transport import codec

    probes: dict[tuple[type, int, int], tuple[Member, int]] = {}
    field_sizes: dict[int, int] = {}
    """id(record) -> its size as a repeated field."""
    kept: dict[int, Member] = {}
    """id(record) -> record, for every record in ``field_sizes``: keeps each id taken."""
    varint = codec.varint_size

    def record_field(member: Member) -> int:
        """A record as a repeated field: tag, length, record."""
        size = field_sizes.get(id(member))
        if size is None:
            if len(field_sizes) > 1_000_000:
                field_sizes.clear()
                kept.clear()
            length = codec.member_size(member)
            size = field_sizes[id(member)] = 1 + varint(length) + length
            kept[id(member)] = member
        return size

    def records_size(members: tuple[Member, ...]) -> int:
        """The records as a repeated field (a full list holds thousands: summed in C
        when every size is known)."""
        try:
            return sum(map(field_sizes.__getitem__, map(id, members)))
        except KeyError:
            return sum(record_field(member) for member in members)

    def size(message: CoreMessage) -> int:
        kind = type(message)
        if kind is Ping or kind is Ack or kind is PingReq:
            probe = cast(Ping | Ack | PingReq, message)
            member = probe.member if kind is Ack else probe.target  # type: ignore[union-attr]
            key = (kind, id(member), varint(probe.seq))
            known = probes.get(key)
            if known is None or known[0] is not member:
                if len(probes) > 1_000_000:
                    probes.clear()
                known = probes[key] = (member, len(codec.encode(message)))
            return known[1]
        if kind is Gossip:
            body = records_size(cast(Gossip, message).updates)
        elif kind is StateSync:
            sync = cast(StateSync, message)
            body = records_size(sync.members) + 2 * sync.reply_wanted + 2 * sync.last
        else:
            return len(codec.encode(message))
        return 1 + varint(body) + body  # the Envelope's field: tag, length, message

    return size


def _run_part(options: SimOptions, worker: int,
              links: Sequence[Connection | None]) -> dict[str, Any]:
    """Run the scenario's script on one worker; what that worker saw."""
    watch = Watch(options.config.probe_interval_s)
    sim = SimCluster(
        options.config, options.seed,
        latency_s=options.latency_s,
        loss=options.loss,
        observer=watch,
        message_size=message_sizer() if options.count_bytes else None,
        keep_log=options.keep_log,
        worker=worker,
        links=links,
    )
    drive, _summarize = SCENARIO_STEPS[options.scenario]
    # The simulation makes millions of long-lived objects and no reference cycles worth
    # collecting: the cycle collector would only walk them again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        outcome = drive(sim, watch, options, random.Random(f"{options.seed}/scenario"))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {
        "meta": outcome.meta,
        "times": outcome.times,
        "false_suspicions": watch.false_suspicions,
        "false_failures": watch.false_failures,
        "messages": dict(sim.traffic.messages),
        "bytes": dict(sim.traffic.bytes),
        "dropped": sim.traffic.dropped,
        "events": sim.events_published,
        "digest": sim.log_digest(),
        "log": sim.log,
        "windows": sim.windows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _run_workers(options: SimOptions) -> list[dict[str, Any]]:
    """Fork ``options.workers - 1`` processes; each runs its share of the nodes."""
    count = options.workers
    pipes = {(i, j): multiprocessing.Pipe() for i in range(count) for j in range(i + 1, count)}

    def links_for(worker: int) -> list[Connection | None]:
        return [None if other == worker else
                pipes[(min(worker, other), max(worker, other))][0 if worker < other else 1]
                for other in range(count)]

    children: list[tuple[int, Connection]] = []
    try:
        for worker in range(1, count):
            reader, writer = multiprocessing.Pipe(duplex=False)
            pid = os.fork()
            if pid == 0:  # the worker process: run, report, and leave at once
                code = 0
                try:
                    writer.send(("ok", _run_part(options, worker, links_for(worker))))
                except BaseException as error:  # noqa: BLE001 - reported to the parent
                    writer.send(("error", f"worker {worker}: {type(error).__name__}: {error}"))
                    code = 1
                finally:
                    os._exit(code)
            writer.close()
            children.append((pid, reader))
        parts = [_run_part(options, 0, links_for(0))]
        for _pid, reader in children:
            if not reader.poll(EXCHANGE_TIMEOUT_S):
                raise RuntimeError("a simulation worker did not report")
            status, payload = reader.recv()
            if status != "ok":
                raise RuntimeError(payload)
            parts.append(payload)
        return parts
    finally:
        for pid, _reader in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)


def run_scenario(options: SimOptions) -> dict[str, Any]:
    """Run one scenario (not the sweep) and return its report."""
    started = time.perf_counter()
    parts = [_run_part(options, 0, (None,))] if options.workers == 1 else _run_workers(options)
    wall = time.perf_counter() - started
    meta = parts[0]["meta"]
    times: dict[str, dict[str, float]] = {key: {} for key in parts[0]["times"]}
    messages: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for part in parts:
        for key, values in part["times"].items():
            times[key].update(values)
        messages.update(part["messages"])
        sizes.update(part["bytes"])
    _drive, summarize = SCENARIO_STEPS[options.scenario]
    nodes = options.nodes
    per = 1.0 / (nodes * options.duration_s)
    digests = [part["digest"] for part in parts]
    report: dict[str, Any] = {
        "scenario": options.scenario,
        "nodes": nodes,
        "duration_s": options.duration_s,
        "seed": options.seed,
        "preset": options.preset,
        "workers": options.workers,
        "network": {"latency_s": options.latency_s, "loss": options.loss},
        "config": {
            key: getattr(options.config, key)
            for key in ("probe_interval_s", "probe_timeout_s", "indirect_checks",
                        "suspicion_mult", "suspicion_max_timeout_mult", "gossip_interval_s",
                        "gossip_fanout", "retransmit_mult", "anti_entropy_interval_s")
        },
        "results": summarize(options, meta, times),
        "false_suspicions": sum(part["false_suspicions"] for part in parts),
        "false_failures": sum(part["false_failures"] for part in parts),
        "traffic": {
            "messages_per_node_per_s": round(sum(messages.values()) * per, 3),
            "bytes_per_node_per_s": (round(sum(sizes.values()) * per, 1)
                                     if options.count_bytes else None),
            "by_kind": {
                kind: {"messages_per_node_per_s": round(count * per, 3),
                       "bytes_per_node_per_s": (round(sizes[kind] * per, 1)
                                                if options.count_bytes else None)}
                for kind, count in sorted(messages.items())
            },
            "not_delivered": sum(part["dropped"] for part in parts),
            "note": "what the cores asked to send, delivered or not",
        },
        "reference": references(options.config, nodes),
        "events": sum(part["events"] for part in parts),
        # One worker: the SHA-256 of the whole event log. Several: of the workers' own
        # log digests, in worker order (a run is reproducible for a given worker count).
        "event_log_sha256": (digests[0] if len(digests) == 1 else
                             hashlib.sha256("".join(digests).encode()).hexdigest()),
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(sum(part["peak_rss_mb"] for part in parts), 1),
    }
    if options.workers > 1:
        report["sync_windows"] = parts[0]["windows"]
    if options.keep_log:
        report["event_log"] = [line for part in parts for line in part["log"]]
    return report


def run(options: SimOptions) -> dict[str, Any]:
    """Run the scenario of ``options``; ``loss`` runs the crash scenario per loss rate; a
    KV scenario runs one seed, or summarizes ``options.seeds`` of them."""
    if options.scenario in KV_SCENARIOS:
        return run_kv(options) if options.seeds == 1 else run_kv_seeds(options)
    if options.scenario != "loss":
        return run_scenario(options)
    runs = [run_scenario(dataclasses.replace(options, scenario="crash", loss=rate))
            for rate in options.loss_rates]
    return {
        "scenario": "loss",
        "nodes": options.nodes,
        "duration_s": options.duration_s,
        "seed": options.seed,
        "preset": options.preset,
        "loss_rates": list(options.loss_rates),
        "runs": runs,
        "wall_s": round(sum(r["wall_s"] for r in runs), 3),
    }


def without_wall_clock(report: dict[str, Any]) -> dict[str, Any]:
    """The report minus what depends on the machine (wall time, memory)."""
    out = {k: v for k, v in report.items()
           if k not in ("wall_s", "peak_rss_mb", "sync_windows")}
    if "runs" in out:
        out["runs"] = [without_wall_clock(r) for r in out["runs"]]
    return out
