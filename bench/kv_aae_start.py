"""A node's start on a big store: anti-entropy's index built from an old store, then read
back at the next start (issue 15, "Scale of the data").

    python -m bench.kv_aae_start [--keys 1000000] [--value-bytes 1024] [--out DIR]

Writes ``--keys`` objects of ``--value-bytes`` straight into a SQLite data dir, the way
a node from before the index on disk left its store (objects, no index records, no
marker), then starts one real node process on it (N=1) twice, stopping it by its PID in
between:

1. **first start** (the upgrade): the node rebuilds the index from the objects, a page
   per transaction, then builds its trees from the records;
2. **second start**: the records are complete, the trees are read from them.

For each start: seconds from the spawn to the ready line and to ``kv_aae_ready`` on
``/v1/stats``, the node's RSS then and its peak (VmHWM), CPU seconds of the node, the
keys in its trees (``kv_aae_keys``, which must equal ``--keys``), whether it rebuilt;
and the data dir's size before the first start and after it (what the records add).
Prints one table, saves ``kv_aae_start.json`` in ``--out``. Figures are for the report,
not pass/fail; the run fails only if a start never gets ready or indexes another count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import BenchCluster, stop_on_sigterm
from bench.kv_gen import key_name
from bench.kv_scale import dir_bytes
from bench.procstat import cpu_seconds, proc_status
from dynago.kv import version
from dynago.kv.model import Content, ObjectKey
from dynago.launch import LaunchError, wait_until
from dynago.storage import open_engine

FILL_BATCH = 10_000
READY_TIMEOUT_S = 3600.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_aae_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("bench-results/kv_aae_start"))
    args = parser.parse_args(argv)
    if args.keys < 1 or args.value_bytes < 1:
        parser.error("--keys and --value-bytes must be >= 1")
    return args


def fill(data_dir: Path, keys: int, value_bytes: int) -> float:
    """Write ``keys`` objects into a new SQLite store, no index; seconds it took."""
    began = time.monotonic()
    engine = open_engine("sqlite", str(data_dir))
    try:
        payload = b"v" * value_bytes
        for first in range(0, keys, FILL_BATCH):
            engine.commit([
                (ObjectKey("bench", key_name(i)).storage_key(),
                 version.encode(version.coordinate(version.EMPTY, None, "n000",
                                                   Content(payload))))
                for i in range(first, min(keys, first + FILL_BATCH))])
    finally:
        engine.close()
    return time.monotonic() - began


def one_start(root: Path, data_dir: Path, config: Path, life: str) -> dict[str, Any]:
    """Start the node on ``data_dir``, wait for its trees, sample it, stop it."""
    with BenchCluster(logdir=root / life,
                      node_args=lambda _n: ["--data-dir", str(data_dir),
                                            "--config", str(config)]) as cluster:
        (root / life).mkdir()
        spawned = time.time()
        member = cluster.launch("n000")
        ready_s = time.time() - spawned
        stats: dict[str, int] = {}

        def built() -> bool:
            nonlocal stats
            stats = member.stats()
            return bool(stats.get("kv_aae_ready"))

        wait_until(built, timeout_s=READY_TIMEOUT_S, interval_s=0.2,
                   what=f"the {life} start's anti-entropy trees")
        trees_s = time.time() - spawned
        status = proc_status(member.pid, ("VmRSS", "VmHWM"))
        cpu = cpu_seconds(member.pid)
    return {"ready_s": round(ready_s, 2), "trees_s": round(trees_s, 2),
            "rss_kib": status.get("VmRSS", 0), "peak_rss_kib": status.get("VmHWM", 0),
            "cpu_s": round(cpu, 2), "keys_in_trees": stats.get("kv_aae_keys", -1),
            "rebuilt": stats.get("kv_aae_index_rebuilds", -1),
            "records_dropped": stats.get("kv_aae_records_dropped", -1)}


def table(report: dict[str, Any]) -> str:
    lines = [f"{'start':<8} {'ready s':>8} {'trees s':>8} {'RSS MiB':>8} {'peak MiB':>9} "
             f"{'CPU s':>7} {'keys':>9} {'rebuilt':>8}"]
    for life in ("first", "second"):
        r = report[life]
        lines.append(f"{life:<8} {r['ready_s']:>8} {r['trees_s']:>8} "
                     f"{r['rss_kib'] / 1024:>8.1f} {r['peak_rss_kib'] / 1024:>9.1f} "
                     f"{r['cpu_s']:>7} {r['keys_in_trees']:>9} {r['rebuilt']:>8}")
    before, after = report["disk_before_bytes"], report["disk_after_bytes"]
    lines.append(f"data dir: {before / 2**20:.1f} MiB before the index, "
                 f"{after / 2**20:.1f} MiB with it (+{100 * (after - before) / before:.1f} %)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="dynago-aae-start-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        config = root / "node.toml"
        config.write_text("[membership]\nn_val = 1\n")
        print(f"writing {args.keys} objects of {args.value_bytes} bytes into an old-layout "
              f"store (no index)", flush=True)
        fill_s = fill(data_dir, args.keys, args.value_bytes)
        disk_before = dir_bytes(data_dir)
        try:
            first = one_start(root, data_dir, config, "first")
            disk_after = dir_bytes(data_dir)
            second = one_start(root, data_dir, config, "second")
        except LaunchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    report = {"keys": args.keys, "value_bytes": args.value_bytes, "fill_s": round(fill_s, 1),
              "disk_before_bytes": disk_before, "disk_after_bytes": disk_after,
              "first": first, "second": second, "cpus": os.cpu_count(),
              "python": platform.python_version()}
    print(table(report))
    wrong = [life for life in ("first", "second")
             if report[life]["keys_in_trees"] != args.keys]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "kv_aae_start.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    if wrong:
        print(f"error: the {' and '.join(wrong)} start indexed another number of keys",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
