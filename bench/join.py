"""Join convergence and idle cost of real node processes on 127.0.0.1.

    python -m bench.join [--runs 3] [--idle-s 10] [--out bench-results/join.json]

For a 3-node star (B, C seed from A) and a 4-node chain (B via A, C via B, D via C),
measures the time from the moment the last node's process is started until every node's
``GET /members`` lists every node (polled every 20 ms); then, in the 3-node cluster left
idle for ``--idle-s`` seconds, each node's RSS and thread count (from /proc) and CPU use.
Prints a table and writes JSON. Nodes use ``--preset lan`` (the default) unless
``--preset local`` is given; launches are sequential (each waits for the previous one's
ready line).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench.procstat import idle_cpu_percent, proc_status
from dynago.launch import NodeProcess, wait_until


def run_topology(kind: str, n: int, preset: str, idle_s: float) -> dict[str, object]:
    nodes: list[NodeProcess] = []
    try:
        for i in range(n):
            seeds: list[str] = []
            if i > 0:
                seeds = ["--seed", nodes[0 if kind == "star" else i - 1].address]
            node = NodeProcess(["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                "--preset", preset, *seeds])
            nodes.append(node)
            node.wait_ready()
        expected = sorted(node.address for node in nodes)
        wait_until(lambda: all(sorted(nd.members()) == expected for nd in nodes),
                   timeout_s=30, interval_s=0.02, what=f"{kind} convergence")
        converged = time.monotonic() - nodes[-1].started_at
        result: dict[str, object] = {"topology": kind, "nodes": n,
                                     "convergence_s": round(converged, 3)}
        if idle_s > 0:
            cpu, _elapsed = idle_cpu_percent(nodes, idle_s)
            status = [proc_status(node.pid) for node in nodes]
            result["idle_rss_mb"] = [round(st["VmRSS"] / 1024, 1) for st in status]
            result["idle_threads"] = [st["Threads"] for st in status]
            result["idle_cpu_percent"] = [round(c, 2) for c in cpu]
        return result
    finally:
        for node in reversed(nodes):
            node.terminate()
            node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--preset", choices=("lan", "local"), default="lan")
    parser.add_argument("--out", default="bench-results/join.json")
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    for run in range(args.runs):
        runs.append(run_topology("star", 3, args.preset, args.idle_s if run == 0 else 0))
        runs.append(run_topology("chain", 4, args.preset, 0))
        print(f"run {run + 1}: star {runs[-2]['convergence_s']} s, "
              f"chain {runs[-1]['convergence_s']} s", flush=True)
    summary = {}
    for kind in ("star", "chain"):
        times = [float(r["convergence_s"]) for r in runs  # type: ignore[arg-type]
                 if r["topology"] == kind]
        summary[kind] = {"median_s": statistics.median(times), "min_s": min(times),
                         "max_s": max(times), "runs": len(times)}
    idle = next(r for r in runs if "idle_rss_mb" in r) if args.idle_s > 0 else None
    report = {"preset": args.preset, "summary": summary, "idle_3_node": idle, "runs": runs,
              "machine": {"cpus": os.cpu_count()}}
    print(f"\n{'topology':<10}{'median s':>10}{'min s':>8}{'max s':>8}")
    for kind, row in summary.items():
        print(f"{kind:<10}{row['median_s']:>10.3f}{row['min_s']:>8.3f}{row['max_s']:>8.3f}")
    if idle:
        print(f"\nidle 3-node cluster over {args.idle_s:.0f} s: RSS MB {idle['idle_rss_mb']}, "
              f"threads {idle['idle_threads']}, CPU % {idle['idle_cpu_percent']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
