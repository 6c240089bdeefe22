"""Latency and throughput of the key-value store on a real cluster of node processes.

    python -m bench.kv_latency [--nodes 3] [--clients 1,16] [--seconds 10]
        [--value-bytes 100] [--keys 1000] [--json PATH] [--py-spy PATH]

Starts ``--nodes`` ``dynago node`` processes on 127.0.0.1 (ephemeral ports, one data
dir each under a temporary dir: the default SQLite engine, durable commits), waits until
every node lists every member and every node's ring holds them all, then for each
client count runs a closed-loop put phase (Riak ``PUT /buckets/bench/keys/K``, random
keys of ``--keys``, round-robin over the nodes; see bench.kv_load), then a get phase of
the same keys, ``--seconds`` each. Per phase it reports ops/s, p50/p99/p99.9 latency and
errors as the clients saw them; from the nodes' ``/v1/stats`` deltas, fsyncs per stored
write (``kv_store_fsyncs`` / ``kv_store_writes`` summed over the nodes; with N=3 a put is
three stored writes) and per client operation; from /proc, the node processes' CPU
seconds per operation; and the generator's own CPU, which shows whether it was the limit.

``--py-spy PATH`` also samples the first node with ``py-spy record --format raw`` (a
collapsed-stack file at PATH; with ``--py-spy-gil`` only the thread holding the GIL)
during the put phase (``--py-spy-op get``: the get phase) of the largest client count
and summarises it (bench.profile_summary); the sampling pauses the node at each sample,
so that phase's figures are not clean.

Every node process is stopped by its PID at the end, also on an error, Ctrl-C or
SIGTERM. Figures are for the report, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import BenchCluster, Member, stop_on_sigterm
from bench.kv_load import KeySpace, run_phase, summary
from bench.procstat import cpu_seconds
from bench.profile_summary import parse, render, summarise
from dynago.launch import LaunchError, wait_until

STATS_KEYS = ("kv_store_writes", "kv_store_commits", "kv_store_fsyncs",
              "kv_aae_exchanges", "kv_aae_keys_sent",
              "transport_messages_out", "transport_writes_out")
REQUEST_TIMEOUT_S = 5.0
CONVERGE_TIMEOUT_S = 60.0


def _client_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,16, got {text!r}") from None
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"client counts must be ≥ 1, got {text!r}")
    return counts


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_latency",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=_positive(int), default=3)
    parser.add_argument("--clients", type=_client_counts, default=[1, 16],
                        help="comma-separated client counts (default 1,16)")
    parser.add_argument("--seconds", type=_positive(float), default=10.0,
                        help="duration of each phase (default 10)")
    parser.add_argument("--value-bytes", type=_positive(int), default=100)
    parser.add_argument("--keys", type=_positive(int), default=1000)
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--py-spy", type=Path, metavar="PATH",
                        help="py-spy raw profile of the first node, largest phase of --py-spy-op")
    parser.add_argument("--py-spy-op", choices=("put", "get"), default="put",
                        help="the phase to profile (default put)")
    parser.add_argument("--py-spy-native", action="store_true",
                        help="with native (C) frames (py-spy --native): grpc core, SQLite")
    parser.add_argument("--py-spy-gil", action="store_true",
                        help="sample only the thread holding the GIL (py-spy --gil)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the keys")
    return parser.parse_args(argv)


def _counters(members: list[Member]) -> dict[str, int]:
    """The store counters summed over the nodes."""
    total = dict.fromkeys(STATS_KEYS, 0)
    for member in members:
        stats = member.stats()
        for key in STATS_KEYS:
            total[key] += int(stats.get(key, 0))
    return total


def _node_cpu(members: list[Member]) -> list[float]:
    return [cpu_seconds(member.pid) for member in members]


def _converged(cluster: BenchCluster, n: int) -> bool:
    """Every node lists every member, and every node's ring holds all of them."""
    return cluster.all_list_all() and all(
        int(member.stats().get("kv_ring_members", 0)) == n for member in cluster.members)


def _start_py_spy(pid: int, out: Path, seconds: float,
                  gil: bool, native: bool = False) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed (pip install -e '.[bench]'): no profile")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
         "--duration", str(max(1, int(seconds))), "--rate", "200",
         *(["--gil"] if gil else []), *(["--native"] if native else [])],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish_py_spy(spy: subprocess.Popen[bytes], seconds: float,
                   out: Path) -> dict[str, Any] | None:
    """Wait for py-spy (bounded); the profile's summary (bench.profile_summary)."""
    try:
        _out, err = spy.communicate(timeout=seconds + 30.0)
    except subprocess.TimeoutExpired:
        spy.kill()  # our own child, by its handle
        spy.communicate()
        print("py-spy did not finish in time: killed")
        return None
    if spy.returncode != 0 or not out.exists():
        print(f"py-spy exited {spy.returncode}: {err.decode(errors='replace')[-500:]}")
        return None
    with open(out) as source:
        return summarise(parse(source))


