"""The scale of the data: a million keys of 1 KiB on a 3-node cluster (issue 15).

    python -m bench.kv_scale [--keys 1000000] [--value-bytes 1024] [--clients 32]
        [--steps 10] [--get-seconds 20] [--get-clients 16] [--out DIR]

Starts 3 dynago nodes (N=3, R=W=2, SQLite with durable group commit, a data dir each;
bench.kv_systems, as ``bench.kv`` does), then writes keys ``0 .. keys-1`` once each with
``--clients`` closed-loop connections (bench.kv_gen, ``POST /kvstore``, round-robin over
the nodes), in ``--steps`` equal slices. After each slice it records the load rate, and
per node the resident set (VmRSS) and the data dir's size on disk (every file in it:
SQLite's database, WAL and shared-memory files, the hint and ring files). At the end:

* load time and rate, and any failed write (the run stops at the first slice with one:
  reads would miss);
* on-disk size per node against the raw data it holds (keys × (key + value bytes) × N /
  nodes) — the engine's overhead;
* RSS per node against the number of keys loaded: it must not grow with the key count
  beyond the engine's own cache (SQLite's page cache is bounded by its ``cache_size``);
* gets afterwards, ``--get-seconds`` each, ``--get-clients`` connections: a scrambled
  Zipfian choice of key (YCSB C, as in ``bench.kv``) and a uniform one (every key as
  likely: most reads miss any cache), with ops/s, p50, p99, p99.9 and errors.

It prints one table per part and saves ``kv_scale.json`` in ``--out``. Every node is
stopped by its PID at the end, also on an error, Ctrl-C or SIGTERM. Figures are for the
report, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import stop_on_sigterm
from bench.kv_gen import CellResult, key_name, run, summary
from bench.kv_systems import Running, start_dynago
from bench.procstat import proc_status
from dynago.launch import LaunchError

NODES = 3
N_VAL = 3
GET_TIMEOUT_S = 5.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--clients", type=int, default=32, help="load connections")
    parser.add_argument("--steps", type=int, default=10, help="load slices, a sample each")
    parser.add_argument("--get-seconds", type=float, default=20.0)
    parser.add_argument("--get-clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-results/kv_scale"))
    args = parser.parse_args(argv)
    if args.keys < 1 or args.value_bytes < 1 or args.clients < 1 or args.get_clients < 1:
        parser.error("--keys, --value-bytes, --clients and --get-clients must be >= 1")
    if not 1 <= args.steps <= args.keys:
        parser.error("--steps must be between 1 and --keys")
    if args.get_seconds <= 0:
        parser.error("--get-seconds must be > 0")
    return args


def files(path: Path) -> dict[str, int]:
    """Each file of a data dir (relative path) and its bytes: the database, its WAL."""
    found: dict[str, int] = {}
    for root, _dirs, names in os.walk(path):
        for name in names:
            full = Path(root) / name
            try:
                found[str(full.relative_to(path))] = full.stat().st_size
            except FileNotFoundError:
                continue  # a WAL checkpoint removed it meanwhile
    return dict(sorted(found.items()))


def dir_bytes(path: Path) -> int:
    """Bytes of every regular file under ``path`` (a missing path: 0)."""
    return sum(files(path).values())


def sample(system: Running, data_dirs: list[Path]) -> list[dict[str, int]]:
    """Per node: VmRSS (KiB) and its data dir's bytes."""
    return [{"rss_kib": proc_status(pid).get("VmRSS", 0), "disk_bytes": dir_bytes(d)}
            for pid, d in zip(system.pids, data_dirs, strict=True)]


