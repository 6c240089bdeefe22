"""A history checker with Jepsen's rules for the key-value store, on a real cluster.

    python -m bench.kv_check [--seconds 30] [--clients 8]
        [--workload unique|set|deletes] [--faults none|kill|pause1|pause10|partition|killall]
        [--all] [--keys 5] [--seed 1] [--stale-sample 200] [--json PATH] [--out PREFIX]

Starts 3 ``dynago node`` processes on 127.0.0.1 (ephemeral ports, a data dir each in a
temporary dir, N=3 R=W=2, fault injection on), then for ``--seconds`` runs ``--clients``
client threads, each bound to one node (round-robin), each recording every operation as
ok, fail or info (indeterminate; bench.kv_history says which is which). Each request
goes on a fresh connection, so that a refused connection is known not to have been sent.

Workloads (bucket ``check``; bench.kv_run):

* ``unique``: each write PUTs a key never written before with a value never written
  before. Every acknowledged key must be there with its value at the end; the bucket's
  key listing must hold no key never written.
* ``set``: ``--keys`` keys, each a set of comma-separated elements grown by
  read-modify-write with the read's context: every element whose write was acknowledged
  must be in the union of its final siblings.
* ``deletes``: ``--keys`` keys, each read, then deleted or replaced by a value never
  written before, with the read's context: a key's expected state follows the
  acknowledged operations; a value acknowledged deleted (or replaced) that comes back is
  resurrected (unexpected).

Faults (``--faults``, bench.kv_faults), one at a time, each healed before the next,
ending ``quiet`` seconds (a fifth of the run, at most 5 s) before the clients stop.
``--all`` runs every fault in turn, each on a fresh cluster, and prints one table.

After the run and the heal (every node lists every member alive; bounded), every key is
read at ``r=all`` from every node; replicas left stale (a replica's own copy lacking a
version another holds) are counted on up to ``--stale-sample`` keys through
``/v1/kv/explain``, before those reads and after them. Figures per fault: operations,
lost (acknowledged, absent), unexpected (never written, written by failed operations, or
resurrected), recovered (indeterminate writes present), stale replicas, time to converge
after the fault ended. Pass: 0 lost, 0 unexpected, every acknowledged key read back.

Exit 0 when every run passed, 1 otherwise. Every node process is stopped by its PID at
the end, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.cluster import BenchCluster, stop_on_sigterm
from bench.kv_faults import CONVERGE_TIMEOUT_S, FAULTS, all_alive, nemesis
from bench.kv_final import final_reads, stale_replicas
from bench.kv_history import (
    Verdict,
    check_deletes,
    check_set,
    check_unique,
    recovered,
)
from bench.kv_run import BUCKET, CLIENT_TIMEOUT_S, NODES, WORKLOADS, Run
from dynago.launch import LaunchError, http_json, wait_until

ALL_FAULTS = ("kill", "pause1", "pause10", "partition", "killall")


def listed_keys(run: Run) -> list[str]:
    keys: list[str] = http_json(run.http_of(0), f"/buckets/{BUCKET}/keys?keys=true",
                                timeout_s=30.0)["keys"]
    return keys


def keys_of(run: Run) -> list[str]:
    prefix = {"unique": "u", "set": "s", "deletes": "d"}[run.args.workload]
    if run.args.workload == "unique":
        return sorted({op.key for op in run.history if op.kind == "write"})
    return [f"{prefix}{i}" for i in range(run.args.keys)]


def execute(run: Run) -> tuple[Verdict, dict[str, Any]]:
    """Run the clients and the nemesis, heal, read back and judge."""
    args = run.args
    worker = WORKLOADS[args.workload]
    quiet_s = min(5.0, args.seconds / 5)
    threads = [threading.Thread(target=worker, args=(run, c), daemon=True, name=f"client-{c}")
               for c in range(args.clients)]
    if args.faults != "none":
        threads.append(threading.Thread(target=nemesis, daemon=True, name="nemesis",
                                        args=(run, args.faults, args.seconds - quiet_s)))
    for thread in threads:
        thread.start()
    try:
        run.stop.wait(args.seconds)
    finally:
        run.stop.set()
        for thread in threads:
            thread.join(CLIENT_TIMEOUT_S + 40.0)  # a restart in progress finishes first
    ended = time.monotonic()
    wait_until(lambda: all_alive(run.cluster), timeout_s=CONVERGE_TIMEOUT_S, interval_s=0.1,
               what="every node to list every member alive before the final reads")
    figures: dict[str, Any] = {"alive_after_s": round(time.monotonic() - ended, 2)}
    keys = keys_of(run)
    sample = sorted(random.Random(args.seed).sample(keys, min(len(keys), args.stale_sample)))
    figures["stale_before_reads"] = stale_replicas(run, sample)
    final, figures["final_reads_disagree"] = final_reads(run, keys)
    figures["stale_left"] = stale_replicas(run, sample)
    if args.workload == "unique":
        verdict = check_unique(run.history, final, listed_keys(run))
    elif args.workload == "set":
        verdict = check_set(run.history, final)
    else:
        verdict = check_deletes(run.history, final)
    return verdict, figures


def row_of(args: argparse.Namespace, verdict: Verdict, figures: dict[str, Any],
           faults: list[dict[str, Any]]) -> dict[str, Any]:
    """One line of the table: Jepsen's set-checker figures of one run."""
    converge = [f["converge_s"] for f in faults if f.get("converge_s") is not None]
    return {"workload": args.workload, "fault": args.faults, "faults_injected": len(faults),
            "operations": sum(c["invoked"] for c in verdict.ops.values()),
            "acknowledged": sum(c["ok"] for kind, c in verdict.ops.items() if kind != "read"),
            "lost": len(verdict.lost), "unexpected": len(verdict.unexpected),
            "recovered": recovered(verdict), "unverified": len(verdict.unverified),
            "stale_before": figures["stale_before_reads"]["replicas"],
            "stale_left": figures["stale_left"]["replicas"],
            "stale_checked": figures["stale_left"]["checked"],
            "converge_max_s": max(converge, default=None),
            "final_disagree": figures["final_reads_disagree"],
            "passed": verdict.passed}


