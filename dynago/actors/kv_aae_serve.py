"""The AntiEntropyActor's other half (mixin of dynago.actors.kv_aae): serving a peer's
asks from this node's trees, sending repairs within the budget, and reaping tombstones
every replica confirmed (dynago.kv.reap).

* **Asks** (AaeHashesAsk, AaeKeysAsk, AaePush) of a partition outside the ring, of a
  branch, segment or level that does not exist, are dropped and counted; asked before
  the trees are built, or of a partition this node does not replicate, they get
  ``AaeRefused``. Hashes come from the trees in memory; keys from the index records on
  disk (read from the store, then answered).
* **Repairs** are ReplicaPut (origin "anti-entropy") with request ids from
  ``AAE_REQUEST_BASE`` up, whose acks the KvActor drops: one key costs a keys/s token
  when it is chosen and its bytes a bytes/s token when it is read; what the budget does
  not cover is left, still differing, for a later exchange.
* **Reap**: ``confirm`` records, for every tombstone of the partition outside the keys
  found differing, that the peer holds the same hash; when ``may_reap`` holds for the
  key's preference list, an Update(origin "reaped") applies ``reap_update``, which
  re-checks the stored hash inside the store's atomic update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from dynago.actors.kv_aae_messages import Held
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import ListItems, Origin, Read, Update
from dynago.kv import aae_index
from dynago.kv import aae_messages as aae
from dynago.kv.messages import ReplicaPut
from dynago.kv.model import ObjectKey
from dynago.kv.reap import may_reap, reap_update
from dynago.kv.tictac import BRANCHES, SEGMENTS, PartitionTree, TokenBucket, segment_of
from dynago.transport.kv_aae_codec import MAX_AAE_KEYS

log = logging.getLogger(__name__)

ORIGIN = "anti-entropy"
"""The origin of a repair, in the receiver's write history."""


@dataclass(frozen=True, slots=True)
class SendRead:
    """Private: a repair's object read from the store, to send to ``peer``."""

    peer: str
    key: bytes
    data: bytes | None


@dataclass(frozen=True, slots=True)
class Reaped:
    """Private: the reap of ``key`` committed (``reaped``), or found a newer object."""

    key: bytes
    reaped: bool


def answer(ref: pykka.ActorRef[Any], make: Callable[..., Any], *head: Any
           ) -> Callable[[Any], None]:
    """A store callback telling ``ref`` ``make(*head, value)`` (on the store's thread)."""
    return lambda value: tell_quietly(ref, make(*head, value))


def failure(ref: pykka.ActorRef[Any], make: Callable[..., Any], *head: Any,
            value: Any = None) -> Callable[[Exception], None]:
    """A store error callback telling ``ref`` ``make(*head, value)``."""
    return lambda _exc: tell_quietly(ref, make(*head, value))


def whole_segments(held: dict[bytes, int], limit: int) -> dict[bytes, int]:
    """At most ``limit`` of ``held``, whole segments only (lowest first), so that a
    segment is never compared with part of its keys."""
    if len(held) <= limit:
        return held
    by_segment: dict[int, list[bytes]] = {}
    for key in held:
        by_segment.setdefault(segment_of(key), []).append(key)
    out: dict[bytes, int] = {}
    for segment in sorted(by_segment):
        keys = by_segment[segment]
        if len(out) + len(keys) > limit:
            break
        out.update((k, held[k]) for k in keys)
    return out