def load(system: Running, data_dirs: list[Path], args: argparse.Namespace,
         value: bytes, rng: random.Random) -> dict[str, Any]:
    """Write every key once, slice by slice; a sample after each slice."""
    steps: list[dict[str, Any]] = []
    written, began = 0, time.monotonic()
    bounds = [args.keys * (i + 1) // args.steps for i in range(args.steps)]
    for upto in bounds:
        slice_began = time.monotonic()
        result = asyncio.run(run(system.wire, system.endpoints, clients=args.clients,
                                 seconds=3600.0, read_fraction=0.0, keys=upto, value=value,
                                 rng=rng, sequential=True, first=written))
        seconds = time.monotonic() - slice_began
        wrote = len(result.latencies_s["put"])
        step = {"keys": upto, "wrote": wrote, "seconds": round(seconds, 2),
                "puts_per_s": round(wrote / max(seconds, 1e-9), 1),
                "errors": dict(result.errors), "nodes": sample(system, data_dirs),
                "load_1m": round(os.getloadavg()[0], 2)}
        steps.append(step)
        rss = "/".join(f"{n['rss_kib'] / 1024:.0f}" for n in step["nodes"])
        disk = "/".join(f"{n['disk_bytes'] / 2**20:.0f}" for n in step["nodes"])
        print(f"  {upto:>9} keys  {step['puts_per_s']:>7} puts/s  RSS MiB {rss}  "
              f"disk MiB {disk}  errors {sum(result.errors.values())}", flush=True)
        if wrote != upto - written or result.errors:
            raise LaunchError(f"the load wrote {wrote} of {upto - written} keys "
                              f"({dict(result.errors)}): stopping")
        written = upto
    seconds = time.monotonic() - began
    return {"seconds": round(seconds, 1), "puts_per_s": round(written / seconds, 1),
            "steps": steps}


def gets(system: Running, args: argparse.Namespace, rng: random.Random,
         uniform: bool) -> dict[str, Any]:
    result: CellResult = asyncio.run(run(
        system.wire, system.endpoints, clients=args.get_clients, seconds=args.get_seconds,
        read_fraction=1.0, keys=args.keys, value=b"", rng=rng, uniform=uniform,
        timeout_s=GET_TIMEOUT_S))
    row = summary(result)
    row["choice"] = "uniform" if uniform else "zipfian"
    return row


def report_tables(report: dict[str, Any]) -> str:
    raw_per_node = report["raw_bytes_per_node"]
    lines = ["load (per slice; per node RSS and data dir size)",
             "keys  puts/s  " + "  ".join(f"RSS{i} MiB  disk{i} MiB" for i in range(NODES))]
    for step in report["load"]["steps"]:
        cells = "  ".join(f"{n['rss_kib'] / 1024:8.1f}  {n['disk_bytes'] / 2**20:9.1f}"
                          for n in step["nodes"])
        lines.append(f"{step['keys']}  {step['puts_per_s']}  {cells}")
    last = report["load"]["steps"][-1]["nodes"]
    lines.append("")
    lines.append(f"raw data per node (keys x (key + value) x N / nodes): "
                 f"{raw_per_node / 2**20:.1f} MiB")
    for i, node in enumerate(last):
        biggest = sorted(report["files_bytes"][i].items(), key=lambda kv: -kv[1])[:3]
        parts = ", ".join(f"{name} {size / 2**20:.1f}" for name, size in biggest)
        lines.append(f"node {i}: {node['disk_bytes'] / 2**20:.1f} MiB on disk = "
                     f"{node['disk_bytes'] / max(raw_per_node, 1):.2f} x raw ({parts}); "
                     f"RSS {report['rss_empty_kib'][i] / 1024:.1f} MiB empty -> "
                     f"{node['rss_kib'] / 1024:.1f} MiB loaded")
    lines.append("")
    lines.append("gets after the load: choice  ops/s  p50 ms  p99 ms  p99.9 ms  errors")
    for row in report["gets"]:
        lines.append(f"  {row['choice']}  {row['ops_per_s']}  {row['p50_ms']}  "
                     f"{row['p99_ms']}  {row['p999_ms']}  {row['errors']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    rng = random.Random(args.seed)
    value = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(args.value_bytes))
    key_bytes = len(key_name(0))
    raw_per_node = args.keys * (key_bytes + args.value_bytes) * N_VAL // NODES
    report: dict[str, Any] = {
        "nodes": NODES, "n_val": N_VAL, "keys": args.keys, "value_bytes": args.value_bytes,
        "key_bytes": key_bytes, "clients": args.clients, "get_clients": args.get_clients,
        "get_seconds": args.get_seconds, "raw_bytes_per_node": raw_per_node,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "load_1m_at_start": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory(prefix="dynago-kv-scale-") as tmp:
        root = Path(tmp)
        system = start_dynago(root, NODES)
        try:
            data_dirs = system.data_dirs
            missing = [str(d) for d in data_dirs if not d.is_dir()]
            if len(data_dirs) != NODES or missing:
                raise LaunchError(f"expected {NODES} data dirs, missing {missing}")
            report["description"] = system.describe
            report["rss_empty_kib"] = [n["rss_kib"] for n in sample(system, data_dirs)]
            print(f"{system.describe}: loading {args.keys} keys of {args.value_bytes} "
                  f"bytes with {args.clients} clients", flush=True)
            report["load"] = load(system, data_dirs, args, value, rng)
            report["gets"] = [gets(system, args, rng, uniform=False),
                              gets(system, args, rng, uniform=True)]
            report["after_gets"] = sample(system, data_dirs)
            report["files_bytes"] = [files(d) for d in data_dirs]
        except LaunchError as error:
            print(f"kv_scale: {error}", file=sys.stderr)
            return 1
        finally:
            system.stop()
    report["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(report_tables(report))
    print(f"load: {args.keys} keys in {report['load']['seconds']} s "
          f"({report['load']['puts_per_s']} puts/s); 1-minute load "
          f"{report['load_1m_at_start']} at start, {report['load_1m_at_end']} at end; "
          f"{report['machine']['cpus']} CPUs")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "kv_scale.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
