"""Idle soak: N nodes on 127.0.0.1 left alone; count false suspicions and failures.

    python -m bench.soak [--nodes 20] [--seconds 300] [--preset lan] [--out ...]

Starts N nodes (sequentially, each seeding from the first), waits until all list all,
then leaves the cluster idle for ``--seconds``. Every "is now suspect" / "is now failed"
line logged by any node during the soak is a false alarm: nothing was wrong. Also
reports each node's RSS, threads and CPU use over the soak.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.failure import parse_events, start_cluster
from bench.procstat import idle_cpu_percent, proc_status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--preset", choices=("lan", "local"), default="lan")
    parser.add_argument("--stagger-s", type=float, default=0.05)
    parser.add_argument("--out", default="bench-results/soak.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dynago-soak-") as tmp:
        logdir = Path(tmp)
        nodes = start_cluster(args.nodes, args.preset, logdir, args.stagger_s)
        try:
            began = time.time()
            cpu, elapsed = idle_cpu_percent(nodes, args.seconds)  # the soak itself
            status = [proc_status(node.pid) for node in nodes]
            alive = [node.members() for node in nodes]
            suspicions = failures = 0
            for node in nodes:
                for moment, _name, state in parse_events(logdir / f"{node.name}.log"):
                    if moment >= began:
                        suspicions += state == "suspect"
                        failures += state == "failed"
        finally:
            for node in nodes:
                node.terminate()
                node.close()
    report = {
        "nodes": args.nodes, "seconds": round(elapsed, 1), "preset": args.preset,
        "false_suspicions": suspicions, "false_failures": failures,
        "all_converged_at_end": all(len(view) == args.nodes for view in alive),
        "rss_mb_median": statistics.median(s["VmRSS"] / 1024 for s in status),
        "threads_median": statistics.median(s["Threads"] for s in status),
        "cpu_percent_per_node_median": round(statistics.median(cpu), 2),
        "cpu_percent_total": round(sum(cpu), 1),
    }
    print(json.dumps(report, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
