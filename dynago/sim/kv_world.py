"""KvWorld: the key-value store's nodes inside the simulator, on the membership's clock.

The membership cores run in a SimCluster as ever; the KV layer keeps its own event heap
(store completions, replica messages, request deadlines, client think times) and, before
each of its events at time t, runs the cluster up to t. Both share one virtual clock, so
a node's ring hears of a failure exactly when its membership core publishes it, and no
thread or sleep is involved. What makes a run:

* **The network.** A KV message is lost if the membership's network cannot carry it
  (``NetworkModel.reachable``: partitions, one-way cuts) or, with the run's loss rate,
  by a draw of the KV layer's own seeded stream; else it arrives one latency later, so
  each pair's messages keep their order, like a stream. It is delivered only to the life
  of the node it was sent to: a crash breaks the streams, and what was on its way to
  the old process never reaches the restarted one.
* **The stores.** Each node's store maps a storage key to an encoded object. A write
  takes ``store_delay_s`` and is acknowledged only once it is durable; what is durable
  survives a crash. ``unsafe_ack_before_write`` (tests only) breaks that rule on
  purpose: the store acknowledges at once and makes the write durable only
  ``unsafe_flush_s`` later, and a crash loses what was not flushed.
* **Crashes.** A crashed node stops at once: its membership core, its requests (their
  clients see a broken connection), its timers and its unflushed writes. A restart is a
  new life of the node on the same durable store, with a fresh ring that remembers the
  members of the old one (as the KV actor reads them back from its data dir).

Everything random comes from random.Random instances seeded from the run's seed: the
same seed gives the same run, event for event.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from dynago.config import Config
from dynago.core.messages import MemberEvent
from dynago.kv.members import RingKeeper
from dynago.kv.messages import KvMessage
from dynago.sim.cluster import SimCluster
from dynago.sim.kv_io import Life, StoreOps
from dynago.sim.kv_node import SimKvNode


@dataclass(frozen=True, slots=True)
class KvSimParams:
    """The KV layer's settings in a simulated run (every ``*_s`` in virtual seconds)."""

    request_timeout_s: float = 1.0
    """A coordinator's deadline for the R or W replies of one request
    (``KvConfig.request_timeout_s``; shorter than the node's default 5 s so that a
    request stuck on a partitioned replica frees its client sooner)."""
    store_delay_s: float = 0.0005
    """How long a store read or write takes (a write is acknowledged after it)."""
    ring_grace_s: float = 3600.0
    """``KvConfig.ring_grace_s``: a failed member keeps its partitions this long."""
    unsafe_ack_before_write: bool = False
    """Tests only: a deliberately broken store that acknowledges before it is durable."""
    unsafe_flush_s: float = 0.5
    """With ``unsafe_ack_before_write``: when an acknowledged write becomes durable."""
    unsafe_forget_ring_on_restart: bool = False
    """Tests only: a restarted node starts with a ring of itself alone (as before the KV
    actor kept its ring's members in its data dir; docs/kv.md "Checking the promises")."""


class SimStore:
    """One node's storage engine: ``durable`` survives crashes; ``volatile`` holds the
    acknowledged but unflushed writes of the broken store (empty otherwise)."""

    def __init__(self) -> None:
        self.durable: dict[bytes, bytes] = {}
        self.volatile: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        value = self.volatile.get(key)
        return value if value is not None else self.durable.get(key)


_Event = tuple[float, int, Callable[[], None]]


