"""KvActor: the key-value store's request driver on one node.

It owns no data (the StorageActor owns the engine) and no streams (PeerActors do). It
holds the ring, built from the members it hears of, and the request state machines of
``dynago.kv.requests``, and does their I/O:

* a client **put** (or delete: a tombstone) is coordinated by a node of the key's
  preference list — this one if it is in it, else the first live node of the list, to
  which it is forwarded (ForwardPut), as Riak does, so that version entries belong to
  replicas. The coordinator writes locally first (``version.coordinate``: a new dot of its
  own), then sends the object to the other N-1 (ReplicaPut) and answers after W durable
  acknowledgements, its own included;
* a client **get** is coordinated here: ReplicaGet to the N replicas (its own store
  directly), the answer after R replies, merged (``version.merge``);
* **replica messages** from peers (routed here by each PeerActor) are served from the
  local store and answered on the same stream;
* **sloppy quorum** (dynago.kv.fallback, actors/kv_sloppy.py): puts and gets go to the
  healthy primaries and, for each unhealthy one, a fallback named with ``hint_for``; a
  ReplicaPut or ReplicaGet naming an owner is served from this node's hint for it. Acks
  of hand-backs (request ids from HINT_REQUEST_BASE up) are handed to the HintActor.

Every wait is bounded (``KvConfig.request_timeout_s``, a timer per request), and one
slow replica only delays the requests that wait on it. Nothing here blocks: the store
answers through callbacks that ``tell`` this actor, and peers are told through their
PeerActors. A replica message that breaks the rules is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pykka

from dynago.actors import kv_coordinate
from dynago.actors.hosting import LoopActor
from dynago.actors.kv_handoff_messages import InboundView
from dynago.actors.kv_handoff_reads import HandoffReads, ProxyExpire, ProxyLocal
from dynago.actors.kv_messages import (
    ClientGet,
    ClientListKeys,
    ClientPut,
    Expire,
    GetKvSnapshot,
    GetKvStats,
    LocalDone,
    LocalHealth,
    LocalKeys,
    MemberChanged,
    MembersSeen,
    ReplicaDone,
    RingCheck,
    Speculate,
)
from dynago.actors.kv_reads import key_names, live, merge_into
from dynago.actors.messages import PeerMessage
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import ListKeys as StoreListKeys
from dynago.actors.storage_messages import Origin, Read, Update
from dynago.actors.timers import Scheduler
from dynago.clock import Clock
from dynago.config import Config
from dynago.kv import version
from dynago.kv.aae_messages import AAE_REQUEST_BASE
from dynago.kv.config import KvConfig
from dynago.kv.fallback import HINT_REQUEST_BASE, hint_key
from dynago.kv.members import RingKeeper
from dynago.kv.messages import (
    KV_MESSAGE_TYPES,
    ForwardPut,
    ForwardReply,
    KeyList,
    KvMessage,
    ListKeys,
    ReplicaGet,
    ReplicaGetReply,
    ReplicaPut,
    ReplicaPutAck,
)
from dynago.kv.model import ObjectKey
from dynago.kv.stats import KvStats

log = logging.getLogger(__name__)

RING_REBUILD_INTERVAL_S = 0.2
"""Rebuilds of the ring are at least this far apart (membership events in between are
taken together at the end of the interval)."""

RING_REBUILD_COST_MULT = 20.0
"""...and at least this many times as far apart as the last rebuild took, so that
rebuilding costs at most ~5 % of the KvActor's time (a flood of made-up members made
rebuilds compete with the membership actor for the interpreter)."""


class KvActor(kv_coordinate.Coordinator, HandoffReads, LoopActor):
    """Drives the KV requests of node ``name``.

    Hosted on ``loop`` when given (the transport's: replica messages reach it and leave
    it with no thread hop, actors/hosting.py), else on its own thread.
    """

    def __init__(
        self,
        *,
        name: str,
        config: Config,
        kv_config: KvConfig,
        storage: pykka.ActorRef[Any],
        peers: kv_coordinate.PeerSender,
        clock: Clock,
        scheduler: Scheduler,
        ring: RingKeeper | None = None,
        on_ring_change: Callable[[list[tuple[str, str | None]]], None] | None = None,
        hints: pykka.ActorRef[Any] | None = None,
        inbound: InboundView | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.host_loop = loop  # before pykka's __init__, which makes the mailbox
        super().__init__()
        self.name = name
        # Membership's suspicions pick fallbacks only while this node's own local health
        # is good (LocalHealth); degraded, it may be the slow one.
        self.trust_suspicion = True
        self.config = config
        self.kv_config = kv_config
        self.storage = storage
        self.peers = peers
        self.clock = clock
        self.scheduler = scheduler
        self.ring = ring or RingKeeper(name, partitions=config.ring_partitions,
                                       n_val=config.n_val, grace_s=kv_config.ring_grace_s)
        self.stats = KvStats()
        self._on_ring_change = on_ring_change
        self.hints = hints  # the HintActor: hand-back acknowledgements go to it
        self.max_object_bytes = config.max_message_bytes - 64 * 1024
        self._next_id = 0
        self._ring_timer: Any = None
        self._rebuild_timer: Any = None
        self._last_rebuild = float("-inf")
        self._rebuild_interval = RING_REBUILD_INTERVAL_S
        self.init_requests()
        # Partitions still being handed to this node, and by whom (kv_handoff_reads).
        self.inbound = inbound or InboundView()
        self.init_proxies()

    # ------------------------------------------------------------ dispatch

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        except Exception:
            # A bug here must not take the node's store down with it (pykka stops an actor
            # whose tell raised): log it loudly, count it, and go on with the next message.
            self.stats.count("kv_internal_errors")
            log.exception("kv: handling %s failed", type(message).__name__)
            return None

    def _dispatch(self, message: Any) -> Any:
        match message:
            case ClientGet():
                self.start_get(message)
            case ClientPut():
                self.start_put(message)
            case ClientListKeys():
                self.start_listing(message)
            case LocalDone():
                self.local_done(message)
            case LocalKeys():
                self.local_keys(message)
            case ReplicaDone():
                self._replica_done(message)
            case Expire():
                self.expire(message.request_id)
            case Speculate():
                self.speculate(message.request_id)
            case MembersSeen():
                self.ring.seen(((m.name, m.incarnation, m.status, m.tags)
                                for m in message.members), self.clock.monotonic())
                self._ring_changed()
            case MemberChanged():
                self.ring.changed(message.event, self.clock.monotonic())
                self._ring_changed()
            case LocalHealth(score):
                self.trust_suspicion = score == 0
            case RingCheck():
                self._ring_timer = self._rebuild_timer = None
                self._ring_changed()
            case GetKvStats():
                return self.stats.as_dict() | {"kv_requests_in_flight": self.in_flight()}
            case GetKvSnapshot():
                return self.stats.snapshot(self.in_flight())
            case PeerMessage():
                self._peer_message(message.sender, message.message, message.done)
            case ProxyLocal() | ProxyExpire():
                self.proxy_message(message)
            case _:
                log.warning("kv: unexpected message %r", type(message).__name__)
        return None

    def _ring_changed(self) -> None:
        now = self.clock.monotonic()
        wait = self._last_rebuild + self._rebuild_interval - now
        if wait > 0:
            # A burst of membership events (a join wave, a flood) costs one rebuild per
            # interval, not one per event; the RingCheck timer catches up with the rest.
            if self._rebuild_timer is None:
                ref = self.actor_ref
                self._rebuild_timer = self.scheduler.call_later(
                    wait, lambda: tell_quietly(ref, RingCheck()))
            return
        self._last_rebuild = now
        changed = self.ring.rebuild(now)
        # Under a flood of members (thousands joining), a rebuild costs tens of ms: keep
        # rebuilds to a few percent of this thread's time, whatever the cluster's size.
        cost = self.clock.monotonic() - now
        self._rebuild_interval = max(RING_REBUILD_INTERVAL_S, RING_REBUILD_COST_MULT * cost)
        if changed and self._on_ring_change is not None:
            try:
                self._on_ring_change(self.ring.remembered())
            except OSError as exc:  # the ring still works; only a restart forgets it
                log.warning("kv: cannot keep the ring's members in the data dir: %s", exc)
        due = self.ring.next_check_in(now)
        if due is not None and self._ring_timer is None:
            ref = self.actor_ref
            self._ring_timer = self.scheduler.call_later(
                due, lambda: tell_quietly(ref, RingCheck()))

    def new_request_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------ replica side

    def _peer_message(self, sender: str, message: object, done: Any) -> None:
        try:
            if isinstance(message, KV_MESSAGE_TYPES):
                self._serve_peer(sender, message)  # type: ignore[arg-type]
            else:
                self.stats.count("kv_replica_messages_dropped")
        finally:
            if done is not None:
                done()

    def _serve_peer(self, sender: str, message: KvMessage) -> None:
        ref = self.actor_ref
        match message:
            case ReplicaPut():
                try:
                    incoming = version.decode(message.obj)
                    stored = self._stored_key(message.key, message.hint_for)
                except ValueError as exc:
                    self.stats.count("kv_replica_messages_dropped")
                    if message.hint_for:
                        self.stats.count("kv_hint_messages_dropped")
                    log.debug("kv: malformed object from %s: %s", sender, exc)
                    self.peers.send(sender, ReplicaPutAck(message.request_id, False,
                                                          "malformed object"))
                    return
                rid = message.request_id

                # A hint is acknowledged, like any copy, only once it is committed.
                how = "hint" if stored != message.key.storage_key() else (
                    message.origin or "replica")
                self.storage.tell(Update(
                    stored, merge_into(incoming),
                    reply=lambda _b: tell_quietly(ref, ReplicaDone("put", sender, rid)),
                    on_error=lambda e: tell_quietly(ref, ReplicaDone("put", sender, rid,
                                                                     error=str(e) or "error")),
                    origin=Origin(how, sender)))
            case ReplicaGet():
                if self.proxy_get(sender, message):
                    return
                rid = message.request_id
                try:
                    stored = self._stored_key(message.key, message.hint_for)
                except ValueError:
                    self.stats.count("kv_replica_messages_dropped")
                    self.stats.count("kv_hint_messages_dropped")
                    self.peers.send(sender, ReplicaGetReply(rid, None, "malformed hint"))
                    return
                self.storage.tell(Read(
                    stored,
                    reply=lambda b: tell_quietly(ref, ReplicaDone("get", sender, rid, obj=b))))
            case ListKeys():
                rid = message.request_id
                prefix = ObjectKey(message.bucket, "").storage_key()
                self.storage.tell(StoreListKeys(
                    prefix, keep=live,
                    reply=lambda keys: tell_quietly(
                        ref, ReplicaDone("keys", sender, rid, keys=key_names(keys)))))
            case ForwardPut():
                self.coordinate_forwarded(sender, message)
            case ReplicaPutAck() if message.request_id >= AAE_REQUEST_BASE:
                pass  # an anti-entropy repair's: not waited on, never a client's W
            case ReplicaPutAck() if message.request_id >= HINT_REQUEST_BASE:
                if self.hints is not None:  # a hand-back's: the HintActor's request
                    tell_quietly(self.hints, PeerMessage(sender, "", message, None))
            case ReplicaPutAck():
                self.replica_acked(sender, message)
            case ReplicaGetReply():
                if not self.proxy_replied(sender, message):
                    self.replica_replied(sender, message)
            case ForwardReply():
                self.forward_replied(sender, message)
            case KeyList():
                self.peer_keys(sender, message)
            case _:
                self.stats.count("kv_replica_messages_dropped")
                log.debug("kv: unexpected message %r from %s", type(message).__name__, sender)

    def _stored_key(self, key: ObjectKey, hint_for: str) -> bytes:
        """Where a replica message's object lives here: its hint for ``hint_for`` (a
        fallback's), else the object itself (also when the hint names this node: the
        sender's view was stale and this is the copy). ValueError: a bad owner name."""
        if not hint_for or hint_for == self.name:
            return key.storage_key()
        return hint_key(hint_for, key.storage_key())

    def _replica_done(self, done: ReplicaDone) -> None:
        if done.kind == "put":
            self.peers.send(done.peer, ReplicaPutAck(done.request_id, not done.error,
                                                     done.error))
        elif done.kind == "get":
            self.peers.send(done.peer, ReplicaGetReply(done.request_id, done.obj, done.error))
        else:
            self.peers.send(done.peer, KeyList(done.request_id, done.keys, done.error))
