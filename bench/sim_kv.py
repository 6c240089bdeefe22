"""The key-value store in the simulator over many seeds, for docs/reliability.md.

    python -m bench.sim_kv [--seeds 100] [--first-seed 1] [--nodes 5] [--duration 10]
                           [--scenarios kv-crash kv-partition kv-loss kv-mixed]
                           [--out bench-results/sim_kv.json]

Runs every KV scenario (dynago.sim.kv_scenarios) for each seed, in this process, and
prints one table row per scenario: seeds, client operations, and what the history
checker (dynago.kv.history) found — acknowledged writes lost, unexpected values,
indeterminate writes recovered, writes that could not be verified, stale reads — and the
stale replicas after settling and after the final reads' repair; then the seeds where
something acknowledged was lost or something unexpected found. Same seeds, same table
(the simulator is deterministic); wall time is printed last and is the only number that
depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dynago.config import Config
from dynago.sim.args import KV_SCENARIOS
from dynago.sim.kv_scenarios import run_kv_seeds, table_header, table_row
from dynago.sim.scenarios import SimOptions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of client load and faults per run (default 10)")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--scenarios", nargs="+", choices=KV_SCENARIOS,
                        default=list(KV_SCENARIOS))
    parser.add_argument("--out", type=Path, help="also write every summary as JSON here")
    args = parser.parse_args()
    started = time.perf_counter()
    summaries = []
    print(f"{args.seeds} seeds from {args.first_seed}, {args.nodes} nodes, "
          f"{args.duration} s of load and faults per run, {args.clients} clients")
    print(table_header())
    for scenario in args.scenarios:
        options = SimOptions(nodes=args.nodes, duration_s=args.duration,
                             seed=args.first_seed, scenario=scenario, config=Config.lan(),
                             kv_clients=args.clients, seeds=args.seeds)
        problem = options.problem()
        if problem:
            parser.error(problem)
        summary = run_kv_seeds(options)
        summaries.append(summary)
        print(table_row(scenario, args.seeds, summary["totals"]), flush=True)
    for summary in summaries:
        if summary["failing_seeds"]:
            print(f"{summary['scenario']}: lost or unexpected at seeds "
                  f"{', '.join(str(s) for s in summary['failing_seeds'])}")
    if not any(summary["failing_seeds"] for summary in summaries):
        print("no seed lost an acknowledged write or showed an unexpected value")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summaries, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
