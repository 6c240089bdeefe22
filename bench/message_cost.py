"""What one message costs a node: CPU per received gossip message, and idle CPU.

    python -m bench.message_cost [--messages 3000] [--rate 300] [--batch 1] [--runs 3]
                                 [--out bench-results/message_cost.json]

Starts one node process on 127.0.0.1 (``--preset lan``), measures its idle CPU, then opens
a stream to it from this process through the real gRPC transport (as a member named
``bench``) and sends ``--messages`` Gossip messages at ``--rate`` per second (``--batch``
of them back to back, then a pause), each
carrying one record the node already holds (so the node's membership rules do next to
nothing: what is measured is the path of a message through the node — gRPC, the
event loop, the peer actor, the membership actor). Reports the node's CPU per received
message above its idle CPU (process user + system time from /proc, not wall time: the
figure holds on a shared machine), and the node's context switches (all its threads)
per message, median (min–max) over ``--runs``. This is the figure that
bounds how many node processes one machine runs (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench.procstat import context_switches, cpu_times, idle_cpu_percent
from dynago.config import Config
from dynago.core.member import Member
from dynago.core.messages import Ack, Gossip, Ping
from dynago.launch import NodeProcess, http_json, wait_until
from dynago.transport.base import Stream, WireMessage
from dynago.transport.grpc_transport import GrpcTransport


def flood(node: NodeProcess, messages: int, rate: float, batch: int) -> dict[str, float]:
    """Send ``messages`` gossip messages to ``node`` at ``rate``; the node's CPU."""
    transport = GrpcTransport(Config.lan())
    streams: list[Stream] = []
    opened = threading.Event()

    address = transport.bind("127.0.0.1:0")
    me = Member("bench", address)

    def on_stream(stream: Stream) -> None:
        def on_message(message: WireMessage) -> None:
            if isinstance(message, Ping):  # a member answers probes, or it is failed
                stream.send(Ack(message.seq, me))
            stream.processed()

        stream.bind(on_message, lambda _reason: None)
        streams.append(stream)
        opened.set()

    try:
        transport.serve("bench", address, on_stream)
        transport.dial(node.address, None, lambda reason: None)
        if not opened.wait(10.0):
            raise RuntimeError(f"no stream to {node.address} within 10 s")
        stream = streams[0]
        record = Gossip((me,))
        stream.send(record)
        wait_until(lambda: "bench" in {m["name"] for m in node.members_v1()}, timeout_s=10,
                   what="the node to list the bench client")
        (idle_percent,), _window = idle_cpu_percent([node], 3.0)
        idle = idle_percent / 100
        received_before = _received(node)
        written_before = transport.counters.by_kind_out.get("Gossip", 0)
        switches_before = context_switches(node.pid)
        before, began = cpu_times(node.pid), time.monotonic()
        for sent in range(0, messages, batch):
            for _ in range(min(batch, messages - sent)):
                stream.send(record)
            pause = began + (sent + batch) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing to the requested rate
        stream.flush().result(timeout=30)
        # What this side wrote (a busy machine may make its writer drop some: see
        # outbound_buffer_size), then until the node counted all of them; the few HTTP
        # polls this takes cost the node microseconds, not per-message figures.
        written = transport.counters.by_kind_out.get("Gossip", 0) - written_before
        wait_until(lambda: _received(node) - received_before >= written,
                   timeout_s=60, interval_s=0.25,
                   what=f"the node to count the {written} messages written")
        elapsed = time.monotonic() - began
        after = cpu_times(node.pid)
        user, sys = after[0] - before[0], after[1] - before[1]
        used = user + sys
        switches = context_switches(node.pid) - switches_before
        return {"idle_cpu_percent": round(100 * idle, 2),
                "messages_written": written,
                "elapsed_s": round(elapsed, 2),
                "cpu_s": round(used, 3),
                "user_s": round(user, 3),
                "sys_s": round(sys, 3),
                "context_switches_per_message": round(switches / written, 2),
                "us_per_message": round(1e6 * (used - idle * elapsed) / written, 1)}
    finally:
        transport.stop()


def _received(node: NodeProcess) -> int:
    stats: dict[str, int] = http_json(node.http, "/v1/stats")
    return stats.get("transport_messages_in_Gossip", 0)


def run(messages: int, rate: float, batch: int, runs: int) -> dict[str, Any]:
    results = []
    for _ in range(runs):
        node = NodeProcess(["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0",
                            "--preset", "lan", "--name", "target"])
        try:
            node.wait_ready()
            results.append(flood(node, messages, rate, batch))
        finally:
            node.terminate()
            node.close()
    per_message = [r["us_per_message"] for r in results]
    switches = [r["context_switches_per_message"] for r in results]
    idle = [r["idle_cpu_percent"] for r in results]
    return {"messages": messages, "rate_per_s": rate, "batch": batch, "runs": results,
            "us_per_message": {"median": statistics.median(per_message),
                               "min": min(per_message), "max": max(per_message)},
            "context_switches_per_message": statistics.median(switches),
            "idle_cpu_percent": {"median": statistics.median(idle),
                                 "min": min(idle), "max": max(idle)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--batch", type=int, default=1,
                        help="messages sent back to back before each pause (default 1: "
                             "each message arrives on its own, as at a cluster's usual rates)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="bench-results/message_cost.json")
    args = parser.parse_args()
    if args.messages < 1 or args.batch < 1 or args.rate <= 0 or args.runs < 1:
        parser.error("--messages, --batch and --runs must be at least 1, --rate above 0")
    report = run(args.messages, args.rate, args.batch, args.runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    per, idle = report["us_per_message"], report["idle_cpu_percent"]
    print(f"CPU per received gossip message at {args.rate:.0f}/s in batches of "
          f"{args.batch}: {per['median']} us "
          f"({per['min']}–{per['max']}), "
          f"{report['context_switches_per_message']} context switches; "
          f"idle node: {idle['median']} % of a core "
          f"({idle['min']}–{idle['max']}); {args.runs} run(s)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
