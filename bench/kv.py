"""dynago against etcd and Redis on the same machine, with the same load generator.

    python -m bench.kv [--systems dynago,etcd,redis,dynago-1] [--workloads A,B,C]
        [--clients 1,16,64] [--seconds 10] [--keys 100000] [--value-bytes 100]
        [--out DIR] [--smoke]

Starts every system itself (bench.kv_systems: dynago 3 nodes N=3 R=W=2, etcd 3 members,
Redis appendfsync always, dynago 1 node N=1; a system whose binary is absent is skipped
with a line saying so), writes every key once into each (the load phase), then for each
(workload, clients) cell runs every system in turn, the order rotated from cell to cell,
so that the machine's drift falls on all of them alike. Workloads are YCSB's A (50 %
reads, 50 % updates), B (95/5) and C (reads only), keys chosen Zipfian (bench.kv_gen).

Per cell and system: ops/s, p50/p99/p99.9 latency, errors, the servers' CPU per
operation (from /proc: every process of the system), the generator's own CPU, and the
ratio of ops/s to dynago (3 nodes) and to dynago-1. Before the cells, redis-benchmark's
GET rate at the largest client count is set beside this generator's against the same
Redis: where this generator gets far less, it was the limit there, not Redis.

Writes ``kv.json`` and ``kv.md`` (and ``kv_ops_per_s.png`` / ``kv_p99_ms.png`` when
matplotlib is installed) into ``--out`` (default bench-results/). Every process started
is stopped by its PID, also on an error, Ctrl-C or SIGTERM. Figures are for the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import stop_on_sigterm
from bench.kv_gen import WORKLOADS, CellResult, run, summary
from bench.kv_report import markdown, plot, table
from bench.kv_systems import SYSTEMS, Running, missing, start
from dynago.launch import LaunchError

LOAD_CLIENTS = 32
LOAD_BOUND_S = 3600.0


def _list(kind: str, allowed: tuple[str, ...] | None = None) -> Any:
    def parse(text: str) -> list[Any]:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        if kind == "int":
            try:
                numbers = [int(p) for p in parts]
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None
            if any(n < 1 for n in numbers):
                raise argparse.ArgumentTypeError(f"must be ≥ 1, got {text!r}")
            return numbers
        wrong = [p for p in parts if allowed is not None and p not in allowed]
        if wrong:
            raise argparse.ArgumentTypeError(f"unknown {wrong}; choose from {allowed}")
        return parts
    return parse


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", type=_list("str", SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--workloads", type=_list("str", tuple(WORKLOADS)),
                        default=list(WORKLOADS))
    parser.add_argument("--clients", type=_list("int"), default=[1, 16, 64])
    parser.add_argument("--seconds", type=_positive(float), default=10.0,
                        help="duration of each system's run in each cell (default 10)")
    parser.add_argument("--keys", type=_positive(int), default=100_000)
    parser.add_argument("--value-bytes", type=_positive(int), default=100)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true",
                        help="seconds long: workload A, 1 and 4 clients, 200 keys, 1 s")
    parser.add_argument("--note", default="", help="a line saved with the results")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workloads, args.clients, args.keys, args.seconds = ["A"], [1, 4], 200, 1.0
    return args


def _drive(system: Running, args: argparse.Namespace, *, clients: int, read_fraction: float,
           seconds: float, rng: random.Random, sequential: bool = False) -> CellResult:
    value = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(args.value_bytes))
    return asyncio.run(run(system.wire, system.endpoints, clients=clients, seconds=seconds,
                           read_fraction=read_fraction, keys=args.keys, value=value,
                           rng=rng, sequential=sequential))


def load(system: Running, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """Write every key once; refuse to go on if any write failed (reads would miss)."""
    began = time.monotonic()
    result = _drive(system, args, clients=LOAD_CLIENTS, read_fraction=0.0,
                    seconds=LOAD_BOUND_S, rng=rng, sequential=True)
    if result.ops != args.keys:
        raise LaunchError(f"{system.name}: the load wrote {result.ops} of {args.keys} keys "
                          f"({dict(result.errors)})")
    return {"seconds": round(time.monotonic() - began, 2),
            "ops_per_s": round(result.ops / max(result.seconds, 1e-9), 1)}


def calibrate(redis: Running, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """redis-benchmark's GET rate beside this generator's (reads only, same Redis, same
    client count): how far this generator is from what the server can answer."""
    clients = max(args.clients)
    mine = summary(_drive(redis, args, clients=clients, read_fraction=1.0,
                          seconds=args.seconds, rng=rng))
    found: dict[str, Any] = {"clients": clients, "generator_ops_per_s": mine["ops_per_s"],
                             "generator_cpu_percent": mine["generator_cpu_percent"]}
    tool = shutil.which("redis-benchmark")
    if tool is None:
        found["redis_benchmark"] = "absent (apt-get install redis-tools)"
        return found
    host, port = redis.endpoints[0]
    requests = max(1000, int(mine["ops_per_s"] * args.seconds * 2))
    out = subprocess.run(
        [tool, "-h", host, "-p", str(port), "-c", str(clients), "-n", str(requests),
         "-t", "get", "-r", str(args.keys), "-d", str(args.value_bytes), "-q"],
        capture_output=True, text=True, timeout=args.seconds * 10 + 60, check=False)
    rates = re.findall(r"GET: ([\d.]+) requests per second", out.stdout.replace("\r", "\n"))
    found["redis_benchmark_ops_per_s"] = float(rates[-1]) if rates else None
    return found


def measure(running: dict[str, Running], args: argparse.Namespace,
            rng: random.Random) -> list[dict[str, Any]]:
    """Every cell; within a cell every system once, the order rotated per cell."""
    rows: list[dict[str, Any]] = []
    names = [n for n in args.systems if n in running]
    cell = 0
    for workload in args.workloads:
        for clients in args.clients:
            order = names[cell % len(names):] + names[:cell % len(names)]
            cell += 1
            for name in order:
                system = running[name]
                load_before, cpu_before = os.getloadavg()[0], system.cpu_s()
                result = _drive(system, args, clients=clients,
                                read_fraction=WORKLOADS[workload], seconds=args.seconds,
                                rng=rng)
                server_cpu = system.cpu_s() - cpu_before
                row = summary(result)
                row.update({
                    "workload": workload, "clients": clients, "system": name,
                    "server_cpu_s": round(server_cpu, 3),
                    "server_cpu_us_per_op": round(1e6 * server_cpu / max(result.ops, 1), 1),
                    "server_cpu_percent": round(100 * server_cpu / max(result.seconds, 1e-9),
                                                1),
                    "load_1m_before": round(load_before, 2),
                })
                rows.append(row)
                print(f"  {workload} x{clients} {name}: {row['ops_per_s']:.0f} ops/s, "
                      f"p99 {row['p99_ms']:.2f} ms, {row['errors']} errors", flush=True)
    _ratios(rows)
    return rows


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's ops/s and p99 over dynago's (and dynago-1's) in the same cell."""
    for reference, field in (("dynago", "vs_dynago"), ("dynago-1", "vs_dynago_1")):
        base = {(r["workload"], r["clients"]): r for r in rows if r["system"] == reference}
        for row in rows:
            ref = base.get((row["workload"], row["clients"]))
            if ref and ref["ops_per_s"] > 0 and ref["p99_ms"] > 0:
                row[field] = {"ops_per_s": round(row["ops_per_s"] / ref["ops_per_s"], 2),
                              "p99": round(row["p99_ms"] / ref["p99_ms"], 2)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    report: dict[str, Any] = {
        "command": "python -m bench.kv " + " ".join(argv if argv is not None else sys.argv[1:]),
        "workloads": {w: WORKLOADS[w] for w in args.workloads}, "clients": args.clients,
        "seconds": args.seconds, "keys": args.keys, "value_bytes": args.value_bytes,
        "key_choice": "scrambled Zipfian, theta 0.99", "note": args.note,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "load_1m_at_start": round(os.getloadavg()[0], 2), "skipped": {}, "systems": {},
    }
    rng = random.Random(args.seed)
    running: dict[str, Running] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="dynago-bench-kv-") as tmp:
            for name in args.systems:
                reason = missing(name)
                if reason:
                    print(reason, flush=True)
                    report["skipped"][name] = reason
                    continue
                system = running[name] = start(name, Path(tmp))
                loaded = load(system, args, rng)
                report["systems"][name] = {"describe": system.describe,
                                           "version": system.version, "load": loaded}
                print(f"{name} ({system.describe}) up; {args.keys} keys written in "
                      f"{loaded['seconds']} s", flush=True)
            if not running:
                print("no system could be started", file=sys.stderr)
                return 1
            if "redis" in running and not args.smoke:
                report["calibration"] = calibrate(running["redis"], args, rng)
                print(f"generator calibration: {report['calibration']}", flush=True)
            report["rows"] = measure(running, args, rng)
    except LaunchError as error:
        print(f"bench.kv: {error}", file=sys.stderr)
        return 1
    finally:
        for system in running.values():
            system.stop()
    report["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(table(report["rows"]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kv.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "kv.md").write_text(markdown(report))
    written = plot(report, args.out)
    print(f"wrote {args.out / 'kv.json'}, {args.out / 'kv.md'}"
          + "".join(f", {p}" for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
