"""How even the ring is and how much a join moves, on seeded random keys.

    python -m bench.ring_balance [--keys 100000] [--min-nodes 3] [--max-nodes 50]
                                 [--partitions 64] [--n-val 3] [--seed 1] [--json PATH]

For every cluster size n in min..max: keys per node (min / max / stddev, against the ideal
keys/n), partitions per node (min / max); and for every join n -> n+1, the fraction of keys
whose owner changed (ideal 1/(n+1)), the partitions moved between old nodes (not to the
joiner), and the fraction of keys whose preference list changed. Also the cost of
``Ring.preference_list_for`` (µs) and of ``Ring.build`` (ms). Pure computation: the figures
do not depend on the machine, the timings do. About 10 s at the defaults.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from dynago.kv.model import ObjectKey
from dynago.kv.ring import Ring, RingMember, partition_of


def measure(*, keys: int, min_nodes: int, max_nodes: int, partitions: int, n_val: int,
            seed: int) -> dict[str, Any]:
    """Every figure of the report, as a JSON-ready dict."""
    rnd = random.Random(seed)
    names = [f"node-{rnd.getrandbits(48):012x}" for _ in range(max_nodes + 1)]
    sample = [ObjectKey("bench", f"{rnd.getrandbits(64):016x}") for _ in range(keys)]
    # Keys per partition: every per-key figure is a weighted sum over partitions.
    per_partition = Counter(partition_of(k, partitions) for k in sample)
    weight = [per_partition.get(p, 0) for p in range(partitions)]
    rows: list[dict[str, Any]] = []
    build_ms: list[float] = []
    previous: Ring | None = None
    for n in range(min_nodes, max_nodes + 1):
        started = time.perf_counter()
        ring = Ring.build([RingMember(x) for x in names[:n]], partitions=partitions,
                          n_val=n_val)
        build_ms.append((time.perf_counter() - started) * 1e3)
        per_node = [sum(weight[p] for p in ring.partitions_of(x)) for x in names[:n]]
        owned = [len(ring.partitions_of(x)) for x in names[:n]]
        row: dict[str, Any] = {
            "nodes": n, "ideal_keys": round(keys / n, 1),
            "keys_min": min(per_node), "keys_max": max(per_node),
            "keys_stddev": round(statistics.pstdev(per_node), 1),
            "partitions_min": min(owned), "partitions_max": max(owned),
        }
        if previous is not None:
            joiner = names[n - 1]
            moved = [p for p in range(partitions) if previous.owner(p) != ring.owner(p)]
            pref_changed = [p for p in range(partitions)
                            if previous.preference_list(p) != ring.preference_list(p)]
            row["join"] = {
                "moved_fraction": round(sum(weight[p] for p in moved) / keys, 4),
                "ideal_fraction": round(1 / n, 4),
                "partitions_moved": len(moved),
                "partitions_moved_between_old_nodes": sum(
                    1 for p in moved if ring.owner(p) != joiner),
                "preference_list_changed_fraction": round(
                    sum(weight[p] for p in pref_changed) / keys, 4),
            }
        rows.append(row)
        previous = ring
    assert previous is not None
    lookup_us = _lookup_us(previous, sample[:20_000])
    return {"keys": keys, "partitions": partitions, "n_val": n_val, "seed": seed,
            "preference_list_for_us": round(lookup_us, 3),
            "build_ms": {"median": round(statistics.median(build_ms), 1),
                         "max": round(max(build_ms), 1)},
            "sizes": rows}


def _lookup_us(ring: Ring, sample: list[ObjectKey]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for key in sample:
            ring.preference_list_for(key)
        best = min(best, (time.perf_counter() - started) / len(sample))
    return best * 1e6


def table(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = [
        f"{report['keys']} keys, P={report['partitions']}, N={report['n_val']}, "
        f"seed {report['seed']}; preference_list_for {report['preference_list_for_us']} µs, "
        f"Ring.build median {report['build_ms']['median']} ms (max {report['build_ms']['max']})",
        "",
        "| nodes | keys/node ideal | min | max | stddev | partitions min-max "
        "| join: keys moved | ideal | moved between old | pref lists changed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["sizes"]:
        join = row.get("join")
        tail = ("— | — | — | —" if join is None else
                f"{join['moved_fraction']:.1%} | {join['ideal_fraction']:.1%} "
                f"| {join['partitions_moved_between_old_nodes']} "
                f"| {join['preference_list_changed_fraction']:.1%}")
        lines.append(f"| {row['nodes']} | {row['ideal_keys']} | {row['keys_min']} "
                     f"| {row['keys_max']} | {row['keys_stddev']} "
                     f"| {row['partitions_min']}-{row['partitions_max']} | {tail} |")
    joins = [r["join"] for r in report["sizes"] if "join" in r]
    if joins:
        extra = [j["moved_fraction"] - j["ideal_fraction"] for j in joins]
        between = [j["partitions_moved_between_old_nodes"] for j in joins]
        lines += ["", f"joins: keys moved beyond ideal, mean {statistics.mean(extra):.2%}, "
                      f"max {max(extra):.2%}; partitions moved between old nodes, mean "
                      f"{statistics.mean(between):.1f}, max {max(between)}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--min-nodes", type=int, default=3)
    parser.add_argument("--max-nodes", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--n-val", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    if not 1 <= args.min_nodes <= args.max_nodes:
        parser.error("need 1 <= --min-nodes <= --max-nodes")
    report = measure(keys=args.keys, min_nodes=args.min_nodes, max_nodes=args.max_nodes,
                     partitions=args.partitions, n_val=args.n_val, seed=args.seed)
    print(table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
