"""AntiEntropyActor: compares this node's partitions with other replicas' and repairs the
keys that differ, read or not (docs/reliability.md "Active anti-entropy"). Rules:
dynago.kv.tictac (trees, comparisons, the token bucket), dynago.kv.reap (tombstones).

* **Trees**: the keys and object hashes are records on disk (dynago.kv.aae_index),
  written by the StorageActor in the same transaction as the objects; this actor keeps
  only each partition's tree and segment counts (``PartitionTree``). At start it watches
  the index's changes (WatchIndex), reads the MARKER (rebuilding the records first if
  the store has none or they are for another partition count), then reads the records
  in pages into the trees. A change is applied once the scan has passed its record (the
  scan sees the rest), so every record counts once. Until the trees are built it
  answers every ask with ``AaeRefused``.
* **Exchange**: every ``aae_exchange_interval_s`` (±50 %), if enabled and the store is
  not busy, one partition this node replicates, with one other reachable replica: root,
  differing branches, differing segments, their keys (dynago.kv.aae_messages). Then the
  keys this node holds differently go as ReplicaPut (origin "anti-entropy") and the keys
  the peer holds differently are asked for with AaePush; receivers merge (the KvActor's
  ReplicaPut path). One exchange at a time, each step bounded by ``request_timeout_s``.
  Keys beyond the budget (keys/s, bytes/s) are left for a later exchange, which will
  find them still differing.
* **Reap**: an exchange in which the peer holds the same hash for a key as this node's
  tombstone is that peer's confirmation; once every node of the key's preference list
  confirmed (``may_reap``), the tombstone is replaced by its marker (``reap_update``,
  origin "reaped"), which anti-entropy then spreads.

A malformed message (unknown partition, bad ids, an answer to no exchange of ours) is
dropped and counted; an exception in a handler is logged and counted, never fatal.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pykka

from dynago.actors.kv_aae_messages import (
    Exchange,
    Expired,
    GetAaeStats,
    Held,
    IndexChanged,
    MarkerRead,
    Rebuilt,
    Scanned,
    Tick,
)
from dynago.actors.kv_aae_serve import AaeServing, Reaped, SendRead
from dynago.actors.kv_aae_trees import AaeTrees
from dynago.actors.messages import PeerMessage
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import ListItems
from dynago.actors.timers import Scheduler
from dynago.clock import Clock
from dynago.kv import aae_index
from dynago.kv import aae_messages as aae
from dynago.kv.aae_index import AaeIndexer
from dynago.kv.config import KvConfig
from dynago.kv.members import RingKeeper
from dynago.kv.tictac import (
    BRANCHES,
    PartitionTree,
    TokenBucket,
    compare_keys,
    differing,
    differing_branches,
)

log = logging.getLogger(__name__)

KEYS_PER_EXCHANGE = 1000
"""Keys of this node's (about) whose segments one exchange compares key by key."""

