"""KvService: the key-value store as one part of a node (dynago.service.Service).

On ``start`` it opens the storage engine (``KvConfig.data_dir``; in memory without one),
starts the StorageActor that owns it and the KvActor that drives requests, subscribes
the KvActor to membership (the member map, then every event), and offers:

* ``peer_routes``: every replica message class → the KvActor (PeerActors hand them on);
* ``http_routes``: Dynago's ``/kvstore`` and Riak's object API (dynago.http.kv_api);
* ``frontend``: the ``KvFrontend`` for in-process callers on an asyncio loop;
* ``stats``: the KV and storage counters.

``stop`` stops the KvActor, then the StorageActor, which commits what it still holds and
closes the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pykka

from dynago.actors import api
from dynago.actors.kv import KvActor
from dynago.actors.kv_frontend import ActorFrontend
from dynago.actors.kv_messages import GetKvStats, MemberChanged, MembersSeen
from dynago.actors.refs import tell_quietly
from dynago.actors.routing import PeerDirectory, send_to_peer
from dynago.actors.storage import StorageActor, storage_stats
from dynago.kv.config import KvConfig
from dynago.kv.members import ZONE_TAG, RingKeeper
from dynago.kv.messages import KV_MESSAGE_TYPES, KvMessage
from dynago.storage import Engine, open_engine

if TYPE_CHECKING:
    from dynago.core.messages import MemberEvent
    from dynago.http.server import RouteHook
    from dynago.service import NodeContext

log = logging.getLogger(__name__)

_ASK_S = 2.0


class DirectorySender:
    """The KvActor's PeerSender: a message goes to the peer's PeerActor (its stream)."""

    def __init__(self, peers: PeerDirectory) -> None:
        self._peers = peers

    def send(self, name: str, message: KvMessage) -> bool:
        return send_to_peer(self._peers, name, message)


class KvService:
    """The key-value store of one node."""

    name = "kv"

    def __init__(self, kv_config: KvConfig | None = None, *, zone: str | None = None) -> None:
        self.kv_config = kv_config or KvConfig()
        self._zone = zone
        self.storage: pykka.ActorRef[Any] | None = None
        self.kv: pykka.ActorRef[Any] | None = None
        self.ring: RingKeeper | None = None
        self.frontend: ActorFrontend | None = None
        self._membership: pykka.ActorRef[Any] | None = None
        self._token: int | None = None
        self._node_name = ""
        self._engine: Engine | None = None

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
        self.storage = StorageActor.start(engine)
        zone = self._zone if self._zone is not None else dict(context.tags).get(ZONE_TAG)
        self.ring = RingKeeper(context.name, partitions=config.ring_partitions,
                               n_val=config.n_val, grace_s=self.kv_config.ring_grace_s,
                               self_zone=zone)
        self.kv = kv = KvActor.start(
            name=context.name, config=config, kv_config=self.kv_config,
            storage=self.storage, peers=DirectorySender(context.peers), clock=context.clock,
            scheduler=context.scheduler, ring=self.ring)

        def on_event(event: MemberEvent) -> None:
            tell_quietly(kv, MemberChanged(event))

        self._membership = context.membership
        self._token, members = api.subscribe_with_snapshot(context.membership, on_event)
        kv.tell(MembersSeen(members))
        self.frontend = ActorFrontend(kv, self.ring, self.kv_config)

    def peer_routes(self) -> Mapping[type[Any], pykka.ActorRef[Any]]:
        assert self.kv is not None, "start() first"
        return dict.fromkeys(KV_MESSAGE_TYPES, self.kv)

    def http_routes(self) -> Sequence[RouteHook]:
        frontend = self.frontend
        assert frontend is not None, "start() first"
        kv_config = self.kv_config

        def hook(app: Any) -> None:
            from dynago.http.kv_api import add_kv_routes

            add_kv_routes(app, frontend, node_name=self._node_name,
                          max_key_bytes=kv_config.max_key_bytes,
                          max_value_bytes=kv_config.max_value_bytes,
                          stats=lambda: dict(self.stats()))

        return [hook]

    def stats(self) -> Mapping[str, int]:
        """KV request counters and the store's (blocks up to a few seconds: not for an
        actor's thread)."""
        out: dict[str, int] = {}
        if self.kv is not None:
            try:
                answer = self.kv.ask(GetKvStats(), timeout=_ASK_S)
                assert isinstance(answer, dict)
                out.update(answer)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        if self.storage is not None:
            try:
                stored = storage_stats(self.storage, timeout_s=_ASK_S)
            except (pykka.ActorDeadError, pykka.Timeout):
                return out
            out.update({"kv_store_keys": stored.keys, "kv_store_bytes": stored.size_bytes,
                        "kv_store_writes": stored.writes, "kv_store_commits": stored.commits,
                        "kv_store_fsyncs": stored.fsyncs, "kv_store_errors": stored.errors})
        if self.ring is not None:
            out["kv_ring_partitions_owned"] = len(self.ring.ring.partitions_of(self._node_name))
            out["kv_ring_members"] = len(self.ring.ring.members)
        return out

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
        for ref in (self.kv, self.storage):
            if ref is not None:
                try:
                    ref.stop(timeout=5.0)
                except (pykka.ActorDeadError, pykka.Timeout):
                    pass
        self.kv = self.storage = None
