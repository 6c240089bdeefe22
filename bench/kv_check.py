"""A history checker with Jepsen's rules for the key-value store, on a real cluster.

    python -m bench.kv_check [--seconds 30] [--clients 8] [--workload unique|set]
        [--faults none|kill|pause] [--keys 5] [--seed 1] [--json PATH]

Starts 3 ``dynago node`` processes on 127.0.0.1 (ephemeral ports, a data dir each in a
temporary dir, N=3 R=W=2), then for ``--seconds`` runs ``--clients`` client threads,
each bound to one node (round-robin), each recording every operation as ok, fail or info
(indeterminate; bench.kv_history says which is which). Each request goes on a fresh
connection, so that a refused connection is known not to have been sent.

Workloads (bucket ``check``):

* ``unique``: each write PUTs a key never written before with a value never written
  before. At the end every written key is read at ``r=all``: an acknowledged key must be
  there with its value; the bucket's key listing must hold no key never written.
* ``set``: ``--keys`` keys, each a set of comma-separated elements grown by
  read-modify-write: read (siblings unioned), add one unique element, write with the
  read's context (``X-Riak-Vclock``). At the end each key is read at ``r=all``: every
  element whose write was acknowledged must be in the union of its siblings.

Faults (``--faults``), one node at a time, ending ``quiet`` seconds (a fifth of the run,
at most 5 s) before the clients stop: ``kill`` SIGKILLs a random node, waits a second and
starts it again on its data dir with its name and both ports; ``pause`` SIGSTOPs one for
3 s, then SIGCONTs it. After each fault the next waits until every node lists every
member alive again. Before the final reads the checker waits for the same.

Prints a table and writes the report (the whole history included) to ``--json``. Exit
0 when nothing acknowledged was lost, 1 when something was (or could not be read back,
or the cluster never came together). Every node process is stopped by its PID at the
end, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.cluster import BenchCluster, Member, stop_on_sigterm
from bench.kv_history import (
    FAIL,
    INFO,
    OK,
    FinalRead,
    Op,
    Verdict,
    check_set,
    check_unique,
    elements_of,
    get_outcome,
    put_outcome,
)
from dynago.kv.client import parse_multipart
from dynago.launch import LaunchError, http_json, wait_until

NODES = 3
BUCKET = "check"
CLIENT_TIMEOUT_S = 10.0
"""Longer than a node's request timeout (5 s, +1 s for a forwarded put), so that most
answers the nodes can give arrive as answers (a 503 with its count), not timeouts."""
CONVERGE_TIMEOUT_S = 60.0
FINAL_READ_ATTEMPTS = 8
KILL_DOWN_S = 1.0
PAUSE_S = 3.0
BETWEEN_FAULTS_S = 2.0
FAILED_OP_BACKOFF_S = 0.1
"""A client whose node is down waits this long after a failed or indeterminate operation
(a refused connection returns at once: without it the history fills with refusals)."""


@dataclass(frozen=True)
class Reply:
    """What one HTTP exchange gave: ``sent`` False when the connection was refused (the
    request never left), ``status`` 0 when no answer came."""

    sent: bool
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""


def exchange(address: str, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None,
             timeout_s: float = CLIENT_TIMEOUT_S) -> Reply:
    """One request on a fresh connection to ``address`` (HOST:PORT)."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        try:
            connection.connect()
        except OSError as error:
            return Reply(sent=False, error=f"connect: {type(error).__name__}")
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            return Reply(sent=True, error=f"{type(error).__name__}: {error}"[:200])
        return Reply(True, response.status, {k.lower(): v for k, v in response.getheaders()},
                     data)
    finally:
        connection.close()


def key_path(key: str, query: str = "") -> str:
    return f"/buckets/{BUCKET}/keys/{quote(key, safe='')}{query}"


def read_values(reply: Reply) -> tuple[str, ...]:
    """The live siblings' values of a GET answer (200 one, 300 several, 404 none)."""
    if reply.status == 200:
        return (reply.body.decode(),)
    if reply.status == 300:
        parts = parse_multipart(reply.headers.get("content-type", ""), reply.body)
        return tuple(p.value.decode() for p in parts if not p.deleted)
    return ()