class AntiEntropyActor(AaeTrees, AaeServing, pykka.ThreadingActor):
    """Keeps the replicas of node ``name``'s partitions equal (``peers``: a sender of
    wire messages, ``storage``: the StorageActor, ``ring``: the KvActor's RingKeeper,
    read only: its ring is replaced whole)."""

    def __init__(self, *, name: str, kv_config: KvConfig, storage: pykka.ActorRef[Any],
                 peers: Any, clock: Clock, scheduler: Scheduler, ring: RingKeeper,
                 rng: random.Random | None = None) -> None:
        super().__init__()
        self.name = name
        self.kv_config = kv_config
        self.storage = storage
        self.peers = peers
        self.clock = clock
        self.scheduler = scheduler
        self.keeper = ring
        self.rng = rng or random.Random()
        now = clock.monotonic()
        self.keys_bucket = TokenBucket(kv_config.aae_max_keys_per_s,
                                       max(1.0, kv_config.aae_max_keys_per_s), now)
        self.bytes_bucket = TokenBucket(kv_config.aae_max_bytes_per_s,
                                        max(1.0, kv_config.aae_max_bytes_per_s), now)
        self.indexer = AaeIndexer(ring.partitions)
        self.trees: dict[int, PartitionTree] = {}
        # Partition -> key -> hash of the tombstone held here (the reap's candidates).
        self.tombstones: dict[int, dict[bytes, int]] = {}
        self.built = False
        self._scanned: bytes | None = None  # the last record key the scan applied
        self._stalled: Any = None  # the start-up step to retry at the next tick
        self._exchange: Exchange | None = None
        self._next_exchange = 1
        self._last_ok: dict[int, float] = {}
        self._last_try: dict[int, float] = {}
        self._started = now
        self._timer: Any = None
        self.counts = dict.fromkeys(
            ("kv_aae_exchanges", "kv_aae_exchanges_failed", "kv_aae_segments_differing",
             "kv_aae_keys_sent", "kv_aae_keys_received", "kv_aae_tombstones_reaped",
             "kv_aae_messages_dropped", "kv_aae_internal_errors",
             "kv_aae_records_dropped", "kv_aae_index_rebuilds"), 0)
        self.init_serving()

    # ------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        self.start_trees()
        self._schedule()

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._exchange is not None and self._exchange.timer is not None:
            self._exchange.timer.cancel()

    def _schedule(self) -> None:
        mean = self.kv_config.aae_exchange_interval_s
        ref = self.actor_ref
        self._timer = self.scheduler.call_later(self.rng.uniform(0.5 * mean, 1.5 * mean),
                                                lambda: tell_quietly(ref, Tick()))

    # ------------------------------------------------------------ dispatch

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        except Exception:
            self.counts["kv_aae_internal_errors"] += 1
            log.exception("aae: handling %s failed", type(message).__name__)
            return None
        finally:
            if isinstance(message, PeerMessage) and message.done is not None:
                message.done()

    def _dispatch(self, message: Any) -> Any:
        match message:
            case IndexChanged():
                self.index_changed(message)
            case MarkerRead():
                self.marker_read(message.value)
            case Rebuilt():
                self.rebuilt(message)
            case Scanned():
                self.scanned(message)
            case Held():
                if message.for_ask is not None:
                    self.serve_keys(message)
                else:
                    self._compare(message)
            case PeerMessage():
                self._peer(message.sender, message.message)
            case SendRead():
                self.send_read(message)
            case Reaped():
                self.reaped(message)
            case Tick():
                self._schedule()
                stalled, self._stalled = self._stalled, None
                if stalled is not None:
                    stalled()
                self._start_exchange()
            case Expired():
                ex = self._exchange
                if ex is not None and ex.exchange_id == message.exchange_id:
                    log.info("aae: exchange of partition %d with %s timed out",
                             ex.partition, ex.peer)
                    self._end(False)
            case GetAaeStats():
                return self.stats()
            case _:
                self.counts["kv_aae_messages_dropped"] += 1
        return None

    def stats(self) -> dict[str, int]:
        """The counters of GetAaeStats."""
        now = self.clock.monotonic()
        mine = self._replicated()
        lag = max((now - self._last_ok.get(p, self._started) for p in mine), default=0.0)
        return dict(self.counts) | {"kv_aae_lag_s": int(lag), "kv_aae_ready": int(self.built),
                                    "kv_aae_keys": sum(len(t) for t in self.trees.values()),
                                    "kv_aae_tombstones": sum(map(len, self.tombstones.values()))}

    def _replicated(self) -> list[int]:
        ring = self.keeper.ring
        return [p for p in range(ring.partitions) if self.name in ring.preference_list(p)]

    # ------------------------------------------------------------ initiator

    def _start_exchange(self) -> None:
        if not self.kv_config.aae_enabled or not self.built or self._exchange is not None:
            return
        if self.store_busy():
            return  # the foreground is busy
        ring = self.keeper.ring
        choices = [(p, peer) for p in self._replicated() for peer in ring.preference_list(p)
                   if peer != self.name and self.keeper.reachable(peer)]
        if not choices:
            return
        # The partition tried longest ago first, so that every one is compared in turn
        # (one whose peer refuses does not starve the others).
        oldest = min(self._last_try.get(p, self._started) for p, _ in choices)
        partition, peer = self.rng.choice(
            [c for c in choices if self._last_try.get(c[0], self._started) == oldest])
        self._last_try[partition] = self.clock.monotonic()
        ex = Exchange(self._next_exchange, partition, peer, aae.ROOT)
        self._next_exchange += 1
        self._exchange = ex
        self._ask(aae.AaeHashesAsk(ex.exchange_id, partition, aae.ROOT))

    def _ask(self, message: aae.AaeHashesAsk | aae.AaeKeysAsk) -> None:
        ex = self._exchange
        assert ex is not None
        if ex.timer is not None:
            ex.timer.cancel()
        if not self.peers.send(ex.peer, message):
            self._end(False)
            return
        ref, eid = self.actor_ref, ex.exchange_id
        ex.timer = self.scheduler.call_later(self.kv_config.request_timeout_s,
                                             lambda: tell_quietly(ref, Expired(eid)))

    def _end(self, ok: bool) -> None:
        ex, self._exchange = self._exchange, None
        if ex is None:
            return
        if ex.timer is not None:
            ex.timer.cancel()
        if ok:
            self.counts["kv_aae_exchanges"] += 1
            self._last_ok[ex.partition] = self.clock.monotonic()
        else:
            self.counts["kv_aae_exchanges_failed"] += 1

    def _mine(self, sender: str, message: Any) -> Exchange | None:
        """The exchange ``message`` answers, or None (dropped and counted)."""
        ex = self._exchange
        if (ex is None or message.exchange_id != ex.exchange_id or sender != ex.peer
                or getattr(message, "partition", ex.partition) != ex.partition):
            self.counts["kv_aae_messages_dropped"] += 1
            return None
        return ex

    def _hashes(self, sender: str, reply: aae.AaeHashes) -> None:
        ex = self._mine(sender, reply)
        if ex is None:
            return
        if reply.level != ex.level or len(reply.ids) != len(reply.hashes):
            self.counts["kv_aae_messages_dropped"] += 1
            self._end(False)
            return
        tree = self.trees.setdefault(ex.partition, PartitionTree()).tree
        if ex.level == aae.ROOT:
            if reply.hashes == (tree.root,):
                self.confirm(ex.partition, ex.peer, ())
                self._end(True)
                return
            ex.level = aae.BRANCHES
            self._ask(aae.AaeHashesAsk(ex.exchange_id, ex.partition, aae.BRANCHES))
        elif ex.level == aae.BRANCHES:
            theirs = dict(zip(reply.ids, reply.hashes, strict=True))
            branches = differing_branches(tree.branches,
                                          [theirs.get(i, 0) for i in range(BRANCHES)])
            if not branches:
                self.confirm(ex.partition, ex.peer, ())
                self._end(True)
                return
            ex.level = aae.SEGMENTS
            ex.segments = tuple(branches)
            self._ask(aae.AaeHashesAsk(ex.exchange_id, ex.partition, aae.SEGMENTS,
                                       tuple(branches)))
        else:
            theirs = dict(zip(reply.ids, reply.hashes, strict=True))
            segments = differing(tree.segment_hashes(ex.segments), theirs)
            self.counts["kv_aae_segments_differing"] += len(segments)
            if not segments:
                self.confirm(ex.partition, ex.peer, ())
                self._end(True)
                return
            ex.level = -1  # waiting for the keys
            ex.segments = self._few(ex.partition, segments)
            ex.unsure = frozenset(segments) - frozenset(ex.segments)
            self._ask(aae.AaeKeysAsk(ex.exchange_id, ex.partition, tuple(segments)))

    def _few(self, partition: int, segments: list[int]) -> tuple[int, ...]:
        """The first of ``segments`` holding at most KEYS_PER_EXCHANGE keys here (one at
        least): the rest wait for the next exchange, and one answer stays small."""
        counts = self.trees[partition].counts
        out: list[int] = []
        count = 0
        for segment in segments:
            count += counts[segment]
            if out and count > KEYS_PER_EXCHANGE:
                break
            out.append(segment)
        return tuple(out)

    def _keys(self, sender: str, reply: aae.AaeKeys) -> None:
        ex = self._mine(sender, reply)
        if ex is None:
            return
        if ex.level != -1 or len(reply.keys) != len(reply.hashes):
            self.counts["kv_aae_messages_dropped"] += 1
            self._end(False)
            return
        ex.level = -2  # reading this node's keys of the segments
        ex.theirs = reply
        ref, eid = self.actor_ref, ex.exchange_id
        self.storage.tell(ListItems(
            tuple(aae_index.segment_prefix(ex.partition, s) for s in ex.segments),
            limit=1 << 30, reply=lambda items: tell_quietly(ref, Held(eid, tuple(items))),
            on_error=lambda _exc: tell_quietly(ref, Held(eid, None))))

    def _compare(self, held: Held) -> None:
        ex = self._exchange
        if ex is None or ex.exchange_id != held.exchange_id or ex.theirs is None:
            return  # the exchange ended (timed out) while the store read
        if held.items is None:
            self._end(False)
            return
        reply = ex.theirs
        mine = self.records(held.items, ex.partition)
        diff = compare_keys(mine, dict(zip(reply.keys, reply.hashes, strict=True)))
        self.confirm(ex.partition, ex.peer, diff.send, ex.unsure)
        wanted = self.take_keys([k for k in diff.fetch if self._partition(k) == ex.partition])
        if wanted:
            self.peers.send(ex.peer, aae.AaePush(ex.exchange_id, ex.partition, tuple(wanted)))
            self.counts["kv_aae_keys_received"] += len(wanted)
        self.send_keys(ex.peer, diff.send)
        self._end(True)

    # ------------------------------------------------------------ responder

    def _peer(self, sender: str, message: object) -> None:
        match message:
            case aae.AaeHashes():
                self._hashes(sender, message)
            case aae.AaeKeys():
                self._keys(sender, message)
            case aae.AaeRefused():
                if self._mine(sender, message) is not None:
                    log.debug("aae: %s refused: %s", sender, message.reason)
                    self._end(False)
            case aae.AaeHashesAsk() | aae.AaeKeysAsk() | aae.AaePush():
                self.serve(sender, message)
            case _:
                self.dropped()
