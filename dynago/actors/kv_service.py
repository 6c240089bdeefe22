"""KvService: the key-value store as one part of a node (dynago.service.Service).

On ``start`` it opens the storage engine (``KvConfig.data_dir``; in memory without one),
starts the StorageActor that owns it, the HintActor that hands hints back
(dynago.actors.kv_hints) and the KvActor that drives requests, subscribes both to
membership (the member map, then every event), the AntiEntropyActor
(dynago.actors.kv_aae; it reads the KvActor's ring), and offers:

* ``peer_routes``: every replica message class → the KvActor (PeerActors hand them on),
  the anti-entropy messages (``AAE_MESSAGE_TYPES``) → the AntiEntropyActor;
* ``http_routes``: Dynago's ``/kvstore`` and Riak's object API (dynago.http.kv_api),
  ``GET /v1/ring`` (dynago.http.ring_api), ``GET /v1/kv/latency`` and
  ``GET /v1/kv/explain`` (dynago.http.kv_ui_api);
* ``frontend``: the ``KvFrontend`` for in-process callers on an asyncio loop;
* ``stats``: the KV and storage counters, flat (/v1/stats); ``snapshot``: the same with
  the latency histograms; ``metric_families``: those as Prometheus families (/metrics).

``stop`` stops the KvActor, then the StorageActor, which commits what it still holds and
closes the engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka

from dynago.actors import api
from dynago.actors.kv import KvActor
from dynago.actors.kv_aae import AntiEntropyActor
from dynago.actors.kv_aae_messages import GetAaeStats
from dynago.actors.kv_explain import ExplainActor, ExplainKey, GetExplainStats
from dynago.actors.kv_frontend import ActorFrontend
from dynago.actors.kv_handoff import HandoffActor
from dynago.actors.kv_handoff_messages import (
    GetHandoffSnapshot,
    HandOffForLeave,
    HandoffSnapshot,
    InboundView,
    RingChanged,
)
from dynago.actors.kv_hints import GetHintStats, HintActor
from dynago.actors.kv_messages import GetKvSnapshot, LocalHealth, MemberChanged, MembersSeen
from dynago.actors.refs import tell_if_alive, tell_quietly
from dynago.actors.routing import PeerDirectory, send_to_peer
from dynago.actors.storage import StorageActor, storage_stats
from dynago.actors.storage_messages import StorageStats
from dynago.kv.aae_index import AaeIndexer
from dynago.kv.aae_messages import AAE_MESSAGE_TYPES
from dynago.kv.config import KvConfig
from dynago.kv.explain import KvExplain, KvExplainReply
from dynago.kv.handoff_messages import HANDOFF_MESSAGE_TYPES
from dynago.kv.members import ZONE_TAG, RingKeeper
from dynago.kv.messages import KV_MESSAGE_TYPES
from dynago.kv.model import ObjectKey
from dynago.kv.ring import Ring
from dynago.kv.stats import KvSnapshot
from dynago.storage import Engine, open_engine
from dynago.storage.ring_file import RING_FILE, read_ring_file, write_ring_file

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from dynago.core.messages import MemberEvent
    from dynago.http.server import RouteHook
    from dynago.service import NodeContext
    from dynago.transport.base import WireMessage

log = logging.getLogger(__name__)

_ASK_S = 2.0


@dataclass(frozen=True, slots=True)
class KvServiceSnapshot:
    """One reading of a node's KV store. ``kv`` and ``store`` are None when their actor
    did not answer in time (or is stopped); the ring figures are this node's view."""

    kv: KvSnapshot | None
    store: StorageStats | None
    ring_partitions: int
    partitions_owned: int
    ring_members: int
    handoff: HandoffSnapshot | None = None
    """The HandoffActor's counters and pending transfers (None: it did not answer)."""

    def as_dict(self) -> dict[str, int]:
        """The flat counters of ``KvService.stats``."""
        out: dict[str, int] = self.kv.as_dict() if self.kv is not None else {}
        if self.handoff is not None:
            out.update(self.handoff.counters)
        stored = self.store
        if stored is not None:
            out.update({"kv_store_keys": stored.objects, "kv_store_bytes": stored.size_bytes,
                        "kv_store_writes": stored.writes, "kv_store_commits": stored.commits,
                        "kv_store_fsyncs": stored.fsyncs, "kv_store_errors": stored.errors})
        if self.ring_partitions:
            out["kv_ring_partitions_owned"] = self.partitions_owned
            out["kv_ring_members"] = self.ring_members
        return out


