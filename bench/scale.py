"""How many node processes run stably on this machine: N nodes left idle for a while.

    python -m bench.scale [--nodes 100] [--seconds 300] [--preset lan] [--stagger-s 0.05]
                          [--sample-s 30] [--out bench-results/scale.json]

Starts N nodes on 127.0.0.1 one after the other (each waits for the previous one's ready
line, then until every running node has logged it alive — so that joins never overlap —
then ``--stagger-s``), all seeding from the first, waits until every node has logged
every other one alive and every GET /members lists all N, then leaves the cluster alone
for ``--seconds``. Nothing is wrong during the soak, so every "suspect" or "failed" line
any node logs is a false alarm. Every ``--sample-s`` seconds it records the total CPU of
the nodes, the load average and the false alarms so far; at the end, per node: RSS,
threads, open file descriptors, CPU over the soak, and the counters of GET /v1/stats
that show strain (dropped outbound messages, stream reconnects, failed dials, mailbox
depths, failed probes). Prints a summary and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import BenchCluster, spread, stop_on_sigterm
from bench.procstat import cpu_seconds, proc_status
from dynago.launch import wait_until

STRAIN_COUNTERS = (
    "transport_outbound_dropped", "transport_stream_reconnects", "transport_dials_failed",
    "transport_malformed_messages", "probes_failed", "suspicions_raised",
    "failures_declared", "refutations", "peer_mailbox_depth_max",
)
"""Counters of GET /v1/stats summed over the nodes (the mailbox depth: its maximum)."""


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def mem_available_mb() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def alarms(cluster: BenchCluster, since: float) -> dict[str, int]:
    """Suspect and failed lines logged by any node at or after ``since``."""
    cluster.poll_logs()
    counts = {"false_suspicions": 0, "false_failures": 0}
    for member in cluster.members:
        for event in member.log.events:
            if event.at >= since:
                counts["false_suspicions"] += event.status == "suspect"
                counts["false_failures"] += event.status == "failed"
    return counts


def soak(cluster: BenchCluster, seconds: float, sample_s: float) -> dict[str, Any]:
    """Leave the cluster alone for ``seconds``; sample every ``sample_s``."""
    pids = [m.pid for m in cluster.members]
    began_wall = time.time()
    began = time.monotonic()
    cpu_start = [cpu_seconds(pid) for pid in pids]
    samples = []
    last_cpu, last_t = sum(cpu_start), began
    end = began + seconds
    for _ in range(int(seconds / max(sample_s, 0.1)) + 2):
        time.sleep(max(0.0, min(sample_s, end - time.monotonic())))  # the observation window
        now = time.monotonic()
        total = sum(cpu_seconds(pid) for pid in pids)
        samples.append({
            "t_s": round(now - began, 1),
            "cpu_percent_total": round(100 * (total - last_cpu) / (now - last_t), 1),
            "load_1m": round(os.getloadavg()[0], 2),
            **alarms(cluster, began_wall),
        })
        sample = samples[-1]
        print(f"  t={sample['t_s']:>6.1f} s  CPU total {sample['cpu_percent_total']:>6.1f} %"
              f"  load {sample['load_1m']:>5.2f}  false suspicions "
              f"{sample['false_suspicions']}, failures {sample['false_failures']}", flush=True)
        last_cpu, last_t = total, now
        if now >= end:
            break
    elapsed = time.monotonic() - began
    cpu = [100 * (cpu_seconds(pid) - start) / elapsed
           for pid, start in zip(pids, cpu_start, strict=True)]
    return {"elapsed_s": round(elapsed, 1), "began_wall": began_wall, "samples": samples,
            "cpu_percent": cpu}


def run(n: int, seconds: float, preset: str, stagger_s: float, sample_s: float,
        log_dir: str | None = None, wait_joined: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dynago-scale-") as tmp, \
            BenchCluster(Path(log_dir or tmp), preset=preset, stagger_s=stagger_s,
                         verbose=True) as cluster:
        load_before = os.getloadavg()
        last = cluster.start(n, wait_joined_s=60.0 if wait_joined else 0.0)
        print(f"launched {n} nodes in {cluster.launch_s:.1f} s", flush=True)
        timeout_s = 60.0 + n
        cluster.wait_logs(lambda: cluster.converged_at() is not None, timeout_s=timeout_s,
                          what=f"{n} nodes to log every other node alive")
        converged_at = cluster.converged_at()
        assert converged_at is not None
        wait_until(cluster.all_list_all, timeout_s=timeout_s, interval_s=0.5,
                   what="every node's /members to list all nodes")
        join_s = converged_at - last.started_wall
        pre_soak = alarms(cluster, 0.0)
        print(f"converged {join_s:.2f} s after the last start; soaking {seconds:.0f} s",
              flush=True)
        observed = soak(cluster, seconds, sample_s)
        during = alarms(cluster, observed["began_wall"])
        status = [proc_status(m.pid) for m in cluster.members]
        fds = [open_fds(m.pid) for m in cluster.members]
        stats = [m.stats() for m in cluster.members]
        all_listed = cluster.all_list_all()
        strain = {key: sum(s.get(key, 0) for s in stats) for key in STRAIN_COUNTERS}
        strain["peer_mailbox_depth_max"] = max(s.get("peer_mailbox_depth_max", 0)
                                               for s in stats)
        cpu = observed["cpu_percent"]
        return {
            "nodes": n, "preset": preset, "stagger_s": stagger_s, "soak_s": observed["elapsed_s"],
            "launch_waits_for_join": wait_joined,
            "launch_s": round(cluster.launch_s, 1), "join_s": round(join_s, 3),
            "ready_s": spread(cluster.ready_s),
            "ready_s_by_launch": [round(v, 2) for v in cluster.ready_s],
            "load_1m_by_launch": [round(v, 2) for v in cluster.launch_load],
            "cpu_percent_by_launch": [round(v) for v in cluster.launch_cpu],
            "alarms_before_soak": pre_soak,
            **during,
            "all_list_all_at_end": all_listed,
            "rss_mb": spread([s["VmRSS"] / 1024 for s in status]),
            "rss_mb_total": round(sum(s["VmRSS"] for s in status) / 1024, 1),
            "threads": spread([s["Threads"] for s in status]),
            "threads_total": sum(s["Threads"] for s in status),
            "fds": spread(fds),
            "cpu_percent_per_node": spread(cpu),
            "cpu_percent_total": round(sum(cpu), 1),
            "cpu_percent_available": 100 * (os.cpu_count() or 1),
            "strain_counters": strain,
            "machine": {"cpus": os.cpu_count(),
                        "load_before": [round(v, 2) for v in load_before],
                        "load_after": [round(v, 2) for v in os.getloadavg()],
                        "mem_available_mb_at_end": round(mem_available_mb())},
            "samples": observed["samples"],
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--preset", choices=("lan", "local", "wan"), default="lan")
    parser.add_argument("--stagger-s", type=float, default=0.05)
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--out", default="bench-results/scale.json")
    parser.add_argument("--no-wait-joined", action="store_true",
                        help="start the next node as soon as the previous one is ready "
                             "(default: also wait until every node logged it alive)")
    parser.add_argument("--log-dir", help="keep the nodes' logs here (default: a temporary "
                                          "directory, removed at the end)")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.seconds <= 0 or args.sample_s <= 0:
        parser.error("--nodes must be at least 2, --seconds and --sample-s positive")
    if args.log_dir:
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    stop_on_sigterm()
    report = run(args.nodes, args.seconds, args.preset, args.stagger_s, args.sample_s,
                 args.log_dir, wait_joined=not args.no_wait_joined)
    brief = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(brief, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    print(f"{statistics.median([s['cpu_percent_total'] for s in report['samples']]):.1f} % "
          "median total CPU over the samples")


if __name__ == "__main__":
    main()
