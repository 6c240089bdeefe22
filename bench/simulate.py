"""The simulator's figures for docs/performance.md: scenarios at several cluster sizes.

    python -m bench.simulate [--sizes 100 1000 10000] [--seeds 3] [--big-seeds 1] [--side-seeds N]
                             [--workers 1] [--out bench-results/simulate.json]

Runs ``dynago sim`` (each run in its own process, so peak memory is per run) for the
crash, join and leave scenarios at every size, the partition scenario and the loss
sweep at the middle size, each with ``--seeds`` seeds (``--big-seeds`` at 10,000 nodes
and more: each of those runs takes minutes); prints Markdown tables (median
over seeds of each run's median/p99/max over nodes) and writes every report as JSON.
Simulated times do not depend on the machine; wall times do (run on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

DURATION_S = 60.0


def sim(args: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "dynago", "sim", *args, "--json"],
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"dynago sim {' '.join(args)} failed: {done.stderr.strip()}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def med(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def timing_cell(reports: list[dict[str, Any]], key: str) -> str:
    spans = [r["results"][key]["seconds"] for r in reports if r["results"][key]["seconds"]]
    if not spans:
        return "—"
    return " / ".join(str(med([s[q] for s in spans])) for q in ("median", "p99", "max"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--big-seeds", type=int, default=1)
    parser.add_argument("--side-seeds", type=int, default=None,
                        help="seeds of the partition and loss-sweep runs (default: --seeds)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=DURATION_S)
    parser.add_argument("--out", type=Path, default=Path("bench-results/simulate.json"))
    args = parser.parse_args()
    seeds = range(1, args.seeds + 1)
    common = ["--duration", str(args.duration), "--workers", str(args.workers)]
    runs: dict[str, list[dict[str, Any]]] = {}

    def run(key: str, extra: list[str], count: int | None = None) -> list[dict[str, Any]]:
        reports = []
        for seed in (seeds if count is None else range(1, count + 1)):
            report = sim([*extra, *common, "--seed", str(seed)])
            print(f"{key} seed {seed}: wall {report['wall_s']} s", file=sys.stderr)
            reports.append(report)
        runs[key] = reports
        return reports

    lines = ["| N | scenario | seeds | measured: median / p99 / max over nodes (s) "
             "| reference (s) | false susp. / fail. | msgs, bytes per node per s | wall (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for n in args.sizes:
        for scenario, key in (("crash", "failed_everywhere"), ("join", "all_alive_everywhere"),
                              ("leave", "left_everywhere")):
            reports = run(f"{scenario}-{n}", ["--nodes", str(n), "--scenario", scenario],
                          args.big_seeds if n >= 10_000 else None)
            ref = reports[0]["reference"]
            reference = {"crash": ref["failed_everywhere_s"],
                         "join": ref["dissemination_s"], "leave": "direct notice"}[scenario]
            extra = ""
            if scenario == "crash":
                first = med([r["results"]["first_suspicion_s"] for r in reports])
                extra = (f"; first suspicion {first} (ref. median "
                         f"{ref['first_suspicion_s']['median']})")
            lines.append(
                f"| {n} | {scenario} | {len(reports)} | {timing_cell(reports, key)}{extra} | "
                f"{reference} | "
                f"{sum(r['false_suspicions'] for r in reports)} / "
                f"{sum(r['false_failures'] for r in reports)} | "
                f"{med([r['traffic']['messages_per_node_per_s'] for r in reports])}, "
                f"{med([r['traffic']['bytes_per_node_per_s'] for r in reports])} | "
                f"{med([r['wall_s'] for r in reports])} |")
    middle = sorted(args.sizes)[len(args.sizes) // 2]
    reports = run(f"partition-{middle}", ["--nodes", str(middle), "--scenario", "partition"],
                  args.side_seeds)
    lines.append(
        f"| {middle} | partition ({reports[0]['results']['split_s']} s) | {len(reports)} "
        f"| other side failed "
        f"{timing_cell(reports, 'other_side_failed')}; all alive after heal "
        f"{timing_cell(reports, 'all_alive_after_heal')} | — | "
        f"{sum(r['false_suspicions'] for r in reports)} / "
        f"{sum(r['false_failures'] for r in reports)} | "
        f"{med([r['traffic']['messages_per_node_per_s'] for r in reports])}, "
        f"{med([r['traffic']['bytes_per_node_per_s'] for r in reports])} | "
        f"{med([r['wall_s'] for r in reports])} |")
    print("\n".join(lines))

    sweep = run(f"loss-{middle}", ["--nodes", str(middle), "--scenario", "loss"],
                args.side_seeds)
    table = ["| loss | first suspicion (s) | failed everywhere: median / p99 / max (s) "
             "| false suspicions | false failures | msgs per node per s |",
             "|---|---|---|---|---|---|"]
    for i, rate in enumerate(sweep[0]["loss_rates"]):
        per_seed = [r["runs"][i] for r in sweep]
        table.append(
            f"| {rate} | {med([r['results']['first_suspicion_s'] for r in per_seed])} | "
            f"{timing_cell(per_seed, 'failed_everywhere')} | "
            f"{sum(r['false_suspicions'] for r in per_seed)} | "
            f"{sum(r['false_failures'] for r in per_seed)} | "
            f"{med([r['traffic']['messages_per_node_per_s'] for r in per_seed])} |")
    print(f"\nloss sweep, {middle} nodes (sums of false alarms over {len(sweep)} seed(s)):")
    print("\n".join(table))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1))
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
