"""Hinted handoff: writes while a node is cut off, then how long the hand-back takes.

    python -m bench.kv_hints [--nodes 5] [--keys 300] [--json PATH]

Starts ``--nodes`` in-process nodes on a MemoryNetwork (SQLite engines with fsync in a
temporary dir, fault injection on), cuts the last node off both ways, waits until every
other node no longer holds it alive, then writes ``--keys`` keys of which it is a
replica, one at a time at W = 3 through a healthy primary. It reports how many succeeded
and their mean latency, the hints held, then heals and reports the seconds until every
node holds the cut node alive and until every hint is handed back and deleted. Figures
are for the report, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka

from dynago.actors.kv_hints import GetHintStats
from dynago.actors.kv_messages import ClientPut
from dynago.actors.kv_service import KvService
from dynago.config import Config
from dynago.kv.config import KvConfig
from dynago.kv.model import Content, ObjectKey, PutReply, Quorum
from dynago.node import Node
from dynago.transport.faults import Faults
from dynago.transport.memory import MemoryNetwork


def until(check: Callable[[], Any], what: str, wait_s: float = 120.0) -> Any:
    deadline = time.monotonic() + wait_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {wait_s} s: {what}")
        time.sleep(0.01)
    return value


def run(n_nodes: int, n_keys: int, root: Path) -> dict[str, Any]:
    network = MemoryNetwork()
    names = [f"n{i}" for i in range(n_nodes)]
    nodes: dict[str, Node] = {}
    kv: dict[str, KvService] = {}
    faults = {name: Faults(seed=1) for name in names}
    try:
        for i, name in enumerate(names):
            kv[name] = KvService(KvConfig(data_dir=str(root / name)))
            seed = nodes[names[0]].address if nodes else None
            nodes[name] = Node(bind=f"127.0.0.1:{19700 + i}", name=name,
                               config=Config.local(), seeds=(seed,) if seed else (),
                               transport=network.transport(faults[name]),
                               faults=faults[name], services=[kv[name]]).start()

        def status(viewer: str, name: str) -> str:
            keeper = kv[viewer].ring
            return keeper.status(name) if keeper is not None else "unknown"

        until(lambda: all(status(v, n) == "alive" for v in names for n in names), "settled")
        cut, others = names[-1], names[:-1]
        for name in others:
            faults[name].cut(cut)
            faults[cut].cut(name)
        until(lambda: all(status(v, cut) != "alive" for v in others), "suspected")
        keeper = kv[others[0]].ring
        assert keeper is not None
        keys = [k for k in (ObjectKey("bench", f"k{i}") for i in range(50 * n_keys))
                if cut in keeper.ring.preference_list_for(k)][:n_keys]
        ok, started = 0, time.monotonic()
        for key in keys:
            node = next(n for n in keeper.ring.preference_list_for(key) if n != cut)
            results: list[Any] = []
            ref = kv[node].kv
            assert ref is not None
            ref.tell(ClientPut(key, Content(b"v"), None, Quorum(w=3), False, False,
                               results.append))
            ok += isinstance(until(lambda r=results: r, "a reply")[0], PutReply)  # type: ignore[misc]
        put_ms = 1000 * (time.monotonic() - started) / max(1, len(keys))

        def hints(counter: str) -> int:
            total = 0
            for name in others:
                ref = kv[name].hints
                assert ref is not None
                stats = ref.ask(GetHintStats(), timeout=5)
                assert isinstance(stats, dict)
                total += int(stats[counter])
            return total

        held = hints("kv_hints_held")
        healed = time.monotonic()
        for name in names:
            faults[name].heal()
        until(lambda: all(status(v, cut) == "alive" for v in others), "alive again")
        alive_s = time.monotonic() - healed
        until(lambda: hints("kv_hints_held") == 0, "every hint handed back")
        return {"nodes": n_nodes, "puts": len(keys), "puts_ok": ok, "put_ms_mean": put_ms,
                "hints_held": held, "alive_after_heal_s": alive_s,
                "handed_back_after_heal_s": time.monotonic() - healed,
                "handed_back": hints("kv_hints_handed_back"),
                "handback_failures": hints("kv_hint_handback_failures")}
    finally:
        for running in nodes.values():
            running.stop(leave=False)
        pykka.ActorRegistry.stop_all(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_hints")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.nodes < 4:
        parser.error("--nodes must be at least 4 (N = 3 and a fallback)")
    with tempfile.TemporaryDirectory() as root:
        report = run(args.nodes, args.keys, Path(root))
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