def measure(cluster: BenchCluster, args: argparse.Namespace,
            report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every phase, in order: puts then gets for each client count (and the profile, in
    ``report["profile"]``, when asked for)."""
    members = cluster.members
    nodes = [m.http for m in members]
    space = KeySpace(args.keys)
    rng = random.Random(args.seed)
    phases: list[dict[str, Any]] = []
    profile_at = max(args.clients)
    for clients in args.clients:
        for op in ("put", "get"):
            spy = None
            if args.py_spy and op == args.py_spy_op and clients == profile_at:
                spy = _start_py_spy(members[0].pid, args.py_spy, args.seconds,
                                    args.py_spy_gil, args.py_spy_native)
            load_before = os.getloadavg()[0]
            counters_before, cpu_before = _counters(members), _node_cpu(members)
            result = asyncio.run(run_phase(
                op, nodes, space, clients=clients, seconds=args.seconds,
                value_bytes=args.value_bytes, timeout_s=REQUEST_TIMEOUT_S, rng=rng))
            cpu_after, counters_after = _node_cpu(members), _counters(members)
            if spy is not None:
                report["profile"] = _finish_py_spy(spy, args.seconds, args.py_spy)
            row = summary(result)
            delta = {k: counters_after[k] - counters_before[k] for k in STATS_KEYS}
            node_cpu = [b - a for a, b in zip(cpu_before, cpu_after, strict=True)]
            ops = max(result.ops, 1)
            row.update({
                "store_deltas": delta,
                "fsyncs_per_write": round(delta["kv_store_fsyncs"]
                                          / max(delta["kv_store_writes"], 1), 4),
                "writes_per_fsync": round(delta["kv_store_writes"]
                                          / max(delta["kv_store_fsyncs"], 1), 2),
                "fsyncs_per_op": round(delta["kv_store_fsyncs"] / ops, 4),
                "peer_messages_per_op": round(delta["transport_messages_out"] / ops, 2),
                "messages_per_write": round(delta["transport_messages_out"]
                                            / max(delta["transport_writes_out"], 1), 2),
                "node_cpu_s": [round(c, 3) for c in node_cpu],
                "node_cpu_ms_per_op": round(1e3 * sum(node_cpu) / ops, 3),
                "node_cpu_percent": round(100 * sum(node_cpu) / max(result.seconds, 1e-9), 1),
                "load_1m_before": round(load_before, 2),
                "load_1m_after": round(os.getloadavg()[0], 2),
                "profiled": spy is not None,
            })
            phases.append(row)
            print(f"  {op} x{clients}: {row['ops']} ops, {row['ops_per_s']} ops/s, "
                  f"{row['errors']} errors", flush=True)
    return phases


def table(phases: list[dict[str, Any]]) -> str:
    """The phases as an aligned text table."""
    head = ("phase", "clients", "ops", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "errors",
            "fsync/write", "fsync/op", "msgs/op", "msgs/write", "node CPU ms/op",
            "node CPU %", "gen CPU %")
    rows = [head] + [
        (p["op"], str(p["clients"]), str(p["ops"]), f"{p['ops_per_s']:.0f}",
         f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}", f"{p['p999_ms']:.2f}",
         str(p["errors"]), f"{p['fsyncs_per_write']:.3f}", f"{p['fsyncs_per_op']:.3f}",
         f"{p['peer_messages_per_op']:.2f}", f"{p['messages_per_write']:.2f}",
         f"{p['node_cpu_ms_per_op']:.2f}", f"{p['node_cpu_percent']:.0f}",
         f"{p['generator_cpu_percent']:.0f}")
        for p in phases]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    report: dict[str, Any] = {
        "nodes": args.nodes, "clients": args.clients, "seconds": args.seconds,
        "value_bytes": args.value_bytes, "keys": args.keys, "api": "riak PUT/GET",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "load_1m_at_start": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory(prefix="dynago-kv-bench-") as tmp:
        root = Path(tmp)

        def node_args(name: str) -> list[str]:
            return ["--data-dir", str(root / name)]

        with BenchCluster(logdir=root, node_args=node_args) as cluster:
            began = time.monotonic()
            cluster.start(args.nodes)
            try:
                wait_until(lambda: _converged(cluster, args.nodes),
                           timeout_s=CONVERGE_TIMEOUT_S, interval_s=0.2,
                           what="every node to list every member in its ring")
            except LaunchError as error:
                print(f"cluster did not converge: {error}", file=sys.stderr)
                return 1
            report["converged_s"] = round(time.monotonic() - began, 2)
            print(f"{args.nodes} nodes up and converged in {report['converged_s']} s; "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
            report["phases"] = measure(cluster, args, report)
    report["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(table(report["phases"]))
    print(f"{args.nodes} nodes, N=3 R=W=2, {args.value_bytes}-byte values, {args.keys} keys, "
          f"{args.seconds:g} s per phase; {report['machine']['cpus']} CPUs; 1-minute load "
          f"{report['load_1m_at_start']} at start, {report['load_1m_at_end']} at end")
    if report.get("profile"):
        print(f"py-spy profile of node 0, {args.py_spy_op} phase x{max(args.clients)} "
              f"({args.py_spy}):")
        print(render(report["profile"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