class Run:
    """The shared state of one check: the cluster, the clock origin, the history."""

    def __init__(self, cluster: BenchCluster, args: argparse.Namespace) -> None:
        self.cluster = cluster
        self.args = args
        self.began = time.monotonic()
        self.stop = threading.Event()
        self.history: list[Op] = []
        self.faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.began

    def http_of(self, node: int) -> str:
        return self.cluster.members[node].http

    def record(self, op: Op) -> None:
        with self._lock:
            self.history.append(op)

    def _op(self, client: int, node: int, kind: str, key: str, reply: Reply,
            invoked: float, outcome: str, **extra: Any) -> Op:
        if not reply.sent:
            outcome = FAIL  # never sent: certainly without effect
        elif not reply.status:
            outcome = INFO
        op = Op(client, node, kind, key, outcome, invoked, self.now(), status=reply.status,
                error=reply.error or (reply.body[:120].decode(errors="replace")
                                      if reply.status >= 400 else ""), **extra)
        self.record(op)
        return op

    def write(self, client: int, node: int, key: str, value: str, element: str,
              context: str | None) -> Op:
        headers = {"Content-Type": "text/plain"}
        if context:
            headers["X-Riak-Vclock"] = context
        invoked = self.now()
        reply = exchange(self.http_of(node), "PUT", key_path(key), value.encode(), headers)
        return self._op(client, node, "write", key, reply, invoked,
                        put_outcome(reply.status), element=element)

    def read(self, client: int, node: int, key: str) -> tuple[Op, str | None]:
        invoked = self.now()
        reply = exchange(self.http_of(node), "GET", key_path(key),
                         headers={"Accept": "multipart/mixed"})
        values = read_values(reply) if get_outcome(reply.status) == OK else ()
        op = self._op(client, node, "read", key, reply, invoked, get_outcome(reply.status),
                      seen=tuple(sorted(elements_of(values))), siblings=len(values))
        return op, reply.headers.get("x-riak-vclock")


def unique_client(run: Run, client: int) -> None:
    node, seq = client % NODES, 0
    while not run.stop.is_set():
        name = f"u{client}-{seq}"
        op = run.write(client, node, name, f"v{client}-{seq}", f"v{client}-{seq}", None)
        seq += 1
        if op.outcome != OK:
            run.stop.wait(FAILED_OP_BACKOFF_S)


def set_client(run: Run, client: int) -> None:
    node, seq = client % NODES, 0
    rng = random.Random(run.args.seed * 1000 + client)
    keys = [f"s{i}" for i in range(run.args.keys)]
    while not run.stop.is_set():
        key = rng.choice(keys)
        read, context = run.read(client, node, key)
        if read.outcome != OK:
            run.stop.wait(FAILED_OP_BACKOFF_S)
            continue
        element = f"{client}.{seq}"
        seq += 1
        value = ",".join(sorted({*read.seen, element}))
        if run.write(client, node, key, value, element, context).outcome != OK:
            run.stop.wait(FAILED_OP_BACKOFF_S)


def all_alive(cluster: BenchCluster) -> bool:
    """Every node lists every member alive, and every node's ring holds all of them."""
    names = {m.name for m in cluster.members}
    for member in cluster.members:
        seen = {r["name"]: r["status"] for r in member.process.members_v1()}
        if any(seen.get(name) != "alive" for name in names):
            return False
        if int(member.stats().get("kv_ring_members", 0)) != len(names):
            return False
    return True


def nemesis(run: Run, mode: str, until_s: float) -> None:
    """One fault at a time until ``until_s``; each healed (every node lists every member
    alive) before the next begins."""
    rng = random.Random(run.args.seed)
    cluster = run.cluster
    # A fault starts only if it should have healed by ``until_s`` (a restart takes ~2 s).
    budget_s = KILL_DOWN_S + 3.0 if mode == "kill" else PAUSE_S + 1.0
    while not run.stop.wait(BETWEEN_FAULTS_S) and run.now() + budget_s < until_s:
        index = rng.randrange(NODES)
        victim: Member = cluster.members[index]
        fault: dict[str, Any] = {"fault": mode, "node": victim.name, "at_s": round(run.now(), 2)}
        if mode == "kill":
            victim.process.signal(signal.SIGKILL)
            victim.process.proc.wait(5)
            run.stop.wait(KILL_DOWN_S)
            other = cluster.members[(index + 1) % NODES]
            reborn = cluster.launch(victim.name, bind=victim.address, http=victim.http,
                                    seed=other.address)
            cluster.replace(victim, reborn)
            fault["restarted_at_s"] = round(run.now(), 2)
        else:
            victim.process.signal(signal.SIGSTOP)
            run.stop.wait(PAUSE_S)
            victim.process.signal(signal.SIGCONT)
            fault["resumed_at_s"] = round(run.now(), 2)
        try:
            wait_until(lambda: all_alive(cluster), timeout_s=CONVERGE_TIMEOUT_S,
                       interval_s=0.2, what="every node to list every member alive")
            fault["healed_at_s"] = round(run.now(), 2)
        except LaunchError as error:
            fault["healed_at_s"] = None
            fault["error"] = str(error)
        run.faults.append(fault)
        print(f"  {fault}", flush=True)


