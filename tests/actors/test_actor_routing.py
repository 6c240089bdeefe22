"""Wire messages routed by class at the edge (actors.routing), with the real PeerActor.

A message of a class that is not a membership message, registered in the RouteTable
for another actor, reaches that actor from the peer's stream, and its ``done`` opens
the stream's window (``Stream.processed``); ``send_to_peer`` reaches a peer over its
existing stream through the PeerDirectory, without the MembershipActor.
Fixtures: conftest.py.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from dynago.actors.membership import MembershipActor
from dynago.actors.messages import Attach, PeerMessage, StreamOpened
from dynago.actors.peer import PeerActor
from dynago.actors.routing import (
    MEMBERSHIP_MESSAGES,
    PeerDirectory,
    RouteTable,
    send_to_peer,
)
from dynago.core import Gossip, Member

A = "127.0.0.1:7001"
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Replicate:
    """Stands in for a KV replica message: no membership message."""

    key: str


class FakeStream:
    """A handshaken inbound stream the test plays the remote end of (transport.base.Stream).

    ``deliver`` plays a message arriving from the peer; ``processed`` counts the calls
    that handled messages make (the gRPC transport's backpressure window).
    """

    def __init__(self, remote_name: str = "a", remote_address: str = A) -> None:
        self._lock = threading.Lock()
        self.remote_name, self.remote_address = remote_name, remote_address
        self.stream_id, self.outbound, self.dialed_address = 41, False, None
        self.sent: list[Any] = []
        self._processed = 0
        self._on_message: Callable[[Any], None] | None = None

    def bind(self, on_message: Callable[[Any], None], on_closed: Callable[[str], None]) -> None:
        self._on_message = on_message

    def deliver(self, message: Any) -> None:
        assert self._on_message is not None, "the actor has not bound the stream yet"
        self._on_message(message)

    def send(self, message: Any) -> None:
        with self._lock:
            self.sent.append(message)

    def processed(self) -> None:
        with self._lock:
            self._processed += 1

    @property
    def processed_count(self) -> int:
        with self._lock:
            return self._processed

    def flush(self) -> concurrent.futures.Future[None]:
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        return done

    def close(self) -> None:
        pass


class Handler(pykka.ThreadingActor):
    """A service's actor: keeps every PeerMessage and calls its ``done`` (or not)."""

    def __init__(self, *, call_done: bool = True) -> None:
        super().__init__()
        self.call_done = call_done
        self.received: list[PeerMessage] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PeerMessage):
            self.received.append(message)
            if self.call_done and message.done is not None:
                message.done()
        return None


@pytest.fixture
def attached(recorder, transport, scheduler, config):
    """A PeerActor for node ``a`` with a route table (membership -> the recorder) and a
    bound FakeStream; returns (peer ref, stream, route table)."""
    routes = RouteTable.to_membership(recorder)
    peer = PeerActor.start(local_name="me", peer_name="a", address=A, transport=transport,
                           membership=recorder, scheduler=scheduler, config=config, seed=1,
                           routes=routes)
    stream = FakeStream()
    peer.tell(Attach(stream))
    return peer, stream, routes


def test_routing_a_registered_message_reaches_its_actor_and_done_opens_the_window(
    attached, recorder, eventually
):
    peer, stream, routes = attached
    handler = Handler.start()
    routes.register((Replicate,), handler)
    eventually(lambda: stream._on_message is not None)

    stream.deliver(Replicate("k1"))
    stream.deliver(Gossip((Member("m1", "127.0.0.1:8001"),)))

    received = eventually(lambda: handler.proxy().received.get(timeout=TIMEOUT_S))
    assert [(m.sender, m.address, m.message) for m in received] == [("a", A, Replicate("k1"))]
    eventually(lambda: stream.processed_count == 1)  # the handler's done(); not the Gossip's
    (gossip,) = eventually(lambda: recorder.of_type(PeerMessage))
    assert gossip.message == Gossip((Member("m1", "127.0.0.1:8001"),))
    assert gossip.done is not None
    gossip.done()  # the membership stand-in handled it
    assert stream.processed_count == 2


def test_routing_a_message_nobody_handles_is_dropped_counted_and_done(
    attached, recorder, eventually
):
    peer, stream, _ = attached
    eventually(lambda: stream._on_message is not None)

    stream.deliver(Replicate("k1"))

    eventually(lambda: peer.proxy().unrouted.get(timeout=TIMEOUT_S) == 1)
    assert stream.processed_count == 1  # the window stays open
    assert recorder.of_type(PeerMessage) == []


def test_routing_a_handler_that_has_not_called_done_holds_the_window(attached, eventually):
    peer, stream, routes = attached
    handler = Handler.start(call_done=False)
    routes.register((Replicate,), handler)
    eventually(lambda: stream._on_message is not None)

    stream.deliver(Replicate("k1"))

    (message,) = eventually(lambda: handler.proxy().received.get(timeout=TIMEOUT_S))
    assert stream.processed_count == 0
    assert message.done is not None
    message.done()
    assert stream.processed_count == 1


def test_route_table_refuses_a_second_handler_for_one_class_and_changes_nothing():
    first, second = Handler.start(), Handler.start()
    routes = RouteTable.to_membership(first)

    with pytest.raises(ValueError, match="Gossip is routed to"):
        routes.register((Replicate, Gossip), second)

    assert routes.route(Replicate("k")) is None
    assert routes.route(Gossip(())) == first
    routes.register((Replicate,), second)
    routes.register((Replicate,), second)  # the same route again: no change
    assert routes.route(Replicate("k")) == second
    routes.unregister(second)
    assert routes.route(Replicate("k")) is None
    assert set(routes.routes()) == set(MEMBERSHIP_MESSAGES)


def test_send_to_peer_delivers_over_the_peers_stream(attached, eventually):
    peer, stream, _ = attached
    directory = PeerDirectory()
    directory.put("a", peer)
    eventually(lambda: stream._on_message is not None)

    assert send_to_peer(directory, "a", Replicate("k2")) is True

    eventually(lambda: stream.sent == [Replicate("k2")])


def test_send_to_peer_is_false_without_a_live_peer_actor(attached):
    peer, stream, _ = attached
    directory = PeerDirectory()
    assert send_to_peer(directory, "a", Replicate("k")) is False
    directory.put("a", peer)
    peer.stop()
    assert send_to_peer(directory, "a", Replicate("k")) is False
    assert stream.sent == []


def test_membership_keeps_the_peer_directory_and_routes_in_step(
    transport, clock, scheduler, config, eventually
):
    routes, directory = RouteTable(), PeerDirectory()
    membership = MembershipActor.start(
        name="me", address="127.0.0.1:7000", config=config, transport=transport,
        clock=clock, scheduler=scheduler, routes=routes, peers=directory)
    transport.serve("me", "127.0.0.1:7000", lambda s: membership.tell(StreamOpened(s)))
    assert {kind: routes.routes()[kind] for kind in MEMBERSHIP_MESSAGES} == dict.fromkeys(
        MEMBERSHIP_MESSAGES, membership)

    remote = transport.accept("a", A)  # node a dialled us: its peer actor starts

    eventually(lambda: directory.names() == ["a"])
    assert send_to_peer(directory, "a", Replicate("k3"))
    eventually(lambda: Replicate("k3") in remote.received)

    membership.stop()
    assert directory.names() == []
    assert routes.route(Gossip(())) is None
