"""Run a scenario and build its report: measurements next to the analytical references."""

from __future__ import annotations

import dataclasses
import gc
import math
import resource
import time
from collections.abc import Callable
from typing import Any

from dynago.config import Config
from dynago.core.broadcast import retransmit_limit
from dynago.core.member import Member
from dynago.core.messages import Ack, CoreMessage, Ping, PingReq
from dynago.core.suspicion import suspicion_bounds
from dynago.sim.cluster import SimCluster
from dynago.sim.scenarios import RUNNERS, SimOptions, Watch

SWIM_FIRST_DETECTION_PERIODS = math.e / (math.e - 1)
"""SWIM (Das et al. 2002, §3.1): expected protocol periods until some member probes a
failed one, when each of N-1 members picks a target uniformly: 1 / (1 - 1/e) ≈ 1.58."""


def references(config: Config, nodes: int) -> dict[str, Any]:
    """What theory predicts for this configuration and cluster size."""
    fanout = config.gossip_fanout
    rounds = math.log(nodes, fanout + 1) + math.log(nodes) / fanout
    minimum, maximum = suspicion_bounds(
        config.suspicion_mult, config.suspicion_max_timeout_mult,
        config.probe_interval_s, nodes)
    return {
        "first_detection_probe_periods": round(SWIM_FIRST_DETECTION_PERIODS, 3),
        "first_detection_s": round(SWIM_FIRST_DETECTION_PERIODS * config.probe_interval_s, 4),
        "first_detection_note": "expected periods until the first probe of a failed member "
                                "(SWIM, uniform random targets: e/(e-1)); the suspicion is "
                                "raised at the end of that period",
        "dissemination_rounds": round(rounds, 2),
        "dissemination_s": round(rounds * config.gossip_interval_s, 4),
        "dissemination_note": f"push gossip with fan-out {fanout} reaches N members in about "
                              f"log_(f+1) N + ln N / f rounds",
        "suspicion_timeout_s": {"min": round(minimum, 4), "max": round(maximum, 4)},
        "suspicion_note": "Lifeguard: a suspicion starts at max and shrinks toward min as "
                          "independent members confirm it",
        "retransmit_rounds": retransmit_limit(config.retransmit_mult, nodes),
    }


def message_sizer() -> Callable[[CoreMessage], int]:
    """Bytes of each message as the gRPC transport encodes it (a protobuf Envelope).

    Probe messages differ only in their sequence number, so their size is cached by
    (kind, record, bytes of the sequence number's varint): exact, and it spares encoding
    millions of pings and acks. Gossip and full-state chunks are encoded each time.
    """
    from dynago.transport import codec

    cache: dict[tuple[type, Member, int], int] = {}

    def size(message: CoreMessage) -> int:
        if isinstance(message, Ping | Ack | PingReq):
            member = message.target if isinstance(message, Ping | PingReq) else message.member
            key = (type(message), member, (message.seq.bit_length() + 6) // 7)
            known = cache.get(key)
            if known is None:
                known = cache[key] = len(codec.encode(message))
                if len(cache) > 1_000_000:
                    cache.clear()
            return known
        return len(codec.encode(message))

    return size


def run_scenario(options: SimOptions) -> dict[str, Any]:
    """Run one scenario (not the sweep) and return its report."""
    watch = Watch()
    sim = SimCluster(
        options.config, options.seed,
        latency_s=options.latency_s,
        loss=options.loss,
        observer=watch,
        message_size=message_sizer() if options.count_bytes else None,
        keep_log=options.keep_log,
    )
    started = time.perf_counter()
    # The simulation makes millions of long-lived objects and no reference cycles worth
    # collecting: the cycle collector would only walk them again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        results = RUNNERS[options.scenario](sim, watch, options)
    finally:
        if gc_was_enabled:
            gc.enable()
    wall = time.perf_counter() - started
    nodes = options.nodes
    per = 1.0 / (nodes * options.duration_s)
    traffic = sim.traffic
    report: dict[str, Any] = {
        "scenario": options.scenario,
        "nodes": nodes,
        "duration_s": options.duration_s,
        "seed": options.seed,
        "preset": options.preset,
        "network": {"latency_s": options.latency_s, "loss": options.loss},
        "config": {
            key: getattr(options.config, key)
            for key in ("probe_interval_s", "probe_timeout_s", "indirect_checks",
                        "suspicion_mult", "suspicion_max_timeout_mult", "gossip_interval_s",
                        "gossip_fanout", "retransmit_mult", "anti_entropy_interval_s")
        },
        "results": results,
        "false_suspicions": watch.false_suspicions,
        "false_failures": watch.false_failures,
        "traffic": {
            "messages_per_node_per_s": round(traffic.total_messages() * per, 3),
            "bytes_per_node_per_s": (round(traffic.total_bytes() * per, 1)
                                     if options.count_bytes else None),
            "by_kind": {
                kind: {"messages_per_node_per_s": round(count * per, 3),
                       "bytes_per_node_per_s": (round(traffic.bytes[kind] * per, 1)
                                                if options.count_bytes else None)}
                for kind, count in sorted(traffic.messages.items())
            },
            "not_delivered": traffic.dropped,
            "note": "what the cores asked to send, delivered or not",
        },
        "reference": references(options.config, nodes),
        "events": sim.events_published,
        "event_log_sha256": sim.log_digest(),
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if sim.log is not None:
        report["event_log"] = sim.log
    return report


def run(options: SimOptions) -> dict[str, Any]:
    """Run the scenario of ``options``; ``loss`` runs the crash scenario per loss rate."""
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
    out = {k: v for k, v in report.items() if k not in ("wall_s", "peak_rss_mb")}
    if "runs" in out:
        out["runs"] = [without_wall_clock(r) for r in out["runs"]]
    return out
