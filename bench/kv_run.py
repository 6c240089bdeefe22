"""The clients of bench.kv_check: one HTTP exchange per operation, the shared run state
and the workloads (unique keys, sets by read-modify-write, deletes and re-writes)."""

from __future__ import annotations

import argparse
import http.client
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.cluster import BenchCluster
from bench.kv_history import FAIL, INFO, OK, Op, elements_of, get_outcome, put_outcome
from dynago.kv.client import parse_multipart

NODES = 3
BUCKET = "check"
CLIENT_TIMEOUT_S = 10.0
"""Longer than a node's request timeout (5 s, +1 s for a forwarded put), so that most
answers the nodes can give arrive as answers (a 503 with its count), not timeouts."""
FAILED_OP_BACKOFF_S = 0.1
"""A client whose node is down waits this long after a failed or indeterminate operation
(a refused connection returns at once: without it the history fills with refusals)."""
DELETE_SHARE = 0.4
"""Of the deletes workload's operations on a key found, the share that delete it."""


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


def delete_outcome(status: int) -> str:
    """A delete's outcome: 204 ok; 404 info (the key was not found, yet a tombstone may
    have been written); else as a put's."""
    return INFO if status == 404 else put_outcome(status)


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
              context: str | None, seen: tuple[str, ...] = ()) -> Op:
        headers = {"Content-Type": "text/plain"}
        if context:
            headers["X-Riak-Vclock"] = context
        invoked = self.now()
        reply = exchange(self.http_of(node), "PUT", key_path(key), value.encode(), headers)
        return self._op(client, node, "write", key, reply, invoked,
                        put_outcome(reply.status), element=element, seen=seen)

    def delete(self, client: int, node: int, key: str, context: str,
               seen: tuple[str, ...]) -> Op:
        invoked = self.now()
        reply = exchange(self.http_of(node), "DELETE", key_path(key),
                         headers={"X-Riak-Vclock": context})
        return self._op(client, node, "delete", key, reply, invoked,
                        delete_outcome(reply.status), seen=seen)

    def read(self, client: int, node: int, key: str, *, split: bool = True,
             ) -> tuple[Op, str | None]:
        """Read ``key``; ``seen`` holds the set elements (``split``) or the values."""
        invoked = self.now()
        reply = exchange(self.http_of(node), "GET", key_path(key),
                         headers={"Accept": "multipart/mixed"})
        values = read_values(reply) if get_outcome(reply.status) == OK else ()
        seen = tuple(sorted(elements_of(values) if split else set(values)))
        op = self._op(client, node, "read", key, reply, invoked, get_outcome(reply.status),
                      seen=seen, siblings=len(values))
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


def delete_client(run: Run, client: int) -> None:
    """Read a key, then delete what was read (``DELETE_SHARE`` of the time) or replace it
    with a value never written before, with the read's context."""
    node, seq = client % NODES, 0
    rng = random.Random(run.args.seed * 1000 + client)
    keys = [f"d{i}" for i in range(run.args.keys)]
    while not run.stop.is_set():
        key = rng.choice(keys)
        read, context = run.read(client, node, key, split=False)
        if read.outcome != OK:
            run.stop.wait(FAILED_OP_BACKOFF_S)
            continue
        if read.seen and context and rng.random() < DELETE_SHARE:
            op = run.delete(client, node, key, context, read.seen)
        else:
            value = f"w{client}-{seq}"
            seq += 1
            op = run.write(client, node, key, value, value, context, read.seen)
        if op.outcome != OK:
            run.stop.wait(FAILED_OP_BACKOFF_S)


WORKLOADS = {"unique": unique_client, "set": set_client, "deletes": delete_client}
