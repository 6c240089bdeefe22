"""Service: a part of a node that starts and stops itself (the KV store is one).

A service gets a ``NodeContext`` when the node starts — after the transport is bound
and the MembershipActor runs, before streams are served and the admin API opens — and
contributes what reaches it from outside: the wire message classes its actors handle
(``peer_routes``, registered in the node's RouteTable, so PeerActors hand those
messages to them) and HTTP routes (``http_routes``: hooks that add aiohttp routes to
the admin server's application before it starts serving). A service may also offer
``metric_families()`` (prometheus_client Metrics, served in ``/metrics``; optional, so
not part of the protocol). Services stop in the
reverse order they started, before the MembershipActor and the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pykka

    from dynago.actors.routing import PeerDirectory, RouteTable
    from dynago.actors.timers import Scheduler
    from dynago.clock import Clock
    from dynago.config import Config
    from dynago.core.tags import Tags
    from dynago.http.server import RouteHook
    from dynago.transport.base import Transport


@dataclass(frozen=True)
class NodeContext:
    """What a service may use of the node it runs in."""

    name: str
    """This node's name."""
    address: str
    """The address other nodes are told."""
    config: Config
    clock: Clock
    scheduler: Scheduler
    transport: Transport
    membership: pykka.ActorRef[Any]
    """The MembershipActor (subscribe to member events with actors.api.subscribe)."""
    routes: RouteTable
    """Wire message class -> handling actor (read-only for services: contribute
    through ``Service.peer_routes``)."""
    peers: PeerDirectory
    """Peer name -> PeerActor: send over a peer's stream with routing.send_to_peer."""
    tags: Tags = ()
    """This node's tags (a service may read its ``zone``)."""
    loop: asyncio.AbstractEventLoop | None = None
    """The transport's event loop when it runs one (gRPC): an actor whose traffic is
    the streams' may be hosted on it (actors/hosting.py). None otherwise."""


class Service(Protocol):
    """A part of a node with its own actors (see the module docstring for the order)."""

    @property
    def name(self) -> str:
        """A short name for logs and errors (e.g. ``"kv"``)."""
        ...

    def start(self, context: NodeContext) -> None:
        """Start this service's actors. Raises to abort the node's start (the node then
        calls ``stop``)."""
        ...

    def peer_routes(self) -> Mapping[type[Any], pykka.ActorRef[Any]]:
        """Wire message class -> this service's actor handling it (asked after
        ``start``). The actor gets each as a PeerMessage and calls its ``done``."""
        ...

    def http_routes(self) -> Sequence[RouteHook]:
        """Hooks adding this service's HTTP routes to the admin server's application
        (asked after ``start``; only when the node serves HTTP); may be empty."""
        ...

    def stats(self) -> Mapping[str, int]:
        """This service's counters, merged into the node's (/v1/stats, /metrics)."""
        ...

    def stop(self) -> None:
        """Stop this service's actors; safe to call after a failed or no ``start``."""
        ...
