"""Simulated clients of the key-value store: the checker's three workloads, recorded as
Jepsen histories (dynago.kv.history) on the virtual clock.

Each client runs one operation at a time against a node picked at random among those
running (a load balancer that skips dead nodes), then thinks for an exponentially
distributed time. Each operation is one of:

* ``unique`` — put a fresh key with a fresh value, once, without a context;
* ``set`` — read one of a few shared keys (R = the default quorum), then write the
  union of its siblings' elements plus one new element with the read's context:
  concurrent clients make siblings, which the next read merges by union;
* ``rewrite`` — read one of the client's own keys, then write a new value with the
  read's context, or (if found, sometimes) delete it with that context; the write's
  ``seen`` is what the read returned, all of which it supersedes.

Outcomes follow the HTTP mapping of the real check (``put_outcome``, ``get_outcome``):
an answer is ok, a 4xx a certain failure, a 503 or a broken connection (the node
crashed) indeterminate. Values are unique over the run, so each one names its write.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

from dynago.kv.history import INFO, Op, elements_of, get_outcome, put_outcome
from dynago.kv.model import Content, GetReply, KvError, ObjectKey, Quorum
from dynago.sim.kv_io import ConnectionLost, GetResult, PutResult
from dynago.sim.kv_world import KvWorld

BUCKET = "sim"
WORKLOADS = ("unique", "set", "rewrite")


@dataclass(frozen=True, slots=True)
class Workload:
    """How the simulated clients load the store."""

    clients: int = 6
    think_s: float = 0.1
    """Mean pause between a client's operations (exponential)."""
    shares: tuple[float, float, float] = (0.3, 0.4, 0.3)
    """Chance of a unique, set and rewrite operation."""
    set_keys: int = 4
    rewrite_keys: int = 2
    """Rewrite keys per client."""
    delete_share: float = 0.3
    """Chance that a rewrite of a key found is a delete."""


def _status(result: PutResult | GetResult) -> tuple[int, str]:
    """(HTTP status, error) of a result; status 0 for a broken connection."""
    if isinstance(result, ConnectionLost):
        return 0, str(result)
    if isinstance(result, KvError):
        return result.status, str(result)
    if isinstance(result, GetReply):
        return (200 if len(result.siblings) < 2 else 300) if result.found else 404, ""
    return 200, ""


def _outcome(kind: str, status: int) -> str:
    if status == 0:
        return INFO  # the request was sent, then the connection broke
    return put_outcome(status) if kind != "read" else get_outcome(status)


def values_of(reply: GetReply) -> tuple[str, ...]:
    """The live siblings' values, as text, in sibling order."""
    return tuple(s.content.value.decode() for s in reply.siblings)


@dataclass
class _Client:
    index: int
    count: int = 0
    busy: bool = False


@dataclass
class SimClients:
    """The clients of one run and the histories they recorded, per workload."""

    world: KvWorld
    names: list[str]
    rng: random.Random
    workload: Workload
    stop_s: float = 0.0
    histories: dict[str, list[Op]] = field(
        default_factory=lambda: {name: [] for name in WORKLOADS})
    _clients: list[_Client] = field(default_factory=list)

    def start(self, at: float, stop_s: float) -> None:
        """Clients start at ``at`` and invoke no operation at or after ``stop_s``."""
        self.stop_s = stop_s
        self._clients = [_Client(i) for i in range(self.workload.clients)]
        for client in self._clients:
            self.world.at(at + self.rng.random() * self.workload.think_s,
                          functools.partial(self._next, client))

    @property
    def busy(self) -> int:
        """Operations in flight."""
        return sum(1 for client in self._clients if client.busy)

    @property
    def operations(self) -> int:
        return sum(len(history) for history in self.histories.values())

    def keys(self) -> list[str]:
        """Every key any operation touched, sorted."""
        return sorted({op.key for history in self.histories.values() for op in history})

    def _next(self, client: _Client) -> None:
        world = self.world
        up = [name for name in self.names if world.nodes[name].up]
        if world.now >= self.stop_s:
            return
        if not up:  # nothing to talk to: try again later
            self._pause(client)
            return
        node = self.rng.choice(up)
        client.busy = True
        client.count += 1
        tag = f"{client.index}-{client.count}"
        workload = self.rng.choices(WORKLOADS, weights=self.workload.shares)[0]
        if workload == "unique":
            self._put(client, node, "unique", f"u-{tag}", f"u-{tag}", None, ())
        elif workload == "set":
            self._read_then(client, node, f"s-{self.rng.randrange(self.workload.set_keys)}",
                            "set", tag)
        else:
            key = f"r-{client.index}-{self.rng.randrange(self.workload.rewrite_keys)}"
            self._read_then(client, node, key, "rewrite", tag)

    def _pause(self, client: _Client) -> None:
        client.busy = False
        think = self.rng.expovariate(1.0 / self.workload.think_s)
        self.world.at(self.world.now + think, lambda: self._next(client))

    def _record(self, workload: str, op: Op) -> None:
        self.histories[workload].append(op)

    def _read_then(self, client: _Client, node: str, key: str, workload: str,
                   tag: str) -> None:
        invoked = self.world.now

        def done(result: GetResult) -> None:
            status, error = _status(result)
            seen: tuple[str, ...] = ()
            if isinstance(result, GetReply):
                seen = values_of(result)
                if workload == "set":
                    seen = tuple(sorted(elements_of(seen)))
            outcome = _outcome("read", status)
            self._record(workload, Op(
                client.index, self.names.index(node), "read", key, outcome, invoked,
                self.world.now, status=status, error=error, seen=seen,
                siblings=len(result.siblings) if isinstance(result, GetReply) else 0))
            if not isinstance(result, GetReply) or not self.world.nodes[node].up:
                self._pause(client)
                return
            if workload == "set":
                element = f"e-{tag}"
                value = ",".join(sorted({*seen, element}))
                self._put(client, node, "set", key, element, result.context, (), value)
            elif result.found and self.rng.random() < self.workload.delete_share:
                self._put(client, node, "rewrite", key, "", result.context, seen)
            else:
                self._put(client, node, "rewrite", key, f"r-{tag}", result.context, seen)

        self.world.nodes[node].get(ObjectKey(BUCKET, key), Quorum(), done)

    def _put(self, client: _Client, node: str, workload: str, key: str, element: str,
             context: bytes | None, seen: tuple[str, ...], value: str | None = None) -> None:
        """Write ``value`` (default ``element``); an empty element is a delete."""
        invoked = self.world.now
        kind = "write" if element else "delete"
        content = (Content((value or element).encode()) if element
                   else Content(b"", deleted=True))

        def done(result: PutResult) -> None:
            status, error = _status(result)
            self._record(workload, Op(
                client.index, self.names.index(node), kind, key, _outcome(kind, status),
                invoked, self.world.now, element=element, status=status, error=error,
                seen=seen))
            self._pause(client)

        self.world.nodes[node].put(ObjectKey(BUCKET, key), content, context, Quorum(), done)

