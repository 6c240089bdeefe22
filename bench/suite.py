"""The real-process benchmark suite: N node processes on 127.0.0.1, for each N.

    python -m bench.suite [--nodes 5 20 50] [--runs 3] [--preset lan] [--idle-s 30]
                          [--stagger-s 0.05] [--out-dir bench-results/suite] [--no-plots]

One run for N nodes, in this order, on one cluster:

1. join: the nodes are started one after the other (each waits for the previous one's
   ready line and until every running node has logged the previous one alive — joins
   never overlap — then ``--stagger-s``), all seeding from the first (a star). Figure: from
   the start of the last node's process until every node has logged every other node
   alive; then every node's GET /members is checked to list all N.
2. idle: the cluster is left alone for ``--idle-s`` seconds. Figures per node: RSS and
   threads at the end (/proc), CPU in percent of one core over the window (/proc), bytes
   sent per second (transport_bytes_out of GET /v1/stats, read before and after).
3. crash: the last node gets SIGKILL. Figures: to the first "suspect" (or "failed") line
   about it on any survivor, and to "failed" on every survivor.
4. leave: the second-to-last node gets SIGTERM (it announces its leave). Figure: to
   "left" on every remaining node.
5. restart: the killed node is started again on its address with its name. Figure: from
   the start of its process until every other running node has logged it alive.

Suspicions of any other member during the run are false suspicions and are counted.
Writes ``suite.json`` (every run and the summary: median, min and max over runs),
``suite.md`` (the table) and, when matplotlib is installed (``pip install -e
'.[bench]'``), one PNG per figure against N plus ``suite.png`` with all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import BenchCluster, Member, stop_on_sigterm
from bench.procstat import cpu_seconds, proc_status
from bench.report import FIGURES, summarise, write_reports
from dynago.launch import wait_until


def _idle(cluster: BenchCluster, seconds: float) -> dict[str, Any]:
    """Leave the cluster alone for ``seconds`` (the observation window) and read its cost."""
    members = cluster.members
    sent_before = [m.stats().get("transport_bytes_out", 0) for m in members]
    cpu_before = [cpu_seconds(m.pid) for m in members]
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    elapsed = time.monotonic() - started
    cpu_after = [cpu_seconds(m.pid) for m in members]
    sent_after = [m.stats().get("transport_bytes_out", 0) for m in members]
    status = [proc_status(m.pid) for m in members]
    cpu = [100 * (b - a) / elapsed for a, b in zip(cpu_before, cpu_after, strict=True)]
    sent = [(b - a) / elapsed for a, b in zip(sent_before, sent_after, strict=True)]
    return {
        "idle_s": round(elapsed, 2),
        "rss_mb": [round(s["VmRSS"] / 1024, 1) for s in status],
        "threads": [s["Threads"] for s in status],
        "cpu_percent": [round(c, 2) for c in cpu],
        "bytes_out_per_s": [round(b, 1) for b in sent],
    }


def _false_suspicions(cluster: BenchCluster, since: float, victim: str) -> dict[str, int]:
    suspicions = failures = 0
    for member in cluster.members:
        for event in member.log.events:
            if event.at >= since and event.member != victim:
                suspicions += event.status == "suspect"
                failures += event.status == "failed"
    return {"false_suspicions": suspicions, "false_failures": failures}


def run_once(n: int, preset: str, idle_s: float, stagger_s: float,
             timeout_s: float) -> dict[str, Any]:
    """One run of the five phases on a fresh cluster of ``n`` nodes (see the docstring)."""
    if n < 3:
        raise ValueError("the suite needs at least 3 nodes (a victim, a leaver, a seed)")
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dynago-suite-") as tmp, \
            BenchCluster(Path(tmp), preset=preset, stagger_s=stagger_s) as cluster:
        last = cluster.start(n, wait_joined_s=timeout_s)
        cluster.wait_logs(lambda: cluster.converged_at() is not None, timeout_s=timeout_s,
                          what=f"{n} nodes to log every other node alive")
        joined_at = cluster.converged_at()
        assert joined_at is not None
        wait_until(cluster.all_list_all, timeout_s=timeout_s, interval_s=0.2,
                   what="every node's /members to list all nodes")
        result: dict[str, Any] = {
            "nodes": n,
            "load_1m_at_start": round(load_at_start, 2),
            "launch_s": round(cluster.launch_s, 2),
            "join_s": round(max(0.0, joined_at - last.started_wall), 3),
        }
        result.update(_idle(cluster, idle_s))
        steady_since = time.time()

        victim = cluster.members[-1]
        survivors = cluster.members[:-1]
        killed_at = time.time()
        victim.process.signal(signal.SIGKILL)
        victim.process.proc.wait(5)
        cluster.wait_logs(
            lambda: all(s.log.first(victim.name, ["failed"], killed_at) for s in survivors),
            timeout_s=timeout_s, what="every survivor to log the killed node failed",
            members=survivors)
        first = [s.log.first(victim.name, ["suspect", "failed"], killed_at) for s in survivors]
        failed = [s.log.first(victim.name, ["failed"], killed_at) for s in survivors]
        result["first_suspicion_s"] = round(
            max(0.0, min(e.at for e in first if e) - killed_at), 3)
        result["failed_everywhere_s"] = round(max(e.at for e in failed if e) - killed_at, 3)

        leaver = survivors[-1]
        remaining = survivors[:-1]
        left_at = time.time()
        leaver.process.signal(signal.SIGTERM)
        cluster.wait_logs(
            lambda: all(r.log.first(leaver.name, ["left"], left_at) for r in remaining),
            timeout_s=timeout_s, what="every remaining node to log the leaver left",
            members=remaining)
        left = [r.log.first(leaver.name, ["left"], left_at) for r in remaining]
        result["left_everywhere_s"] = round(max(e.at for e in left if e) - left_at, 3)
        # Its exit is not waited for: on a loaded machine it can take longer than the
        # figure, and the teardown stops it by its PID either way.

        reborn: Member = cluster.launch(victim.name, bind=victim.address)
        cluster.replace(victim, reborn)
        cluster.wait_logs(
            lambda: all(r.log.first(victim.name, ["alive"], reborn.started_wall)
                        for r in remaining),
            timeout_s=timeout_s, what="every node to log the restarted node alive",
            members=remaining)
        alive = [r.log.first(victim.name, ["alive"], reborn.started_wall) for r in remaining]
        result["restart_alive_everywhere_s"] = round(
            max(e.at for e in alive if e) - reborn.started_wall, 3)
        cluster.poll_logs(remaining)
        result.update(_false_suspicions(cluster, steady_since, victim.name))
        return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", choices=("lan", "local", "wan"), default="lan")
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--stagger-s", type=float, default=0.05)
    parser.add_argument("--timeout-s", type=float, default=120.0,
                        help="deadline of each wait within a run")
    parser.add_argument("--out-dir", default="bench-results/suite")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the runs of other sizes found in OUT_DIR/suite.json "
                             "(the runs of the sizes measured now replace theirs)")
    args = parser.parse_args(argv)
    if args.runs < 1 or any(n < 3 for n in args.nodes):
        parser.error("--runs must be at least 1 and every --nodes at least 3")
    stop_on_sigterm()
    started = time.time()
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    sizes = list(args.nodes)
    previous = Path(args.out_dir) / "suite.json"
    if args.merge and previous.exists():
        earlier = json.loads(previous.read_text())
        if (earlier["preset"], earlier["idle_s"], earlier["stagger_s"]) != (
                args.preset, args.idle_s, args.stagger_s):
            parser.error(f"{previous} was made with other settings; not merged")
        runs = [r for r in earlier["runs"] if r["nodes"] not in args.nodes]
        sizes = sorted({r["nodes"] for r in runs} | set(args.nodes))
    for n in args.nodes:
        for run in range(args.runs):
            result = run_once(n, args.preset, args.idle_s, args.stagger_s, args.timeout_s)
            result["run"] = run + 1
            runs.append(result)
            print(f"N={n} run {run + 1}: " + ", ".join(
                f"{key} {result[key]}" for key in ("join_s", "first_suspicion_s",
                                                   "failed_everywhere_s", "left_everywhere_s",
                                                   "restart_alive_everywhere_s")
            ) + f", CPU % median {statistics.median(result['cpu_percent']):.2f}", flush=True)
    report = {
        "preset": args.preset,
        "stagger_s": args.stagger_s,
        "idle_s": args.idle_s,
        "runs_per_size": args.runs,
        "machine": {"cpus": os.cpu_count(), "load_before": [round(v, 2) for v in load_before],
                    "load_after": [round(v, 2) for v in os.getloadavg()]},
        "wall_s": round(time.time() - started, 1),
        "figures": {key: label for key, label, _unit in FIGURES},
        "summary": summarise(runs, sizes),
        "runs": runs,
    }
    for path in write_reports(report, Path(args.out_dir), plots=not args.no_plots):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
