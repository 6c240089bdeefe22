"""Routing at the edge: which actor handles each wire message, and how to reach a peer.

* ``RouteTable``: message class -> the actor that handles it. Every PeerActor is given
  the node's table when the MembershipActor starts it, and routes each message its
  stream delivers by the message's class, wrapped in a ``PeerMessage`` whose ``done``
  the handling actor calls once it handled it (that is the stream's backpressure:
  ``Stream.processed``). The MembershipActor registers the membership messages
  (``MEMBERSHIP_MESSAGES``) when it starts; a service registers its own (the KV actor
  its replica messages). A message of a class nobody registered is dropped, counted by
  its PeerActor, and ``done`` at once.
* ``PeerDirectory``: peer name -> its PeerActor, kept up to date by the MembershipActor
  as it starts and stops peer actors, so that other actors send over a peer's existing
  stream (``send_to_peer``) without going through the MembershipActor; and each peer's
  stream while it is up, so that a send is written to it without a thread hop.

Both are thread-safe: written by one actor, read from any.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, get_args

import pykka

from dynago.actors.messages import Deliver
from dynago.actors.refs import tell_if_alive
from dynago.core.messages import CoreMessage
from dynago.transport.base import Stream, WireMessage

MEMBERSHIP_MESSAGES: tuple[type[Any], ...] = get_args(CoreMessage)
"""The wire messages the MembershipActor handles (Gossip, StateSync, Ping, ...)."""


class RouteTable:
    """Message class -> the actor ref that handles messages of that class.

    Routes are looked up by exact class (no subclass matching: one dict lookup per
    message on the receive path). Reads never lock: a change replaces the mapping.
    """

    def __init__(self, routes: Mapping[type[Any], pykka.ActorRef[Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self._routes: Mapping[type[Any], pykka.ActorRef[Any]] = MappingProxyType(
            dict(routes or {}))

    @classmethod
    def to_membership(cls, membership: pykka.ActorRef[Any]) -> RouteTable:
        """A table that routes the membership messages to ``membership``."""
        return cls(dict.fromkeys(MEMBERSHIP_MESSAGES, membership))

    def register(self, kinds: Iterable[type[Any]], ref: pykka.ActorRef[Any]) -> None:
        """Route messages of each class in ``kinds`` to ``ref``.

        Raises ValueError, changing nothing, if one of them is routed to another actor
        already (two handlers for one message is a wiring bug). Registering the same
        route again changes nothing.
        """
        with self._lock:
            routes = dict(self._routes)
            for kind in kinds:
                held = routes.get(kind)
                if held is not None and held != ref:
                    raise ValueError(f"{kind.__name__} is routed to {held} already")
                routes[kind] = ref
            self._routes = MappingProxyType(routes)

    def unregister(self, ref: pykka.ActorRef[Any]) -> None:
        """Drop every route to ``ref`` (its actor stops)."""
        with self._lock:
            self._routes = MappingProxyType(
                {kind: held for kind, held in self._routes.items() if held != ref})

    def route(self, message: object) -> pykka.ActorRef[Any] | None:
        """The actor that handles ``message``, or None if nobody registered its class."""
        return self._routes.get(type(message))

    def routes(self) -> Mapping[type[Any], pykka.ActorRef[Any]]:
        """A read-only snapshot of the table."""
        return self._routes


class PeerDirectory:
    """Peer name -> the PeerActor that owns the stream to it, and that stream while it is
    up (thread-safe).

    The stream is published by its PeerActor (``publish_stream``) so that a sender writes
    to it directly (``send_to_peer``, the MembershipActor's sends) instead of through the
    PeerActor's mailbox: that thread hop cost as much as the write. The PeerActor still
    owns the stream: it alone attaches, replaces, closes and republishes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peers: dict[str, pykka.ActorRef[Any]] = {}
        self._streams: dict[str, tuple[pykka.ActorRef[Any], Stream]] = {}

    def publish_stream(self, name: str, ref: pykka.ActorRef[Any], stream: Stream | None) -> None:
        """PeerActor ``ref`` of ``name`` now has ``stream`` up (None: no stream)."""
        with self._lock:
            if stream is not None:
                self._streams[name] = (ref, stream)
            elif name in self._streams and self._streams[name][0] == ref:
                del self._streams[name]

    def stream(self, name: str) -> Stream | None:
        """The stream up to ``name``, if its PeerActor published one."""
        with self._lock:
            held = self._streams.get(name)
        return held[1] if held is not None else None

    def get(self, name: str) -> pykka.ActorRef[Any] | None:
        """The PeerActor for ``name``, or None if this node runs none."""
        with self._lock:
            return self._peers.get(name)

    def names(self) -> list[str]:
        """Names of the peers this node runs a PeerActor for, sorted."""
        with self._lock:
            return sorted(self._peers)

    def __len__(self) -> int:
        with self._lock:
            return len(self._peers)

    def put(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        """``ref`` is now the PeerActor for ``name`` (MembershipActor only)."""
        with self._lock:
            self._peers[name] = ref

    def discard(self, name: str, ref: pykka.ActorRef[Any] | None = None) -> None:
        """Forget the PeerActor for ``name`` (only if it is ``ref``, when given)."""
        with self._lock:
            if ref is None or self._peers.get(name) == ref:
                self._peers.pop(name, None)
                self._streams.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._peers.clear()
            self._streams.clear()


def send_to_peer(directory: PeerDirectory, name: str, message: WireMessage) -> bool:
    """Queue ``message`` for peer ``name`` on its PeerActor (its stream, or its bounded
    buffer while it redials).

    Returns False, sending nothing, when no live PeerActor exists for ``name`` (the
    MembershipActor starts one for every member it talks to; a caller that must reach
    a member it has not heard of yet waits for membership). Never blocks.
    """
    peer = directory.get(name)
    if peer is None:
        return False
    return deliver(directory, name, peer, message)


def deliver(directory: PeerDirectory, name: str, peer: pykka.ActorRef[Any],
            message: WireMessage) -> bool:
    """Write ``message`` to the stream up to ``name`` if there is one, else hand it to its
    PeerActor ``peer`` (which buffers it and dials). False if ``peer`` has stopped.

    Messages written directly may overtake ones still in the PeerActor's mailbox when a
    stream has just come up; each message stands alone (as over UDP in SWIM), so nothing
    relies on that order.
    """
    stream = directory.stream(name)
    if stream is not None:
        stream.send(message)
        return True
    return tell_if_alive(peer, Deliver(message))
