"""Foreground throughput while a node takes back its hinted writes, against the quiet
cluster, on real node processes.

    python -m bench.kv_repair_load [--hints 100000] [--clients 16] [--seconds 10]
        [--handoff-per-s RATE] [--json PATH]

Starts 4 ``dynago node`` processes on 127.0.0.1 (SQLite data dirs, N=3, R=W=2: with four
nodes a key's preference list leaves one node out, so a write whose replica is down has
a fallback to take it as a hint). Foreground load is the closed-loop generator of
bench.kv_load (Riak PUT then GET phases over 1000 keys, ``--clients`` clients,
round-robin over the first three nodes, which stay up throughout), ``--seconds`` per
phase. In order:

1. **quiet**: the foreground phases with all four nodes up and nothing to repair;
2. the 4th node is SIGKILLed; once every other node no longer lists it alive, fresh keys
   are written (the same generator, ``--clients`` clients) until the nodes hold
   ``--hints`` hints for it, or ``--fill-timeout`` s passed: that fill is itself a
   figure (puts/s with a replica down, every third replica write going to a fallback);
3. **rejoin**: the 4th node is restarted on its data dir and ports; once every node
   lists it alive, the foreground phases again while the others hand its hints back
   (``kv_hints_handed_back`` over each phase: the repair's own rate);
4. **quiet again**: only if every hint was handed back within ``--settle-timeout`` s,
   the foreground phases once more (the drift of the machine over the run).

It reports each phase's ops/s, p50/p99, and the rejoin phases as a fraction of the quiet
ones. ``--handoff-per-s`` sets every node's ``DYNAGO_KV_HINT_HANDOFF_PER_S`` (default:
the node's own default); the hand-back at that rate is what the foreground competes with.
Every node process is stopped by its PID at the end. Figures for the report, not
pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import BenchCluster, Member, stop_on_sigterm
from bench.kv_load import KeySpace, run_phase, summary
from dynago.launch import LaunchError, wait_until

REQUEST_TIMEOUT_S = 5.0
CONVERGE_TIMEOUT_S = 60.0
FOREGROUND_KEYS = 1000
FILL_KEYS = 10_000_000
"""Fill writes pick keys at random from this many (about 1 % of 100,000 draws repeat a
key, whose hint is then rewritten, not added): the fill runs until the hint count, not
a write count, is reached."""
NODES = 4


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_repair_load",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--hints", type=int, default=100_000,
                        help="hints to accumulate for the stopped node (default 100000)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="duration of each foreground phase (default 10)")
    parser.add_argument("--fill-timeout", type=float, default=1800.0,
                        help="most seconds spent writing hints (default 1800)")
    parser.add_argument("--settle-timeout", type=float, default=0.0,
                        help="seconds to wait for every hint to be handed back before the "
                             "last quiet phases (default 0: skip them)")
    parser.add_argument("--handoff-per-s", type=float, default=None,
                        help="DYNAGO_KV_HINT_HANDOFF_PER_S for every node")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)
    if args.hints < 1 or args.clients < 1 or args.seconds <= 0 or args.value_bytes < 1:
        parser.error("--hints, --clients, --seconds and --value-bytes must be positive")
    if args.handoff_per_s is not None and args.handoff_per_s <= 0:
        parser.error("--handoff-per-s must be positive")
    return args


def _sum(members: list[Member], key: str) -> int:
    return sum(int(m.stats().get(key, 0)) for m in members)


def _converged(cluster: BenchCluster) -> bool:
    return cluster.all_list_all() and all(
        int(m.stats().get("kv_ring_members", 0)) == NODES for m in cluster.members)


def foreground(label: str, members: list[Member], space: KeySpace, args: argparse.Namespace,
               rng: random.Random) -> list[dict[str, Any]]:
    """A put phase then a get phase against ``members``; each row also has the hints
    handed back meanwhile."""
    rows = []
    for op in ("put", "get"):
        handed = _sum(members, "kv_hints_handed_back")
        load = os.getloadavg()[0]
        result = asyncio.run(run_phase(
            op, [m.http for m in members], space, clients=args.clients,
            seconds=args.seconds, value_bytes=args.value_bytes,
            timeout_s=REQUEST_TIMEOUT_S, rng=rng))
        row = summary(result)
        row.update(phase=label, hints_handed_back=_sum(members, "kv_hints_handed_back") - handed,
                   load_1m_before=round(load, 2))
        rows.append(row)
        print(f"  {label} {op}: {row['ops_per_s']} ops/s, p99 {row['p99_ms']} ms, "
              f"{row['errors']} errors, {row['hints_handed_back']} hints handed back",
              flush=True)
    return rows


def fill(survivors: list[Member], args: argparse.Namespace,
         rng: random.Random) -> dict[str, Any]:
    """Write fresh keys until the survivors hold ``args.hints`` hints (bounded)."""
    space = KeySpace(FILL_KEYS)
    began = time.monotonic()
    ops = errors = 0
    held = 0
    while time.monotonic() - began < args.fill_timeout:
        result = asyncio.run(run_phase(
            "put", [m.http for m in survivors], space, clients=args.clients,
            seconds=min(10.0, args.seconds), value_bytes=args.value_bytes,
            timeout_s=REQUEST_TIMEOUT_S, rng=rng))
        ops += result.ops
        errors += sum(result.errors.values())
        held = _sum(survivors, "kv_hints_held")
        print(f"  fill: {ops} puts, {held} hints held, {errors} errors, "
              f"{time.monotonic() - began:.0f} s", flush=True)
        if held >= args.hints:
            break
    seconds = time.monotonic() - began
    return {"puts": ops, "errors": errors, "hints_held": held, "seconds": round(seconds, 1),
            "puts_per_s": round(ops / max(seconds, 1e-9), 1),
            "reached": held >= args.hints}


def table(rows: list[dict[str, Any]], quiet: dict[str, float]) -> str:
    head = ("phase", "op", "ops/s", "÷ quiet", "p50 ms", "p99 ms", "errors",
            "hints handed back")
    lines = [head] + [
        (r["phase"], r["op"], f"{r['ops_per_s']:.0f}",
         f"{r['ops_per_s'] / quiet[r['op']]:.2f}" if quiet.get(r["op"]) else "—",
         f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", str(r["errors"]),
         str(r["hints_handed_back"]))
        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True))
                     for line in lines)


def run(cluster: BenchCluster, args: argparse.Namespace, report: dict[str, Any]) -> None:
    rng = random.Random(args.seed)
    space = KeySpace(FOREGROUND_KEYS)
    cluster.start(NODES)
    wait_until(lambda: _converged(cluster), timeout_s=CONVERGE_TIMEOUT_S, interval_s=0.2,
               what="every node to list every member in its ring")
    survivors, down = cluster.members[:-1], cluster.members[-1]
    rows = foreground("quiet", survivors, space, args, rng)

    down.process.kill()
    down.process.proc.wait(10)
    wait_until(lambda: all(down.address not in m.process.members() for m in survivors),
               timeout_s=CONVERGE_TIMEOUT_S, interval_s=0.2,
               what=f"the others to stop listing {down.name}")
    report["fill"] = fill(survivors, args, rng)

    restarted_at = time.monotonic()
    back = cluster.launch(down.name, bind=down.address, http=down.http)
    cluster.replace(down, back)
    wait_until(lambda: cluster.all_list_all(), timeout_s=CONVERGE_TIMEOUT_S, interval_s=0.2,
               what=f"every node to list {down.name} again")
    report["rejoin_listed_s"] = round(time.monotonic() - restarted_at, 2)
    rows += foreground("rejoin", survivors, space, args, rng)
    report["hints_left_after_rejoin_phases"] = _sum(survivors, "kv_hints_held")

    if args.settle_timeout > 0:
        try:
            wait_until(lambda: _sum(survivors, "kv_hints_held") == 0,
                       timeout_s=args.settle_timeout, interval_s=1.0,
                       what="every hint to be handed back")
            report["all_handed_back_s"] = round(time.monotonic() - restarted_at, 1)
            rows += foreground("quiet again", survivors, space, args, rng)
        except LaunchError as error:
            print(f"  {error}: no last quiet phases", flush=True)
    report["phases"] = rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    if args.handoff_per_s is not None:
        os.environ["DYNAGO_KV_HINT_HANDOFF_PER_S"] = repr(args.handoff_per_s)
    report: dict[str, Any] = {
        "nodes": NODES, "hints_wanted": args.hints, "clients": args.clients,
        "seconds": args.seconds, "value_bytes": args.value_bytes,
        "handoff_per_s": args.handoff_per_s, "cpus": os.cpu_count(),
        "load_1m_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="dynago-repair-bench-") as tmp:
        root = Path(tmp)

        def node_args(name: str) -> list[str]:
            return ["--data-dir", str(root / name)]

        with BenchCluster(logdir=root, node_args=node_args) as cluster:
            try:
                run(cluster, args, report)
            except LaunchError as error:
                print(f"repair bench failed: {error}", file=sys.stderr)
                return 1
    report["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    quiet = {r["op"]: r["ops_per_s"] for r in report["phases"] if r["phase"] == "quiet"}
    for row in report["phases"]:
        row["vs_quiet"] = (round(row["ops_per_s"] / quiet[row["op"]], 3)
                           if quiet.get(row["op"]) else None)
    print(table(report["phases"], quiet))
    fill_row = report["fill"]
    print(f"fill with {NODES - 1} of {NODES} nodes up: {fill_row['puts']} puts in "
          f"{fill_row['seconds']} s ({fill_row['puts_per_s']} puts/s), "
          f"{fill_row['hints_held']} hints held; hints left after the rejoin phases: "
          f"{report['hints_left_after_rejoin_phases']}; rate "
          f"{args.handoff_per_s or 'default'}/s; 1-minute load {report['load_1m_at_start']} "
          f"at start, {report['load_1m_at_end']} at end")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