def final_read(run: Run, key: str, node: int) -> FinalRead:
    """``key`` read at r=all, retried (on another node each time) until it answers."""
    error = ""
    for attempt in range(FINAL_READ_ATTEMPTS):
        reply = exchange(run.http_of((node + attempt) % NODES), "GET",
                         key_path(key, "?r=all"), headers={"Accept": "multipart/mixed"})
        if reply.status in (200, 300, 404):
            return FinalRead(key, reply.status != 404, read_values(reply))
        error = reply.error or f"{reply.status} {reply.body[:100]!r}"
        time.sleep(0.2 * (attempt + 1))  # a benchmark's retry backoff, not a test wait
    return FinalRead(key, False, (), error or "no answer")


def final_state(run: Run, keys: list[str]) -> dict[str, FinalRead]:
    with concurrent.futures.ThreadPoolExecutor(max(1, run.args.clients)) as pool:
        reads = pool.map(lambda pair: final_read(run, pair[1], pair[0] % NODES),
                         enumerate(keys))
        return {read.key: read for read in reads}


def listed_keys(run: Run) -> list[str]:
    keys: list[str] = http_json(run.http_of(0), f"/buckets/{BUCKET}/keys?keys=true",
                                timeout_s=30.0)["keys"]
    return keys


def execute(run: Run) -> Verdict:
    args = run.args
    worker: Callable[[Run, int], None] = unique_client if args.workload == "unique" \
        else set_client
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
    wait_until(lambda: all_alive(run.cluster), timeout_s=CONVERGE_TIMEOUT_S, interval_s=0.2,
               what="every node to list every member alive before the final reads")
    if args.workload == "unique":
        keys = sorted({op.key for op in run.history if op.kind == "write"})
        final = final_state(run, keys)
        return check_unique(run.history, final, listed_keys(run))
    return check_set(run.history, final_state(run, [f"s{i}" for i in range(args.keys)]))


def table(verdict: Verdict) -> str:
    head = ("op", "invoked", "ok", "fail", "info")
    rows = [head] + [(kind, *(str(c[k]) for k in ("invoked", "ok", "fail", "info")))
                     for kind, c in verdict.ops.items() if c["invoked"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
             for row in rows]
    lines.append(f"lost {len(verdict.lost)}  unexpected {len(verdict.unexpected)}  "
                 f"unverified {len(verdict.unverified)}"
                 + (f"  stale reads {len(verdict.stale_reads)}"
                    if verdict.workload == "set" else ""))
    lines.append("final reads: " + "  ".join(f"{k} {v}" for k, v in verdict.final.items()))
    lines.append("siblings: " + "  ".join(f"{k} {v}" for k, v in verdict.siblings.items()))
    for what in ("lost", "unexpected", "unverified", "stale_reads"):
        items = getattr(verdict, what)
        if items:
            lines.append(f"{what} (first 5): {'; '.join(items[:5])}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workload", choices=("unique", "set"), default="unique")
    parser.add_argument("--faults", choices=("none", "kill", "pause"), default="none")
    parser.add_argument("--keys", type=int, default=5, help="keys of the set workload")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.keys < 1:
        parser.error("--seconds must be > 0, --clients and --keys ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    report: dict[str, Any] = {
        "nodes": NODES, "workload": args.workload, "faults": args.faults,
        "seconds": args.seconds, "clients": args.clients, "seed": args.seed,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory(prefix="dynago-kv-check-") as tmp:
        root = Path(tmp)
        with BenchCluster(logdir=root, preset="local",
                          node_args=lambda name: ["--data-dir", str(root / name)]) as cluster:
            cluster.start(NODES)
            run = Run(cluster, args)
            try:
                wait_until(lambda: all_alive(cluster), timeout_s=CONVERGE_TIMEOUT_S,
                           interval_s=0.2, what="every node to list every member alive")
                run.began = time.monotonic()
                verdict = execute(run)
            except LaunchError as error:
                print(f"cluster did not come together: {error}", file=sys.stderr)
                return 1
    report.update(verdict.as_dict(), faults_injected=run.faults,
                  history=[op.as_dict() for op in run.history])
    print(f"workload {args.workload}, faults {args.faults}, {args.seconds:g} s, "
          f"{args.clients} clients, {len(run.faults)} faults injected")
    print(table(verdict))
    print("VALID: nothing acknowledged was lost" if verdict.valid
          else "INVALID: acknowledged writes lost or unverifiable")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0 if verdict.valid else 1


if __name__ == "__main__":
    sys.exit(main())
