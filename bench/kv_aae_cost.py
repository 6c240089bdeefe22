"""What active anti-entropy costs the foreground: put throughput with it on and off.

    python -m bench.kv_aae_cost [--rounds 3] [--seconds 5] [--interval 0.1]
                                [--divergent 2000] [--clients 8] [--json PATH]

Each round starts three in-process nodes on a MemoryNetwork (memory engines, N = 3, so
every node replicates every partition), writes ``--divergent`` keys into the first
node's store alone (so anti-entropy has repairs to make, not only equal roots), then
runs ``--clients`` closed-loop writers of fresh keys at W = 2 for ``--seconds`` and
counts the puts acknowledged. Rounds alternate on, off, on, off ... so that a drift of
the machine falls on both sides; the anti-entropy rounds use an exchange every
``--interval`` s (the default 10 s would leave nothing to measure in a few seconds).
It reports put ops/s per round, the means, the ratio off/on, and what anti-entropy did
(exchanges, keys sent) in the rounds it was on. Figures for the report, not pass/fail.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka

from dynago.actors.kv_aae_messages import GetAaeStats
from dynago.actors.kv_messages import ClientPut
from dynago.actors.kv_service import KvService
from dynago.actors.storage_messages import Origin, Update
from dynago.config import Config
from dynago.kv import version
from dynago.kv.config import KvConfig
from dynago.kv.model import Content, ObjectKey, PutReply, Quorum
from dynago.node import Node
from dynago.transport.memory import MemoryNetwork

_PORTS = itertools.count(19900)


def until(check: Callable[[], Any], what: str, wait_s: float = 60.0) -> Any:
    deadline = time.monotonic() + wait_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {wait_s} s: {what}")
        time.sleep(0.01)
    return value


def _replace_by(data: bytes) -> Callable[[bytes | None], bytes | None]:
    return lambda _current: data


def _preload(service: KvService, count: int) -> None:
    """``count`` keys written into this node's store only, bypassing coordination."""
    assert service.storage is not None
    done = threading.Semaphore(0)
    for i in range(count):
        data = version.encode(version.coordinate(version.EMPTY, None, "n0",
                                                 Content(b"x" * 100)))
        service.storage.tell(Update(
            ObjectKey("div", f"k{i}").storage_key(), _replace_by(data),
            reply=lambda _b: done.release(), on_error=lambda _e: done.release(),
            origin=Origin("bench")))
    for _ in range(count):
        done.acquire(timeout=30)


def _load(service: KvService, clients: int, seconds: float, tag: str) -> int:
    """Puts acknowledged by ``clients`` closed-loop writers within ``seconds``."""
    ref = service.kv
    assert ref is not None
    ok = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    finished = threading.Event()
    live = [clients]
    counter = itertools.count()

    def put_next() -> None:
        if time.monotonic() >= stop_at:
            with lock:
                live[0] -= 1
                if live[0] == 0:
                    finished.set()
            return
        key = ObjectKey("load", f"{tag}-{next(counter)}")
        ref.tell(ClientPut(key, Content(b"v" * 100), None, Quorum(w=2), False, False,
                           answered))

    def answered(reply: Any) -> None:  # on the KvActor's thread: only count, send on
        if isinstance(reply, PutReply):
            with lock:
                ok[0] += 1
        put_next()

    for _ in range(clients):
        put_next()
    finished.wait(seconds + 30)
    return ok[0]


def one_round(aae_on: bool, args: argparse.Namespace, index: int) -> dict[str, Any]:
    network = MemoryNetwork()
    nodes: list[Node] = []
    services: list[KvService] = []
    config = KvConfig(aae_enabled=aae_on, aae_exchange_interval_s=args.interval)
    try:
        for i in range(3):
            service = KvService(config)
            seed = nodes[0].address if nodes else None
            nodes.append(Node(bind=f"127.0.0.1:{next(_PORTS)}", name=f"n{i}",
                              config=Config.local(), seeds=(seed,) if seed else (),
                              transport=network.transport(), services=[service]).start())
            services.append(service)

        def settled() -> bool:
            return all(s.ring is not None and len(s.ring.ring.members) == 3
                       and all(s.ring.status(f"n{i}") == "alive" for i in range(3))
                       for s in services)

        until(settled, "three nodes alive")
        _preload(services[0], args.divergent)
        puts = _load(services[1], args.clients, args.seconds, f"r{index}")
        stats: list[dict[str, int]] = []
        for service in services:
            assert service.aae is not None
            answer = service.aae.ask(GetAaeStats(), timeout=5)
            assert isinstance(answer, dict)
            stats.append(answer)
        return {"aae": aae_on, "puts": puts, "ops_per_s": puts / args.seconds,
                "exchanges": sum(c["kv_aae_exchanges"] for c in stats),
                "keys_sent": sum(c["kv_aae_keys_sent"] for c in stats)}
    finally:
        for node in nodes:
            node.stop(leave=False)
        pykka.ActorRegistry.stop_all(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_aae_cost")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (on, off)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--divergent", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.interval <= 0 or args.clients < 1:
        parser.error("--rounds, --clients at least 1; --seconds and --interval above 0")
    rounds = [one_round(on, args, i) for i in range(args.rounds) for on in (True, False)]
    on = [r["ops_per_s"] for r in rounds if r["aae"]]
    off = [r["ops_per_s"] for r in rounds if not r["aae"]]
    report = {"rounds": rounds, "seconds": args.seconds, "interval_s": args.interval,
              "divergent": args.divergent, "clients": args.clients,
              "ops_per_s_on": statistics.mean(on), "ops_per_s_off": statistics.mean(off),
              "off_over_on": statistics.mean(off) / max(1e-9, statistics.mean(on))}
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
