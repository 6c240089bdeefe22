"""Node assembled from NodeOptions, with a Service that starts and stops itself.

In-process nodes over a MemoryNetwork: the service gets the node's context, its peer
routes are registered so that a message of its own class sent with ``send_to_peer``
from one node reaches the service's actor on the other, and it stops with the node.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from dynago.actors.messages import PeerMessage
from dynago.actors.routing import send_to_peer
from dynago.config import Config, ConfigError
from dynago.core.address import AddressError
from dynago.node import Node
from dynago.node_options import NodeOptions
from dynago.service import NodeContext
from dynago.transport.memory import MemoryNetwork

PORTS = itertools.count(18100)


@dataclass(frozen=True)
class Hello:
    """A service's own wire message (no membership message)."""

    text: str


class Inbox(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[str, Any]] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PeerMessage):
            self.received.append((message.sender, message.message))
            if message.done is not None:
                message.done()
        return None


class InboxService:
    """A Service: one actor handling Hello."""

    name = "inbox"

    def __init__(self) -> None:
        self.context: NodeContext | None = None
        self.actor: pykka.ActorRef[Any] | None = None
        self.stopped = False

    def start(self, context: NodeContext) -> None:
        self.context = context
        self.actor = Inbox.start()

    def peer_routes(self) -> dict[type[Any], pykka.ActorRef[Any]]:
        assert self.actor is not None
        return {Hello: self.actor}

    def http_routes(self) -> list[Any]:
        return []

    def stats(self) -> dict[str, int]:
        return {"inbox_service_started": int(self.actor is not None)}

    def stop(self) -> None:
        self.stopped = True
        if self.actor is not None:
            self.actor.stop()


def address() -> str:
    return f"127.0.0.1:{next(PORTS)}"


def test_node_options_refuse_bad_input_with_a_clear_error():
    with pytest.raises(AddressError):
        NodeOptions(bind="nowhere")
    with pytest.raises(AddressError):
        NodeOptions(bind="127.0.0.1:0", seeds=("bad seed",))
    with pytest.raises(ConfigError):
        NodeOptions(bind="127.0.0.1:0", config=Config.local(probe_timeout_s=-1.0))
    options = NodeOptions(bind="127.0.0.1:0", tags={"zone": "b", "rack": "1"})
    assert options.tags == (("rack", "1"), ("zone", "b"))  # canonical


def test_node_takes_options_or_their_fields_but_not_both():
    network = MemoryNetwork()
    options = NodeOptions(bind=address(), name="x")
    assert Node(options, transport=network.transport()).options == options
    by_keywords = Node(bind=options.bind, name="x", transport=network.transport())
    assert by_keywords.options == options
    with pytest.raises(TypeError, match="not both"):
        Node(options, name="y", transport=network.transport())


def test_node_service_gets_its_context_routes_and_stops_with_the_node(eventually):
    network = MemoryNetwork()
    service = InboxService()
    first = address()
    a = Node(NodeOptions(bind=first, name="a", config=Config.local(), seed=1),
             transport=network.transport(), services=[service]).start()
    b = Node(NodeOptions(bind=address(), name="b", seeds=(first,), config=Config.local(),
                         seed=2), transport=network.transport()).start()
    try:
        assert service.context is not None
        assert (service.context.name, service.context.membership) == ("a", a.membership)
        assert a.routes.route(Hello("x")) == service.actor
        assert a.service_http_routes() == []
        assert a.stats()["inbox_service_started"] == 1
        eventually(lambda: "a" in b.peers.names())

        assert send_to_peer(b.peers, "a", Hello("from b"))

        assert service.actor is not None
        eventually(lambda: service.actor.proxy().received.get(timeout=5.0)
                   == [("b", Hello("from b"))])
    finally:
        b.stop(leave=False)
        a.stop(leave=False)
    assert service.stopped
    assert a.routes.route(Hello("x")) is None