class AaeServing:
    """Mixin of AntiEntropyActor (which provides what is annotated here)."""

    name: str
    storage: Any
    peers: Any
    clock: Any
    keeper: Any
    kv_config: Any
    actor_ref: Any
    built: bool
    counts: dict[str, int]
    trees: dict[int, PartitionTree]
    tombstones: dict[int, dict[bytes, int]]
    keys_bucket: TokenBucket
    bytes_bucket: TokenBucket
    _partition: Callable[[bytes], int | None]
    records: Callable[[Sequence[tuple[bytes, bytes]], int], dict[bytes, int]]

    def init_serving(self) -> None:
        self.confirmed: dict[bytes, dict[str, int]] = {}  # key -> node -> hash it holds
        self._reaping: set[bytes] = set()
        self._next_rid = aae.AAE_REQUEST_BASE

    def dropped(self) -> None:
        self.counts["kv_aae_messages_dropped"] += 1

    # ------------------------------------------------------------ responder

    def serve(self, sender: str, ask: aae.AaeHashesAsk | aae.AaeKeysAsk | aae.AaePush) -> None:
        ring = self.keeper.ring
        if not 0 <= ask.partition < ring.partitions:
            self.dropped()
            return
        if not self.built:
            self.peers.send(sender, aae.AaeRefused(ask.exchange_id, "trees not built yet"))
            return
        if self.name not in ring.preference_list(ask.partition):
            self.peers.send(sender, aae.AaeRefused(ask.exchange_id, "not a replica"))
            return
        tree = self.trees.get(ask.partition) or PartitionTree()
        match ask:
            case aae.AaeHashesAsk():
                self._serve_hashes(sender, ask, tree)
            case aae.AaeKeysAsk():
                if not all(0 <= s < SEGMENTS for s in ask.segments):
                    self.dropped()
                    return
                # The named keys' records first, then the segments' (lowest first); one
                # more than fits, so that whole_segments can tell a segment was cut.
                prefixes = [aae_index.record_key(ask.partition, segment_of(k), k)
                            for k in ask.keys]
                prefixes += [aae_index.segment_prefix(ask.partition, s)
                             for s in sorted(set(ask.segments))]
                ref = self.actor_ref
                self.storage.tell(ListItems(
                    tuple(prefixes), limit=MAX_AAE_KEYS + 1 + len(ask.keys),
                    reply=lambda items: tell_quietly(
                        ref, Held(ask.exchange_id, tuple(items), sender, ask)),
                    on_error=lambda _exc: tell_quietly(
                        ref, Held(ask.exchange_id, None, sender, ask))))
            case aae.AaePush():
                self.send_keys(sender, [k for k in ask.keys
                                        if self._partition(k) == ask.partition])

    def serve_keys(self, held: Held) -> None:
        """Answer the AaeKeysAsk ``held.for_ask`` with the records read for it."""
        ask = held.for_ask
        assert ask is not None
        if held.items is None:
            self.peers.send(held.sender, aae.AaeRefused(ask.exchange_id,
                                                        "the store could not be read"))
            return
        found = whole_segments(self.records(held.items, ask.partition), MAX_AAE_KEYS)
        self.peers.send(held.sender, aae.AaeKeys(ask.exchange_id, ask.partition,
                                                 tuple(found), tuple(found.values())))

    def _serve_hashes(self, sender: str, ask: aae.AaeHashesAsk,
                      index: PartitionTree) -> None:
        ids: tuple[int, ...]
        hashes: tuple[int, ...]
        if ask.level == aae.ROOT:
            ids, hashes = (0,), (index.tree.root,)
        elif ask.level == aae.BRANCHES:
            ids, hashes = tuple(range(BRANCHES)), tuple(index.tree.branches)
        elif ask.level == aae.SEGMENTS:
            try:
                found = index.tree.segment_hashes(ask.ids)
            except ValueError:  # a branch that does not exist
                self.dropped()
                return
            ids, hashes = tuple(found), tuple(found.values())
        else:
            self.dropped()
            return
        self.peers.send(sender, aae.AaeHashes(ask.exchange_id, ask.partition, ask.level,
                                              ids, hashes))

    # ------------------------------------------------------------ repairs

    def store_busy(self) -> bool:
        """The storage actor has more than ``aae_pause_queue_depth`` messages queued."""
        inbox: Any = self.storage.actor_inbox  # a queue.Queue for a ThreadingActor
        return bool(inbox.qsize() > self.kv_config.aae_pause_queue_depth)

    def take_keys(self, keys: Sequence[bytes]) -> list[bytes]:
        """The first of ``keys`` the keys/s budget covers now (at most one message's;
        none while the store is busy: they still differ at a later exchange)."""
        if self.store_busy():
            return []
        now = self.clock.monotonic()
        out: list[bytes] = []
        for key in keys[:MAX_AAE_KEYS]:
            if not self.keys_bucket.take(1, now):
                break
            out.append(key)
        return out

    def send_keys(self, peer: str, keys: Sequence[bytes]) -> None:
        """Read ``keys`` and send them to ``peer``, as the budget allows."""
        ref = self.actor_ref
        for key in self.take_keys(keys):
            self.storage.tell(Read(key, reply=answer(ref, SendRead, peer, key),
                                   on_error=failure(ref, SendRead, peer, key)))

    def send_read(self, message: SendRead) -> None:
        if message.data is None:
            return
        if not self.bytes_bucket.take(len(message.data), self.clock.monotonic()):
            return  # over the bytes/s budget: left for a later exchange
        rid = self._next_rid
        self._next_rid += 1
        if self.peers.send(message.peer, ReplicaPut(
                rid, ObjectKey.from_storage_key(message.key), message.data, ORIGIN)):
            self.counts["kv_aae_keys_sent"] += 1

    # ------------------------------------------------------------ reap

    def confirm(self, partition: int, peer: str, differ: Sequence[bytes],
                unsure: frozenset[int] = frozenset()) -> None:
        """``peer`` holds what this node holds for every key of ``partition`` but
        ``differ`` and those in segments ``unsure`` (found differing, not compared yet):
        that confirms the tombstones among them; reap those all confirmed."""
        tombstones = self.tombstones.get(partition)
        if partition not in self.trees or not tombstones:
            return
        skip = set(differ)
        replicas = self.keeper.ring.preference_list(partition)
        for key, held in list(tombstones.items()):
            if key in skip or key in self._reaping or segment_of(key) in unsure:
                continue
            seen = self.confirmed.setdefault(key, {})
            seen[peer] = seen[self.name] = held
            if may_reap(replicas, seen, held):
                self._reap(key, held)

    def _reap(self, key: bytes, held: int) -> None:
        reap = reap_update(held)
        done: list[bool] = []

        def fn(current: bytes | None) -> bytes | None:  # on the store's thread
            out = reap(current)
            done.append(out is not None)
            return out

        ref = self.actor_ref
        self._reaping.add(key)
        self.storage.tell(Update(
            key, fn, reply=lambda _data: tell_quietly(ref, Reaped(key, any(done))),
            on_error=failure(ref, Reaped, key, value=False), origin=Origin("reaped")))

    def reaped(self, message: Reaped) -> None:
        self._reaping.discard(message.key)
        if message.reaped:
            self.counts["kv_aae_tombstones_reaped"] += 1