class DirectorySender:
    """The KV actors' sender: a wire message goes to the peer's PeerActor (its stream)."""

    def __init__(self, peers: PeerDirectory) -> None:
        self._peers = peers

    def send(self, name: str, message: WireMessage) -> bool:
        return send_to_peer(self._peers, name, message)


class KvService:
    """The key-value store of one node."""

    name = "kv"

    def __init__(self, kv_config: KvConfig | None = None, *, zone: str | None = None) -> None:
        self.kv_config = kv_config or KvConfig()
        self._zone = zone
        self.storage: pykka.ActorRef[Any] | None = None
        self.kv: pykka.ActorRef[Any] | None = None
        self.hints: pykka.ActorRef[Any] | None = None
        self.handoff: pykka.ActorRef[Any] | None = None
        self._inbound: InboundView | None = None
        self.ring: RingKeeper | None = None
        self.frontend: ActorFrontend | None = None
        self._membership: pykka.ActorRef[Any] | None = None
        self._token: int | None = None
        self._node_name = ""
        self._engine: Engine | None = None
        self.explainer: pykka.ActorRef[Any] | None = None
        self.aae: pykka.ActorRef[Any] | None = None

    def open_storage(self) -> None:
        """Open the storage engine now (StorageError with a plain line if the data dir
        cannot be used), so that a bad data dir stops a node before it joins anything.
        ``start`` does it otherwise."""
        if self._engine is None:
            self._engine = open_engine(self.kv_config.engine, self.kv_config.data_dir)

    def start(self, context: NodeContext) -> None:
        config = context.config
        self.kv_config.validate(config.max_message_bytes)
        self._node_name = context.name
        self.open_storage()
        engine, self._engine = self._engine, None
        assert engine is not None
        self.storage = StorageActor.start(engine, indexer=AaeIndexer(config.ring_partitions))
        zone = self._zone if self._zone is not None else dict(context.tags).get(ZONE_TAG)
        self.ring = RingKeeper(context.name, partitions=config.ring_partitions,
                               n_val=config.n_val, grace_s=self.kv_config.ring_grace_s,
                               self_zone=zone)
        ring_file = (Path(self.kv_config.data_dir) / RING_FILE
                     if self.kv_config.data_dir is not None else None)
        if ring_file is not None:
            self.ring.remember(read_ring_file(ring_file), context.clock.monotonic())
        peers = DirectorySender(context.peers)
        keeper = self.ring
        self.hints = hints = HintActor.start(
            name=context.name, kv_config=self.kv_config, storage=self.storage, peers=peers,
            clock=context.clock, scheduler=context.scheduler,
            partitions=config.ring_partitions, n_val=config.n_val, ring=lambda: keeper.ring)
        self._inbound = inbound = InboundView()
        self.handoff = handoff = HandoffActor.start(
            name=context.name, kv_config=self.kv_config, storage=self.storage,
            peers=peers, scheduler=context.scheduler,
            ring=keeper.ring, inbound=inbound, clock=context.clock)
        previous = [keeper.ring]

        def on_ring_change(members: list[tuple[str, str | None]]) -> None:
            # On the KvActor's thread, right after a rebuild: the handoff plans from it.
            old, new = previous[0], keeper.ring
            previous[0] = new
            gone = frozenset(m.name for m in old.members if keeper.status(m.name) == "failed")
            tell_quietly(handoff, RingChanged(old, new, gone))
            if ring_file is not None:
                write_ring_file(ring_file, members)

        self.kv = kv = KvActor.start(
            name=context.name, config=config, kv_config=self.kv_config,
            storage=self.storage, peers=peers, clock=context.clock,
            scheduler=context.scheduler, ring=self.ring, hints=hints,
            on_ring_change=on_ring_change, inbound=inbound, loop=context.loop)

        def on_event(event: MemberEvent) -> None:
            tell_quietly(kv, MemberChanged(event))
            tell_quietly(hints, MemberChanged(event))

        self.aae = AntiEntropyActor.start(
            name=context.name, kv_config=self.kv_config, storage=self.storage,
            peers=peers, clock=context.clock,
            scheduler=context.scheduler, ring=self.ring)
        self.explainer = ExplainActor.start(
            name=context.name, storage=self.storage, ring=self.ring,
            send=lambda node, message: peers.send(node, message),
            scheduler=context.scheduler, timeout_s=self.kv_config.request_timeout_s)

        self._membership = context.membership
        self._token, members = api.subscribe_with_snapshot(context.membership, on_event)
        kv.tell(MembersSeen(members))
        hints.tell(MembersSeen(members))
        api.watch_local_health(context.membership,
                               lambda score: tell_quietly(kv, LocalHealth(score)))
        self.frontend = ActorFrontend(kv, self.ring, self.kv_config)

    def peer_routes(self) -> Mapping[type[Any], pykka.ActorRef[Any]]:
        assert self.kv is not None, "start() first"
        assert self.explainer is not None and self.handoff is not None
        routes: dict[type[Any], pykka.ActorRef[Any]] = dict.fromkeys(KV_MESSAGE_TYPES, self.kv)
        routes.update(dict.fromkeys((KvExplain, KvExplainReply), self.explainer))
        routes.update(dict.fromkeys(HANDOFF_MESSAGE_TYPES, self.handoff))
        if self.aae is not None:
            routes.update(dict.fromkeys(AAE_MESSAGE_TYPES, self.aae))
        return routes

    async def explain(self, key: ObjectKey) -> dict[str, Any] | None:
        """``dynago kv explain``'s per-node document for ``key`` (dynago.kv.explain), or
        None when the ExplainActor did not answer in time (awaited on an asyncio loop)."""
        explainer = self.explainer
        if explainer is None:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()

        def settle(document: dict[str, Any]) -> None:
            if not future.done():  # the caller may have given up already
                future.set_result(document)

        def hand_on(document: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(settle, document)

        if not tell_if_alive(explainer, ExplainKey(key, hand_on)):
            return None
        try:
            return await asyncio.wait_for(future, self.kv_config.request_timeout_s + 2.0)
        except TimeoutError:
            return None

    def http_routes(self) -> Sequence[RouteHook]:
        frontend = self.frontend
        keeper = self.ring
        assert frontend is not None and keeper is not None, "start() first"
        kv_config = self.kv_config

        def hook(app: Any) -> None:
            from dynago.http.kv_api import add_kv_routes
            from dynago.http.kv_ui_api import add_kv_ui_routes
            from dynago.http.ring_api import add_ring_route

            add_kv_routes(app, frontend, node_name=self._node_name,
                          max_key_bytes=kv_config.max_key_bytes,
                          max_value_bytes=kv_config.max_value_bytes,
                          stats=lambda: dict(self.stats()))
            # RingKeeper.ring is replaced whole by the KvActor: reading it is safe here.
            add_ring_route(app, lambda: keeper.ring, self._ring_extras)
            add_kv_ui_routes(app, node_name=self._node_name, frontend=frontend,
                             ring=lambda: keeper.ring, kv_snapshot=lambda: self.snapshot().kv,
                             max_key_bytes=kv_config.max_key_bytes, explain=self.explain)

        return [hook]

    def snapshot(self) -> KvServiceSnapshot:
        """Every KV count, the latency histograms and the store's (blocks up to a few
        seconds: not for an actor's thread)."""
        kv: KvSnapshot | None = None
        if self.kv is not None:
            try:
                answer = self.kv.ask(GetKvSnapshot(), timeout=_ASK_S)
                assert isinstance(answer, KvSnapshot)
                kv = answer
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        if kv is not None and self.hints is not None:
            try:  # the HintActor's counters join the KV's (hints held, handed back, ...)
                counts = self.hints.ask(GetHintStats(), timeout=_ASK_S)
                assert isinstance(counts, dict)
                kv = dataclasses.replace(kv, counters={**kv.counters, **counts})
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        if kv is not None and self.aae is not None:
            try:  # the AntiEntropyActor's counters join the KV's, like the hints'
                counts = self.aae.ask(GetAaeStats(), timeout=_ASK_S)
                assert isinstance(counts, dict)
                kv = dataclasses.replace(kv, counters={**kv.counters, **counts})
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        store: StorageStats | None = None
        if self.storage is not None:
            try:
                store = storage_stats(self.storage, timeout_s=_ASK_S)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        handoff = self.handoff_snapshot()
        ring = self.ring.ring if self.ring is not None else None
        if ring is None:
            return KvServiceSnapshot(kv, store, 0, 0, 0, handoff)
        return KvServiceSnapshot(kv, store, ring.partitions,
                                 len(ring.partitions_of(self._node_name)), len(ring.members),
                                 handoff)

    async def _ring_extras(self, ring: Ring) -> dict[str, Any]:
        """``/v1/ring``'s fallbacks and this node's handoffs (awaited on the HTTP loop;
        the HandoffActor is asked from a worker thread)."""
        from dynago.http.ring_api import ring_fallbacks

        keeper = self.ring
        fallbacks = ring_fallbacks(ring, keeper.status) if keeper is not None else []
        snapshot = await asyncio.get_running_loop().run_in_executor(
            None, self.handoff_snapshot)
        handoffs: list[dict[str, Any]] = [
            {"partition": t.partition, "from": self._node_name, "to": t.target,
             "keys_acked": t.keys_acked, "state": t.state}
            for t in (snapshot.transfers if snapshot is not None else ()) if t.state != "done"]
        inbound = self._inbound.current if self._inbound is not None else {}
        handoffs.extend({"partition": p, "from": sender, "to": self._node_name,
                         "keys_acked": None, "state": "receiving"}
                        for p, senders in sorted(inbound.items()) for sender in sorted(senders))
        return {"fallbacks": fallbacks, "handoffs": handoffs}

    def handoff_snapshot(self) -> HandoffSnapshot | None:
        """The HandoffActor's counters and transfers (blocks like ``snapshot``)."""
        if self.handoff is None:
            return None
        try:
            answer = self.handoff.ask(GetHandoffSnapshot(), timeout=_ASK_S)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None
        assert isinstance(answer, HandoffSnapshot)
        return answer

    def prepare_leave(self) -> bool:
        """Hand this node's data to the ring without it, waiting at most
        ``KvConfig.handoff_leave_timeout_s``; True if every transfer was acknowledged.
        What was not is logged, left to anti-entropy (called before the node announces
        its leave, so that others still count this node a replica meanwhile)."""
        if self.handoff is None:
            return True
        finished = threading.Event()
        tell_quietly(self.handoff, HandOffForLeave(lambda _pending: finished.set()))
        timeout_s = self.kv_config.handoff_leave_timeout_s
        if finished.wait(timeout_s):
            log.info("kv: leaving: every partition this node held was handed off")
            return True
        snap = self.handoff_snapshot()
        left = [t for t in snap.transfers if t.state != "done"] if snap is not None else []
        log.warning(
            "kv: leaving: handoff not done after %.0f s; left to anti-entropy: %d transfers "
            "(partitions %s)", timeout_s, len(left),
            ", ".join(sorted({str(t.partition) for t in left}, key=int)) or "unknown")
        return False

    def stats(self) -> Mapping[str, int]:
        """KV request counters and the store's, flat (blocks like ``snapshot``)."""
        out = self.snapshot().as_dict()
        if self.explainer is not None:
            try:
                counts = self.explainer.ask(GetExplainStats(), timeout=_ASK_S)
                assert isinstance(counts, dict)
                out.update(counts)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        return out

    def metric_families(self) -> Iterator[Metric]:
        """The KV's Prometheus families (dynago.ops.kv_metrics), from one ``snapshot``."""
        from dynago.ops.kv_metrics import kv_families

        yield from kv_families(self.snapshot())

    def stop(self) -> None:
        if self._engine is not None:  # opened, never started
            self._engine.close()
            self._engine = None
        if self._membership is not None and self._token is not None:
            try:
                api.unsubscribe(self._membership, self._token, timeout_s=_ASK_S)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
            self._token = None
        for ref in (self.explainer, self.aae, self.handoff, self.kv, self.hints,
                    self.storage):
            if ref is not None:
                try:
                    ref.stop(timeout=5.0)
                except (pykka.ActorDeadError, pykka.Timeout):
                    pass
        self.kv = self.hints = self.storage = self.explainer = self.handoff = None
        self.aae = None
