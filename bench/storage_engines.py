"""The storage engines on this machine: durable commits, random reads, size on disk, and
the StorageActor's group commit under concurrent writers.

    python -m bench.storage_engines [--json PATH] [--dir DIR] [--engines lmdb,sqlite]

For each engine, in a fresh data dir under ``--dir`` (default: the system temp dir; use
a dir on the disk a node would use, not a tmpfs):

* commit: ``engine.commit`` of a batch of 1, 16, 64 and 256 writes of 100-byte values,
  each commit durable on return (``COMMIT_SECONDS`` or ``COMMIT_MAX`` commits per size):
  latency p50/p99 and writes per second;
* get: ``GETS`` random gets over ``KEYS`` keys (100-byte values): latency p50/p99;
* size: bytes on disk after those ``KEYS`` keys were written;
* actor: ``WRITERS`` threads each telling one Update at a time to a StorageActor and
  waiting for its reply (``ACTOR_SECONDS``): writes per commit (= per fsync), writes/s,
  acknowledgement latency p50/p99;
* burst: ``WRITERS`` threads each telling ``BURST`` Updates without waiting: writes per
  commit and writes/s until the last is acknowledged.

Prints a table and writes the figures as JSON (``--json``). Takes ~30-50 s. Timings are
for the report, not pass/fail; the decision they led to is in dynago.storage.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import lmdb

from dynago.actors.storage import StorageActor, storage_stats
from dynago.actors.storage_messages import Update
from dynago.storage import Engine, open_engine

BATCH_SIZES = (1, 16, 64, 256)
VALUE_BYTES = 100
KEYS = 100_000
GETS = 20_000
COMMIT_SECONDS = 2.5
COMMIT_MAX = 400
WRITERS = 16
ACTOR_SECONDS = 3.0
BURST = 2000


def _key(index: int) -> bytes:
    return b"bench\x00key-%08d" % index


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _spread_ms(samples_s: list[float]) -> dict[str, float]:
    return {"p50_ms": round(_percentile(samples_s, 0.50) * 1e3, 4),
            "p99_ms": round(_percentile(samples_s, 0.99) * 1e3, 4)}


def bench_commits(engine: Engine, rng: random.Random) -> dict[str, dict[str, float]]:
    """Durable commit latency per batch size (keys outside the read set)."""
    results: dict[str, dict[str, float]] = {}
    next_key = 10 * KEYS
    for size in BATCH_SIZES:
        latencies: list[float] = []
        deadline = time.monotonic() + COMMIT_SECONDS
        while len(latencies) < COMMIT_MAX and time.monotonic() < deadline:
            batch = [(_key(next_key + i), rng.randbytes(VALUE_BYTES)) for i in range(size)]
            next_key += size
            started = time.perf_counter()
            engine.commit(batch)
            latencies.append(time.perf_counter() - started)
        total = sum(latencies)
        results[str(size)] = {**_spread_ms(latencies), "commits": len(latencies),
                              "writes_per_s": round(size * len(latencies) / total)}
    return results


def load_keys(engine: Engine, rng: random.Random) -> float:
    """Write ``KEYS`` keys in commits of 1000; the seconds it took."""
    started = time.perf_counter()
    for first in range(0, KEYS, 1000):
        engine.commit([(_key(i), rng.randbytes(VALUE_BYTES)) for i in range(first, first + 1000)])
    return time.perf_counter() - started


def bench_gets(engine: Engine, rng: random.Random) -> dict[str, float]:
    latencies: list[float] = []
    for _ in range(GETS):
        key = _key(rng.randrange(KEYS))
        started = time.perf_counter()
        value = engine.get(key)
        latencies.append(time.perf_counter() - started)
        assert value is not None
    return {"p50_us": round(_percentile(latencies, 0.5) * 1e6, 2),
            "p99_us": round(_percentile(latencies, 0.99) * 1e6, 2),
            "gets_per_s": round(len(latencies) / sum(latencies))}


def bench_actor(kind: str, data_dir: Path) -> dict[str, float]:
    """``WRITERS`` closed-loop writers through one StorageActor."""
    ref = StorageActor.start(open_engine(kind, str(data_dir)))
    latencies: list[list[float]] = [[] for _ in range(WRITERS)]
    stop_at = time.monotonic() + ACTOR_SECONDS

    def writer(index: int) -> None:
        done = threading.Event()
        value = bytes(VALUE_BYTES)
        count = 0
        while time.monotonic() < stop_at:
            done.clear()
            started = time.perf_counter()
            ref.tell(Update(b"actor\x00w%02d-%08d" % (index, count), lambda _old: value,
                            lambda _new: done.set(), lambda _error: done.set()))
            if not done.wait(10.0):
                raise RuntimeError("no reply from the storage actor in 10 s")
            latencies[index].append(time.perf_counter() - started)
            count += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stats = storage_stats(ref)
    ref.stop(timeout=10)
    every = [sample for samples in latencies for sample in samples]
    return {"writers": WRITERS, "writes": stats.writes, "commits": stats.commits,
            "fsyncs": stats.fsyncs, "max_batch": stats.max_batch,
            "writes_per_commit": round(stats.writes / max(1, stats.commits), 2),
            "writes_per_s": round(stats.writes / elapsed), **_spread_ms(every)}


def bench_burst(kind: str, data_dir: Path) -> dict[str, float]:
    """``WRITERS`` threads telling ``BURST`` Updates each as fast as they can."""
    ref = StorageActor.start(open_engine(kind, str(data_dir)))
    total = WRITERS * BURST
    acked = threading.Semaphore(0)
    value = bytes(VALUE_BYTES)

    def writer(index: int) -> None:
        for count in range(BURST):
            ref.tell(Update(b"burst\x00w%02d-%08d" % (index, count), lambda _old: value,
                            lambda _new: acked.release(), lambda _error: acked.release()))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for _ in range(total):
        if not acked.acquire(timeout=30.0):
            raise RuntimeError("the storage actor stopped acknowledging")
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join()
    stats = storage_stats(ref)
    ref.stop(timeout=10)
    return {"writers": WRITERS, "writes": stats.writes, "commits": stats.commits,
            "max_batch": stats.max_batch,
            "writes_per_commit": round(stats.writes / max(1, stats.commits), 2),
            "writes_per_s": round(stats.writes / elapsed)}


def bench_engine(kind: str, root: Path) -> dict[str, Any]:
    rng = random.Random(1)
    data_dir = root / kind
    engine = open_engine(kind, str(data_dir))
    try:
        load_s = load_keys(engine, rng)
        size = engine.size_bytes()
        result: dict[str, Any] = {
            "load_100k_s": round(load_s, 2),
            "bytes_per_100k_keys": size,
            "get": bench_gets(engine, rng),
            "commit": bench_commits(engine, rng),
        }
    finally:
        engine.close()
    result["actor"] = bench_actor(kind, root / f"{kind}-actor")
    result["burst"] = bench_burst(kind, root / f"{kind}-burst")
    return result


def print_table(report: dict[str, Any]) -> None:
    engines = report["engines"]
    print(f"{'':30}" + "".join(f"{kind:>22}" for kind in engines))
    for size in BATCH_SIZES:
        cells = [engines[k]["commit"][str(size)] for k in engines]
        print(f"commit of {size:>3} p50/p99 ms       " + "".join(
            f"{c['p50_ms']:>10.3f} / {c['p99_ms']:<9.3f}" for c in cells))
        print(f"commit of {size:>3} writes/s          " + "".join(
            f"{c['writes_per_s']:>22,}" for c in cells))
    print("get p50/p99 us (100k keys)    " + "".join(
        f"{engines[k]['get']['p50_us']:>10.2f} / {engines[k]['get']['p99_us']:<9.2f}"
        for k in engines))
    print("bytes on disk per 100k keys   " + "".join(
        f"{engines[k]['bytes_per_100k_keys']:>22,}" for k in engines))
    print("load 100k keys (s)            " + "".join(
        f"{engines[k]['load_100k_s']:>22}" for k in engines))
    print(f"actor, {WRITERS} writers: writes/commit" + "".join(
        f"{engines[k]['actor']['writes_per_commit']:>22}" for k in engines))
    print("actor writes/s                " + "".join(
        f"{engines[k]['actor']['writes_per_s']:>22,}" for k in engines))
    print("actor ack p50/p99 ms          " + "".join(
        f"{engines[k]['actor']['p50_ms']:>10.3f} / {engines[k]['actor']['p99_ms']:<9.3f}"
        for k in engines))
    print(f"burst {WRITERS}x{BURST}: writes/commit   " + "".join(
        f"{engines[k]['burst']['writes_per_commit']:>22}" for k in engines))
    print("burst writes/s                " + "".join(
        f"{engines[k]['burst']['writes_per_s']:>22,}" for k in engines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--dir", type=Path, default=None,
                        help="parent of the throw-away data dirs (default: the temp dir)")
    parser.add_argument("--engines", default="lmdb,sqlite")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="dynago-storage-bench-", dir=args.dir))
    try:
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "lmdb": lmdb.version(),
                        "sqlite": sqlite3.sqlite_version, "dir": str(root)},
            "value_bytes": VALUE_BYTES, "keys": KEYS, "gets": GETS,
            "engines": {kind: bench_engine(kind, root) for kind in args.engines.split(",")},
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
