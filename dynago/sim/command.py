"""``dynago sim``: arguments, the run, and the printed report (text or JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dynago.config import Config, ConfigError
from dynago.sim.args import DEFAULT_LOSS_RATES, KV_SCENARIOS, add_arguments
from dynago.sim.kv_scenarios import render_kv
from dynago.sim.scenarios import SimOptions

__all__ = ["add_arguments", "main", "options_from"]


def options_from(args: argparse.Namespace) -> SimOptions | str:
    """The run's options, or a one-line reason why the arguments are wrong."""
    try:
        rates = tuple(float(r) for r in args.loss_rates.split(",") if r.strip())
    except ValueError:
        return f"--loss-rates must be numbers separated by commas, not {args.loss_rates!r}"
    preset = Config.local if args.preset == "local" else Config.lan
    try:
        config = preset().validate()
    except ConfigError as error:  # pragma: no cover - presets are valid
        return str(error)
    options = SimOptions(
        nodes=args.nodes, duration_s=args.duration, seed=args.seed, scenario=args.scenario,
        config=config, preset=args.preset, latency_s=args.latency_ms / 1000.0,
        loss=args.loss, loss_rates=rates or DEFAULT_LOSS_RATES,
        count_bytes=not args.no_bytes, keep_log=bool(args.event_log), workers=args.workers,
        kv_clients=args.kv_clients, seeds=args.seeds,
    )
    problem = options.problem()
    return problem if problem else options


def main(args: argparse.Namespace) -> int:
    options = options_from(args)
    if isinstance(options, str):
        print(f"dynago: error: {options}", file=sys.stderr)
        return 2
    if options.scenario in KV_SCENARIOS and args.event_log:
        print("dynago: error: --event-log is for the membership scenarios", file=sys.stderr)
        return 2
    from dynago.sim.report import run  # only `dynago sim` pays for the simulator

    report = run(options)
    if options.scenario in KV_SCENARIOS:
        if args.json:
            json.dump(report, sys.stdout, indent=1)
            print()
        else:
            print(render_kv(report))
        return 0
    if args.event_log:
        logs = [r.pop("event_log") for r in report.get("runs", [report])]
        with open(args.event_log, "w") as handle:
            for log in logs:
                handle.writelines(log)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(render(report))
    return 0


def _fmt(timing: dict[str, Any] | None, unit: str = "seconds") -> str:
    if not timing or not timing.get(unit):
        return "—"
    t = timing[unit]
    return f"{t['median']} / {t['p99']} / {t['max']}"


def render(report: dict[str, Any]) -> str:
    """A few readable lines: each measurement, then what theory says."""
    if report["scenario"] == "loss":
        lines = [f"loss sweep, {report['nodes']} nodes, {report['duration_s']} s, "
                 f"seed {report['seed']} (crash at each rate)",
                 "loss   first suspicion   failed everywhere (median/p99/max s)   "
                 "false susp.  false fail.  msgs/node/s"]
        for r in report["runs"]:
            res = r["results"]
            lines.append(
                f"{r['network']['loss']:<6} {res['first_suspicion_s']!s:<17} "
                f"{_fmt(res['failed_everywhere']):<38} {r['false_suspicions']:<12} "
                f"{r['false_failures']:<12} {r['traffic']['messages_per_node_per_s']}")
        lines.append(f"wall time {report['wall_s']} s")
        return "\n".join(lines)
    ref = report["reference"]
    res = report["results"]
    lines = [f"{report['scenario']}: {report['nodes']} nodes, {report['duration_s']} s of "
             f"protocol time, seed {report['seed']}, preset {report['preset']}, loss "
             f"{report['network']['loss']}"]
    for key, value in res.items():
        if isinstance(value, dict) and "seconds" in value:
            lines.append(f"  {key}: {_fmt(value)} s (median/p99/max over {value['nodes']} "
                         f"nodes), {_fmt(value, 'probe_periods')} probe periods")
        else:
            lines.append(f"  {key}: {value}")
    lines += [
        f"  false suspicions {report['false_suspicions']}, false failures "
        f"{report['false_failures']}",
        f"  traffic: {report['traffic']['messages_per_node_per_s']} messages and "
        f"{report['traffic']['bytes_per_node_per_s']} bytes per node per second",
        "reference:",
        f"  first detection ≈ {ref['first_detection_probe_periods']} probe periods "
        f"= {ref['first_detection_s']} s (SWIM, synchronous rounds); first suspicion "
        f"here ≈ {ref['first_suspicion_s']['median']} s median, "
        f"{ref['first_suspicion_s']['mean']} s mean",
        f"  failed everywhere ≈ {ref['failed_everywhere_s']} s",
        f"  gossip dissemination ≈ {ref['dissemination_rounds']} rounds "
        f"= {ref['dissemination_s']} s",
        f"  suspicion timeout {ref['suspicion_timeout_s']['min']}–"
        f"{ref['suspicion_timeout_s']['max']} s (Lifeguard)",
        f"wall time {report['wall_s']} s, peak RSS {report['peak_rss_mb']} MB, "
        f"{report['events']} member events, log sha256 {report['event_log_sha256'][:16]}…",
    ]
    return "\n".join(lines)
