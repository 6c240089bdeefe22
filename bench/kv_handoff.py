"""How long a new node takes to receive its share of the keys (ownership handoff), and
whether an interrupted handoff resumes rather than restarts.

    python -m bench.kv_handoff [--keys 100000] [--json PATH]

Real ``dynago node`` processes on 127.0.0.1 with SQLite data dirs. To keep the run
short the three first nodes' stores are filled before they start (with 3 nodes and
N = 3 every node holds every key; each data dir also gets the ring's members, as a node
that ran before keeps them), so the figures are of the handoff alone:

1. **join**: a 4th node joins; the time from its start until every node reports no
   handoff pending and the joiner's store holds exactly its share (keys whose preference
   list names it), with keys and bytes the old holders sent;
2. **interrupted**: a 5th node joins and is SIGKILLed once it holds about
   ``--interrupt-at`` of its share, then restarted on the same data dir and ports; the
   time until done, and how many keys were sent again (only the chunks that were not
   acknowledged when it died, never the whole partitions).

Figures are indicative when the machine is shared with other work (the report gives
the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import BenchCluster, Member, stop_on_sigterm
from dynago.kv import version
from dynago.kv.model import Content, ObjectKey
from dynago.kv.ring import Ring, RingMember
from dynago.launch import LaunchError, wait_until
from dynago.storage import open_engine
from dynago.storage.ring_file import RING_FILE, write_ring_file

BUCKET = "bench"
TIMEOUT_S = 600.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_handoff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--interrupt-at", type=float, default=0.3,
                        help="kill the 5th node when it holds this fraction of its share")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.keys < 1 or args.value_bytes < 1 or not 0 < args.interrupt_at < 1:
        parser.error("--keys and --value-bytes must be >= 1, --interrupt-at in (0, 1)")
    return args


def names(n: int) -> list[str]:
    return [f"n{i:03d}" for i in range(n)]


def seed_stores(root: Path, keys: int, value_bytes: int) -> None:
    members: list[tuple[str, str | None]] = [(name, None) for name in names(3)]
    for name in names(3):
        (root / name).mkdir()
        engine = open_engine("sqlite", str(root / name))
        try:
            for start in range(0, keys, 5000):
                engine.commit([(ObjectKey(BUCKET, f"k{i:06d}").storage_key(), version.encode(
                    version.coordinate(version.EMPTY, None, "n000",
                                       Content(b"x" * value_bytes))))
                    for i in range(start, min(keys, start + 5000))])
        finally:
            engine.close()
        write_ring_file(root / name / RING_FILE, members)


def share(n: int, keys: int, name: str) -> int:
    ring = Ring.build([RingMember(m) for m in names(n)])
    return sum(1 for i in range(keys)
               if name in ring.preference_list_for(ObjectKey(BUCKET, f"k{i:06d}")))


def stats(members: list[Member]) -> list[dict[str, int]]:
    return [m.stats() for m in members]


def settled(members: list[Member], name: str, want: int) -> bool:
    readings = stats(members)
    by_name = dict(zip((m.name for m in members), readings, strict=True))
    return (all(r.get("kv_handoffs_pending", 1) == 0 for r in readings)
            and by_name[name].get("kv_store_keys", -1) >= want)


def totals(members: list[Member]) -> dict[str, int]:
    out: dict[str, int] = {}
    for reading in stats(members):
        for key in ("kv_handoff_keys_sent", "kv_handoff_bytes_sent", "kv_handoff_retries",
                    "kv_handoff_keys_acked"):
            out[key] = out.get(key, 0) + reading.get(key, 0)
    return out


def join(cluster: BenchCluster, n: int, keys: int, interrupt_at: float | None) -> dict[str, Any]:
    name = f"n{n - 1:03d}"
    want = share(n, keys, name)
    before = totals(cluster.members)
    began = time.monotonic()
    member = cluster.launch(name)
    cluster.members.append(member)
    killed_at: float | None = None
    if interrupt_at is not None:
        try:
            def part() -> int:
                keys = int(member.stats().get("kv_store_keys", 0))
                return keys if keys >= interrupt_at * want else 0

            held = wait_until(part, timeout_s=TIMEOUT_S, interval_s=0.05,
                              what=f"{name} to take a part")
            member.process.kill()
            member.process.proc.wait(10)
            killed_at = time.monotonic() - began
            bind, http = member.address, member.http
            cluster.members.remove(member)
            member = cluster.launch(name, bind=bind, http=http)
            cluster.members.append(member)
        except LaunchError:
            held = -1
    wait_until(lambda: settled(cluster.members, name, want), timeout_s=TIMEOUT_S,
               interval_s=0.25, what=f"{name}'s handoff to finish")
    seconds = time.monotonic() - began
    after = totals(cluster.members)
    sent = after["kv_handoff_keys_sent"] - before.get("kv_handoff_keys_sent", 0)
    result: dict[str, Any] = {
        "node": name, "nodes": n, "share_keys": want, "seconds": round(seconds, 2),
        "keys_per_s": round(want / seconds), "keys_sent": sent,
        "mb_sent": round((after["kv_handoff_bytes_sent"]
                          - before.get("kv_handoff_bytes_sent", 0)) / 1e6, 1),
        "retries": after["kv_handoff_retries"] - before.get("kv_handoff_retries", 0),
        "held_keys": member.stats().get("kv_store_keys", 0),
    }
    if interrupt_at is not None:
        result.update(killed_after_s=None if killed_at is None else round(killed_at, 2),
                      held_when_killed=held)
    return result


def table(phases: list[dict[str, Any]]) -> str:
    head = ("phase", "nodes", "share keys", "seconds", "keys/s", "keys sent", "MB sent",
            "retries", "killed at keys")
    rows = [head] + [(p["phase"], str(p["nodes"]), str(p["share_keys"]), f"{p['seconds']:.1f}",
                      str(p["keys_per_s"]), str(p["keys_sent"]), f"{p['mb_sent']:.1f}",
                      str(p["retries"]), str(p.get("held_when_killed", "-")))
                     for p in phases]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |"
                     for r in rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    report: dict[str, Any] = {"keys": args.keys, "value_bytes": args.value_bytes,
                              "cpus": os.cpu_count(),
                              "load_1m_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="dynago-handoff-bench-") as tmp:
        root = Path(tmp)
        began = time.monotonic()
        seed_stores(root, args.keys, args.value_bytes)
        report["seed_s"] = round(time.monotonic() - began, 1)

        def node_args(name: str) -> list[str]:
            return ["--data-dir", str(root / name)]

        with BenchCluster(logdir=root, node_args=node_args) as cluster:
            cluster.start(3)
            try:
                wait_until(lambda: all(m.stats().get("kv_ring_members") == 3
                                       and m.stats().get("kv_handoffs_pending") == 0
                                       for m in cluster.members),
                           timeout_s=60, interval_s=0.2, what="a ring of three")
                phases = [dict(join(cluster, 4, args.keys, None), phase="join"),
                          dict(join(cluster, 5, args.keys, args.interrupt_at),
                               phase="interrupted")]
            except LaunchError as error:
                print(f"handoff bench failed: {error}", file=sys.stderr)
                return 1
    report["phases"] = phases
    report["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(table(phases))
    print(f"{args.keys} keys of {args.value_bytes} bytes, N=3, SQLite; stores filled in "
          f"{report['seed_s']} s before the start; {report['cpus']} CPUs; 1-minute load "
          f"{report['load_1m_at_start']} at start, {report['load_1m_at_end']} at end")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
