"""Where a node's time goes, from a py-spy ``--format raw`` profile (collapsed stacks:
``frame;frame;...;leaf COUNT`` a line, each frame ``function (file:line)``).

    python -m bench.profile_summary PROFILE.txt [--top 15]

Samples whose leaf is a wait (a condition, a selector, an idle worker) are set apart:
py-spy's idle detection misses some of them. Every other sample goes to the category of
its deepest frame that matches one (so a protobuf decode called from the gRPC stream
counts as encode/decode, not as the stream); a sample with no matching frame goes to the
thread it ran on (its event loop's own machinery: task steps, callbacks).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WAITS = ("Condition.wait (threading.py", ".select (selectors.py", "Event.wait (threading.py",
         "_worker (concurrent/futures/thread.py:81)", "Queue.get (queue.py")
"""Leaves of a thread that waits (substrings of the leaf frame): not work."""

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("storage commit (SQLite, fsync)", ("SqliteEngine.commit", "sqlite3")),
    ("storage read", ("SqliteEngine.get", "dynago/storage/")),
    ("storage actor", ("dynago/actors/storage",)),
    ("encode/decode (codec, protobuf, json, base64)",
     ("dynago/transport/codec", "google/protobuf", "json/", "base64", "pickle")),
    ("thread hand-off (loop wake-ups, notify)",
     ("_write_to_self", "_read_from_self", "call_soon_threadsafe", "Condition.notify")),
    ("HTTP (aiohttp, dynago.http)", ("aiohttp/", "dynago/http/")),
    ("gRPC stream (dynago.transport, grpc)", ("dynago/transport/", "grpc/")),
    ("KvActor (dynago.actors.kv*, dynago.kv)", ("dynago/actors/kv", "dynago/kv/")),
    ("membership (actors, core)", ("dynago/actors/membership", "dynago/actors/peer",
                                   "dynago/core/")),
    ("timers", ("dynago/actors/timers",)),
    ("pykka (actor mailbox, futures)", ("pykka/",)),
)

THREADS = (("HttpServer._run", "HTTP server loop"), ("GrpcTransport._run_loop", "gRPC loop"),
           ("Actor._actor_loop", "pykka actors"), ("ThreadScheduler._run", "timer thread"),
           ("_worker", "thread pool"), ("run_node", "main thread"))


def parse(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """(frames root first, count) per line; malformed lines are skipped."""
    stacks = []
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def thread_of(frames: list[str]) -> str:
    for marker, name in THREADS:
        if any(frame.startswith(marker + " ") for frame in frames[:6]):
            return name
    if len(frames) <= 3 and frames[-1].startswith("Thread.run"):
        return "native thread (a C target: grpc's poller)"
    return "other thread"


def category_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, patterns in CATEGORIES:
            if any(p in frame for p in patterns):
                return name
    return f"{thread_of(frames)}: event loop and other"


def summarise(stacks: list[tuple[list[str], int]], top: int = 15) -> dict[str, Any]:
    """Sample counts: total, waiting, busy by category, by thread, and the top leaves."""
    total = sum(count for _frames, count in stacks)
    waiting = 0
    categories: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        if any(w in frames[-1] for w in WAITS):
            waiting += count
            continue
        categories[category_of(frames)] += count
        threads[thread_of(frames)] += count
        leaves[frames[-1]] += count
    busy = max(total - waiting, 1)

    def shares(counter: Counter[str], limit: int | None = None) -> list[dict[str, Any]]:
        return [{"name": name, "samples": n, "percent_of_busy": round(100 * n / busy, 1)}
                for name, n in counter.most_common(limit)]

    return {"samples": total, "waiting": waiting, "busy": total - waiting,
            "categories": shares(categories), "threads": shares(threads),
            "top_leaves": shares(leaves, top)}


def render(summary: dict[str, Any]) -> str:
    lines = [f"{summary['samples']} samples: {summary['busy']} busy, "
             f"{summary['waiting']} waiting (excluded below)"]
    for title, key in (("by category", "categories"), ("by thread", "threads"),
                       ("top leaf frames", "top_leaves")):
        lines.append(f"{title} (% of busy samples):")
        lines += [f"  {row['percent_of_busy']:5.1f}  {row['name']}" for row in summary[key]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    with open(args.profile) as source:
        print(render(summarise(parse(source), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
