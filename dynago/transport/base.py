"""The transport interface the actors use. Implementations: grpc_transport, memory.

Threads and ordering — the contract every implementation keeps:

* ``Transport.dial`` and every ``Stream`` method are thread-safe and never block on the
  network: they queue work and return at once.
* Callbacks (``on_stream``, ``on_failed``, a bound stream's ``on_message`` and
  ``on_closed``) run on a transport thread. They must not block: they only ``tell`` an
  actor. For one stream, messages are delivered in the order the peer sent them, then
  ``on_closed`` exactly once; messages that arrive before ``bind`` are held until it.
* Whoever handles a delivered message calls ``processed()`` once for it; the gRPC
  transport reads at most a small window ahead of that, so a peer cannot queue work
  faster than this node does it.
* Messages sent on one stream are written in order. A stream that closes drops what it
  had not written yet; ``flush()`` resolves once everything sent before it was written,
  or the stream closed.
* Only handshaken streams reach the actors: the peer's cluster name and protocol
  version were checked, and ``remote_name`` / ``remote_address`` come from its handshake.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Protocol, TypeAlias

from dynago.core.messages import CoreMessage
from dynago.kv.aae_messages import AaeMessage
from dynago.kv.handoff_messages import HandoffMessage
from dynago.kv.messages import KvMessage

WireMessage: TypeAlias = CoreMessage | KvMessage | HandoffMessage | AaeMessage
"""Everything one node sends another over a stream: the membership messages and the
key-value store's replica messages (transport/codec.py and kv_codec.py encode them).
Which actor handles each class on the receiving node is the route table's business
(actors.routing), not the transport's."""


class TransportError(RuntimeError):
    """The transport could not do what this node asked (e.g. bind its port)."""


class Stream(Protocol):
    """One open, handshaken, bidirectional stream to a remote node."""

    @property
    def stream_id(self) -> int: ...

    @property
    def outbound(self) -> bool:
        """True if this node dialled the stream, False if the remote node did."""
        ...

    @property
    def dialed_address(self) -> str | None:
        """The address this node dialled (outbound streams), else None."""
        ...

    @property
    def remote_name(self) -> str: ...

    @property
    def remote_address(self) -> str: ...

    def bind(
        self,
        on_message: Callable[[WireMessage], None],
        on_closed: Callable[[str], None],
    ) -> None:
        """Start delivering what arrives (and the close) to these callbacks."""
        ...

    def send(self, message: WireMessage) -> None:
        """Queue ``message`` for the stream's writer. Dropped if the stream is closed."""
        ...

    def flush(self) -> concurrent.futures.Future[None]:
        """A future done once all messages sent so far are written or the stream closed."""
        ...

    def close(self) -> None:
        """Close the stream; ``on_closed`` follows."""
        ...

    def processed(self) -> None:
        """One delivered message has been handled. A transport may stop reading when too
        many delivered messages are not handled yet (backpressure towards the peer)."""
        ...


OnStream = Callable[[Stream], None]
"""Called for every stream that completed its handshake, inbound or outbound."""

OnDialFailed = Callable[[str], None]
"""Called with a one-line reason when a dial did not produce a stream."""


class Transport(Protocol):
    """Opens and accepts streams between nodes.

    Life cycle (driven by the Node): ``bind`` once, ``serve`` once, then ``dial`` from
    any thread, and ``stop`` once at the end.
    """

    def bind(self, address: str) -> str:
        """Listen on ``address`` (port 0: any free port); returns the bound address.
        Raises TransportError if it cannot."""
        ...

    def serve(self, name: str, address: str, on_stream: OnStream) -> None:
        """Start accepting streams as node ``name`` (advertised at ``address``); every
        handshaken stream, inbound or outbound, goes to ``on_stream``."""
        ...

    def stop(self) -> None:
        """Close every stream and stop listening; further dials fail."""
        ...

    def dial(self, address: str, expected_name: str | None, on_failed: OnDialFailed) -> None:
        """Open a stream to ``address``. On success the stream reaches ``on_stream`` (given
        to the transport when it started serving); otherwise ``on_failed`` is called. If
        ``expected_name`` is set and the node there has another name, the dial fails."""
        ...