COLUMNS = ("workload", "fault", "faults_injected", "operations", "acknowledged", "lost",
           "unexpected", "recovered", "stale_before", "stale_left", "converge_max_s", "passed")
HEADS = ("workload", "fault", "n", "ops", "acked", "lost", "unexpected", "recovered",
         "stale before", "stale left", "converge s", "pass")


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (readable as text too)."""
    cells = [list(HEADS)] + [["-" if r[c] is None else str(r[c]) for c in COLUMNS]
                             for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADS))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
             + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def detail(verdict: Verdict) -> str:
    lines = ["  " + "  ".join(f"{kind} {c['invoked']} (ok {c['ok']}, fail {c['fail']}, "
                              f"info {c['info']})" for kind, c in verdict.ops.items()
                              if c["invoked"]),
             "  final: " + "  ".join(f"{k} {v}" for k, v in verdict.final.items())]
    for what in ("lost", "unexpected", "unverified"):
        items = getattr(verdict, what)
        if items:
            lines.append(f"  {what} (first 5): {'; '.join(items[:5])}")
    return "\n".join(lines)


def check_once(args: argparse.Namespace) -> dict[str, Any]:
    """One run on a fresh cluster: its report (the table row, figures, history)."""
    with tempfile.TemporaryDirectory(prefix="dynago-kv-check-") as tmp:
        root = Path(tmp)
        with BenchCluster(logdir=root, preset="local", extra_args=["--enable-fault-injection"],
                          node_args=lambda name: ["--data-dir", str(root / name)]) as cluster:
            cluster.start(NODES)
            run = Run(cluster, args)
            wait_until(lambda: all_alive(cluster), timeout_s=CONVERGE_TIMEOUT_S,
                       interval_s=0.2, what="every node to list every member alive")
            run.began = time.monotonic()
            verdict, figures = execute(run)
    row = row_of(args, verdict, figures, run.faults)
    print(f"workload {args.workload}, fault {args.faults}: {len(run.faults)} injected, "
          f"{'PASS' if verdict.passed else 'FAIL'}")
    print(detail(verdict), flush=True)
    return {"row": row, **verdict.as_dict(), "figures": figures,
            "faults_injected": run.faults,
            "history": [op.as_dict() for op in run.history]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workload", choices=tuple(WORKLOADS), default="unique")
    parser.add_argument("--faults", choices=FAULTS, default="none")
    parser.add_argument("--all", action="store_true",
                        help=f"run every fault in turn ({', '.join(ALL_FAULTS)})")
    parser.add_argument("--keys", type=int, default=5, help="keys of the set and deletes "
                                                            "workloads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stale-sample", type=int, default=200,
                        help="keys whose replicas are checked for staleness")
    parser.add_argument("--json", type=Path, help="write the whole report here")
    parser.add_argument("--out", type=Path,
                        help="write the table to PREFIX.md and the rows to PREFIX.json")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.keys < 1 or args.stale_sample < 0:
        parser.error("--seconds must be > 0, --clients and --keys ≥ 1, --stale-sample ≥ 0")
    if args.all and args.faults != "none":
        parser.error("--all runs every fault: give no --faults")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    runs: list[dict[str, Any]] = []
    for fault in ALL_FAULTS if args.all else (args.faults,):
        try:
            runs.append(check_once(argparse.Namespace(**{**vars(args), "faults": fault})))
        except LaunchError as error:
            print(f"fault {fault}: the cluster did not come together: {error}",
                  file=sys.stderr)
            return 1
    rows = [r["row"] for r in runs]
    text = table(rows)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "load_1m": round(os.getloadavg()[0], 2)}
    print(f"\n{NODES} nodes, {args.clients} clients, {args.seconds:g} s per run, "
          f"machine {machine}\n{text}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python -m bench.kv_check " + " ".join(argv or sys.argv[1:])
        args.out.with_suffix(".md").write_text(f"`{command}` ({machine})\n\n{text}\n")
        args.out.with_suffix(".json").write_text(json.dumps(
            {"command": command, "machine": machine, "rows": rows,
             "figures": [r["figures"] for r in runs],
             "faults": [r["faults_injected"] for r in runs]}, indent=1) + "\n")
        print(f"wrote {args.out.with_suffix('.md')} and .json")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"nodes": NODES, "seconds": args.seconds, "clients": args.clients,
                  "seed": args.seed, "machine": machine}
        report.update(runs[0] if len(runs) == 1 else {"runs": runs})
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")
    passed = all(r["passed"] for r in rows)
    print("PASS: nothing acknowledged lost, nothing unexpected" if passed
          else "FAIL: something acknowledged was lost, unverifiable, or unexpected")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
