"""In-memory transport: real streams between nodes of one process, no sockets.

For actor-level tests and for running several nodes in one process. It keeps the
contract of transport.base, with one difference in threads: callbacks run on the thread
that caused them (the sender's thread for ``on_message``, the dialler's for
``on_stream``). They still only ``tell``, so nothing blocks.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from collections.abc import Callable

from dynago.transport.base import OnDialFailed, OnStream, WireMessage
from dynago.transport.faults import DROP, Faults

_ids = itertools.count(1)


class MemoryStream:
    """One end of an in-memory stream; implements transport.base.Stream."""

    def __init__(
        self,
        *,
        outbound: bool,
        remote_name: str,
        remote_address: str,
        dialed_address: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self._id = next(_ids)
        self.faults = faults
        """The owning node's fault rules (applied to what this end sends and receives)."""
        self._dialed_address = dialed_address if outbound else None
        self._outbound = outbound
        self._remote_name = remote_name
        self._remote_address = remote_address
        self._lock = threading.Lock()
        self._peer: MemoryStream | None = None
        self._early: list[WireMessage] = []
        self._on_message: Callable[[WireMessage], None] | None = None
        self._on_closed: Callable[[str], None] | None = None
        self._closed: str | None = None
        self.sent: list[WireMessage] = []
        """Everything sent on this end, for tests to inspect."""

    @classmethod
    def pair(
        cls, dialler: tuple[str, str], acceptor: tuple[str, str]
    ) -> tuple[MemoryStream, MemoryStream]:
        """Two connected ends: (dialler's end, acceptor's end). Each tuple is (name, address)."""
        near = cls(outbound=True, remote_name=acceptor[0], remote_address=acceptor[1],
                   dialed_address=acceptor[1])
        far = cls(outbound=False, remote_name=dialler[0], remote_address=dialler[1])
        near._peer, far._peer = far, near
        return near, far

    @property
    def stream_id(self) -> int:
        return self._id

    @property
    def outbound(self) -> bool:
        return self._outbound

    @property
    def dialed_address(self) -> str | None:
        return self._dialed_address

    @property
    def remote_name(self) -> str:
        return self._remote_name

    @property
    def remote_address(self) -> str:
        return self._remote_address

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def bind(
        self, on_message: Callable[[WireMessage], None], on_closed: Callable[[str], None]
    ) -> None:
        with self._lock:
            self._on_message, self._on_closed = on_message, on_closed
            early, self._early = self._early, []
            closed = self._closed
        for message in early:
            on_message(message)
        if closed is not None:
            on_closed(closed)

    def send(self, message: WireMessage) -> None:
        with self._lock:
            if self._closed is not None:
                return
            self.sent.append(message)
            peer = self._peer
        if peer is None:
            return
        if self.faults is not None:
            verdict = self.faults.outbound(self._remote_name)
            if verdict == DROP:
                return
            if verdict > 0:
                timer = threading.Timer(verdict, peer.receive, args=(message,))
                timer.daemon = True
                timer.start()
                return
        peer.receive(message)

    def receive(self, message: WireMessage) -> None:
        """Deliver ``message`` to this end as if the remote node had sent it."""
        if self.faults is not None and self.faults.inbound(self._remote_name):
            return
        with self._lock:
            if self._closed is not None:
                return
            handler = self._on_message
            if handler is None:
                self._early.append(message)
                return
        handler(message)

    def processed(self) -> None:
        """No backpressure in memory: senders call straight into receivers."""

    def flush(self) -> concurrent.futures.Future[None]:
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        return done

    def close(self, reason: str = "closed by this node") -> None:
        peer = self._peer
        try:
            self._mark_closed(reason)
        finally:
            if peer is not None:
                peer._mark_closed("closed by peer")

    def _mark_closed(self, reason: str) -> bool:
        with self._lock:
            if self._closed is not None:
                return False
            self._closed = reason
            handler = self._on_closed
        if handler is not None:
            handler(reason)
        return True


class MemoryNetwork:
    """A set of in-memory transports that can dial each other by address."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, MemoryTransport] = {}

    def transport(self, faults: Faults | None = None) -> MemoryTransport:
        return MemoryTransport(self, faults)

    def _register(self, address: str, transport: MemoryTransport) -> None:
        with self._lock:
            if address in self._nodes:
                raise RuntimeError(f"{address} is in use")
            self._nodes[address] = transport

    def _unregister(self, address: str) -> None:
        with self._lock:
            self._nodes.pop(address, None)

    def _lookup(self, address: str) -> MemoryTransport | None:
        with self._lock:
            return self._nodes.get(address)


class MemoryTransport:
    """A transport attached to a MemoryNetwork."""

    def __init__(self, network: MemoryNetwork, faults: Faults | None = None) -> None:
        self._network = network
        self.faults = faults
        self._name = ""
        self._address = ""
        self._on_stream: OnStream | None = None
        self._streams: list[MemoryStream] = []
        self._lock = threading.Lock()

    def bind(self, address: str) -> str:
        self._network._register(address, self)
        self._address = address
        return address

    def serve(self, name: str, address: str, on_stream: OnStream) -> None:
        self._name = name
        self._on_stream = on_stream

    def dial(self, address: str, expected_name: str | None, on_failed: OnDialFailed) -> None:
        remote = self._network._lookup(address)
        if remote is None or remote._on_stream is None:
            on_failed(f"UNAVAILABLE: nothing listens on {address}")
            return
        if expected_name is not None and remote._name != expected_name:
            on_failed(f"{address} is now node {remote._name!r}, not {expected_name!r}")
            return
        near, far = MemoryStream.pair((self._name, self._address), (remote._name, address))
        near.faults, far.faults = self.faults, remote.faults
        with self._lock:
            self._streams.append(near)
        with remote._lock:
            remote._streams.append(far)
        assert self._on_stream is not None
        remote._on_stream(far)
        self._on_stream(near)

    def stop(self) -> None:
        self._network._unregister(self._address)
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()