class KvWorld(StoreOps):
    """The KV nodes of one simulated run and their shared event queue."""

    def __init__(self, sim: SimCluster, config: Config, seed: int, params: KvSimParams,
                 loss: float) -> None:
        self.sim = sim
        self.config = config
        self.params = params
        self.loss = loss
        self._rng = random.Random(f"{seed}/kv-network")
        self._queue: list[_Event] = []
        self._seq = 0
        self.stores: dict[str, SimStore] = {}
        self.nodes: dict[str, SimKvNode] = {}
        """The current life of every node (``up`` False once it crashed)."""
        self._retired: Counter[str] = Counter()
        """The counters of nodes' past lives."""
        self.sent: Counter[str] = Counter()
        """KV messages sent, by kind."""
        self.dropped = 0

    @property
    def now(self) -> float:
        return self.sim.now

    # ------------------------------------------------------------------ events

    def at(self, time: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at virtual time ``time`` (after the cluster's events of that time)."""
        self._seq += 1
        heapq.heappush(self._queue, (max(time, self.now), self._seq, fn))

    def later(self, node: Life, delay_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` after ``delay_s`` if ``node`` (this life of it) is still up."""
        self.at(self.now + delay_s, lambda: fn() if node.up else None)

    def run_until(self, until: float) -> None:
        """Process every membership and KV event up to and including time ``until``."""
        queue = self._queue
        while queue and queue[0][0] <= until:
            self.sim.run_until(queue[0][0])
            _time, _seq, fn = heapq.heappop(queue)
            fn()
        self.sim.run_until(until)

    def member_event(self, now: float, node: str, event: MemberEvent) -> None:
        """The SimCluster's observer: node's KV layer hears its core's member events."""
        kv = self.nodes.get(node)
        if kv is not None and kv.up:
            kv.ring.changed(event, now)
            kv.ring.rebuild(now)

    # ------------------------------------------------------------------ nodes

    def _ring(self, name: str) -> RingKeeper:
        return RingKeeper(name, partitions=self.config.ring_partitions,
                          n_val=self.config.n_val, grace_s=self.params.ring_grace_s)

    def start(self, names: list[str]) -> None:
        """The KV layer of a converged cluster of ``names`` (already started in the
        SimCluster): every node's ring holds every member, alive."""
        for name in names:
            ring = self._ring(name)
            ring.seen([(other, 0, "alive", ()) for other in names], self.now)
            ring.rebuild(self.now)
            self.stores[name] = SimStore()
            self.nodes[name] = self._node(name, ring)

    def _node(self, name: str, ring: RingKeeper) -> SimKvNode:
        # As the KvActor: an object must fit in a message, with room for the envelope.
        return SimKvNode(name, ring, self, self.config.n_val, self.params.request_timeout_s,
                         self.config.max_message_bytes - 64 * 1024)

    def crash(self, name: str) -> None:
        """Stop ``name`` at once: membership, requests, timers, unflushed writes."""
        node = self.nodes[name]
        if not node.up:
            return
        node.crash()
        self._retired.update(node.stats)
        self.stores[name].volatile.clear()
        self.sim.crash(name)

    def restart(self, name: str, seeds: list[str]) -> None:
        """A new life of a crashed ``name`` on its durable store, joining through the
        members named in ``seeds``."""
        old = self.nodes[name]
        if old.up:
            raise ValueError(f"{name} is running")
        ring = self._ring(name)
        if not self.params.unsafe_forget_ring_on_restart:
            ring.remember(old.ring.remembered(), self.now)
        self.nodes[name] = self._node(name, ring)
        self.sim.add_node(name, self.sim.addresses[name],
                          seeds=[self.sim.addresses[seed] for seed in seeds])

    def stats(self) -> Counter[str]:
        """Every node's counters, over all its lives."""
        total = Counter(self._retired)
        for node in self.nodes.values():
            if node.up:
                total.update(node.stats)
        return total

    # ------------------------------------------------------------------ StoreOps

    def send(self, sender: Life, to: str, message: KvMessage) -> None:
        self.sent[type(message).__name__] += 1
        target = self.nodes.get(to)
        if (target is None or not target.up
                or not self.sim.network.reachable(sender.name, to)
                or (self.loss and self._rng.random() < self.loss)):
            self.dropped += 1
            return
        name = sender.name
        self.at(self.now + self.sim.network.latency_s,
                lambda: target.receive(name, message) if target.up else None)

    def read(self, node: Life, key: bytes, reply: Callable[[bytes | None], None]) -> None:
        store = self.stores[node.name]
        self.later(node, self.params.store_delay_s, lambda: reply(store.get(key)))

    def update(self, node: Life, key: bytes, fn: Callable[[bytes | None], bytes | None],
               reply: Callable[[bytes | None], None],
               on_error: Callable[[Exception], None]) -> None:
        store = self.stores[node.name]

        def apply() -> None:
            current = store.get(key)
            try:
                new = fn(current)
            except Exception as error:  # noqa: BLE001 - the update's own refusal, reported
                on_error(error)
                return
            if new is None:
                reply(current)
                return
            if self.params.unsafe_ack_before_write:
                store.volatile[key] = new
                self.later(node, self.params.unsafe_flush_s, lambda: self._flush(store, key, new))
            else:
                store.durable[key] = new
            reply(new)

        self.later(node, self.params.store_delay_s, apply)

    @staticmethod
    def _flush(store: SimStore, key: bytes, value: bytes) -> None:
        store.durable[key] = value
        if store.volatile.get(key) is value:
            del store.volatile[key]
