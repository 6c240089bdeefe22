"""Event stream delivery and the cost of tags and history (in-process, loopback HTTP).

    python -m bench.events [--events 300] [--burst 1000] [--out bench-results/events.json]

* One in-process node (MemoryNetwork, ``Config.local()``) with its admin API on
  127.0.0.1:0 and one client reading ``GET /v1/events``. ``--events`` members are added
  one at a time (5 ms apart); for each, the time from ``api.add`` to the client reading
  its ``joined`` message. Then ``--burst`` members merged in batches of 100 at once: how
  many of their events reach the client, and whether it was dropped as too slow.
* Wire size of one Gossip of one record: no tags, two short tags, the largest record
  (255-character name and origin, tags at every bound).
* A full ``History`` (2048 members x 32 changes): memory traced by tracemalloc (entries and
  the records they hold) and the time of one ``record``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
import tracemalloc
from pathlib import Path

import pykka

from dynago.actors import api
from dynago.config import Config
from dynago.core import EventKind, Member, MemberEvent, Status
from dynago.core.history import History
from dynago.core.messages import Gossip
from dynago.node import Node
from dynago.transport import codec
from dynago.transport.memory import MemoryNetwork


def stream_delivery(count: int, burst: int) -> dict[str, object]:
    node = Node(bind="127.0.0.1:7999", name="a", config=Config.local(),
                transport=MemoryNetwork().transport(), http_bind="127.0.0.1:0").start()
    membership, http_address, admin = node.membership, node.http_address, node.http
    assert membership is not None and http_address is not None and admin is not None, (
        "the node started")
    try:
        host, port = http_address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/v1/events?kinds=joined")
        response = connection.getresponse()
        arrived: dict[str, float] = {}

        def read() -> None:
            while line := response.readline():
                if line.startswith(b"data: "):
                    arrived.setdefault(json.loads(line[6:])["name"], time.perf_counter())

        threading.Thread(target=read, daemon=True).start()
        time.sleep(0.3)  # the stream is set up
        sent: dict[str, float] = {}
        for i in range(count):
            name = f"m{i}"
            sent[name] = time.perf_counter()
            api.add(membership, Member(name, f"127.0.0.1:{1000 + i}"))
            time.sleep(0.005)
        deadline = time.monotonic() + 10
        while len(arrived) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        latencies = sorted((arrived[n] - sent[n]) * 1000 for n in sent if n in arrived)
        started = time.perf_counter()
        for b in range(burst // 100):
            api.merge(membership, [Member(f"b{b}-{i}", f"127.0.0.1:{2000 + i}")
                                        for i in range(100)])
        merged_ms = (time.perf_counter() - started) * 1000
        deadline = time.monotonic() + 10
        while len(arrived) < count + burst and time.monotonic() < deadline:
            time.sleep(0.01)
        connection.close()
        return {
            "events": count,
            "delivered": len(latencies),
            "latency_ms_median": round(statistics.median(latencies), 3),
            "latency_ms_p99": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 3),
            "latency_ms_max": round(latencies[-1], 3),
            "burst": burst,
            "burst_merged_ms": round(merged_ms, 1),
            "burst_delivered": len(arrived) - len(latencies),
            "clients_dropped_too_slow": admin.events.clients_too_slow,
        }
    finally:
        node.stop(leave=False)
        pykka.ActorRegistry.stop_all(timeout=5)


def record_sizes() -> dict[str, int]:
    plain = Member("node-123", "127.0.0.1:7001", 5)
    tagged = Member("node-123", "127.0.0.1:7001", 5, tags=(("role", "kv"), ("zone", "a")))
    worst = Member("n" * 255, "127.0.0.1:7001", 2**64 - 1, Status.SUSPECT, "o" * 255,
                   tuple((f"k{i:02d}", "v" * 29) for i in range(64)))
    return {name: len(codec.encode(Gossip((member,))))
            for name, member in (("no_tags", plain), ("two_tags", tagged), ("largest", worst))}


def history_cost() -> dict[str, float]:
    tracemalloc.start()
    history = History()
    started = time.perf_counter()
    for i in range(history.max_members):
        for incarnation in range(history.per_member):
            member = Member(f"node-{i}", "127.0.0.1:7001", incarnation, tags=(("role", "kv"),))
            history.record(MemberEvent(EventKind.CHANGED, member, member, "node-2"), 1.0)
    took = time.perf_counter() - started
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    entries = history.max_members * history.per_member
    return {"members": history.max_members, "per_member": history.per_member,
            "traced_mib": round(current / 2**20, 1),
            "record_us": round(took / entries * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--out", default="bench-results/events.json")
    args = parser.parse_args()
    result = {"stream": stream_delivery(args.events, args.burst), "record_bytes": record_sizes(),
              "history": history_cost()}
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
