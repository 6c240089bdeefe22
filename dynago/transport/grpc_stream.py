"""One handshaken node-to-node gRPC stream (GrpcStream) and the transport's traffic
counters. Everything here runs on the transport's loop thread, except the methods of the
transport.base.Stream contract (send, flush, close, processed, bind), which any thread
may call: they only schedule work on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import grpc
import grpc.aio

from dynago.transport import codec
from dynago.transport.base import WireMessage
from dynago.transport.batch_codec import (
    BATCH_OVERHEAD_BYTES,
    BATCH_PROTOCOL_VERSION,
    MAX_BATCH_MESSAGES,
    PART_OVERHEAD_BYTES,
    encode_batch,
    is_batch,
    split_batch,
)
from dynago.transport.faults import DROP

if TYPE_CHECKING:
    from dynago.config import Config
    from dynago.transport.faults import Faults

log = logging.getLogger("dynago.transport.grpc_transport")  # one logger for the transport


@dataclass
class TransportCounters:
    """Traffic counters; written on the loop thread only."""

    streams_opened: int = 0
    streams_refused: int = 0
    """Streams this node refused (other cluster, version, key)."""
    refused_by_peers: int = 0
    """Dials of this node that the peer refused."""
    dials_failed: int = 0
    malformed_messages: int = 0
    oversized_dropped: int = 0
    outbound_dropped: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    batches_out: int = 0
    """Writes that carried several messages (batch envelopes; counted in messages_out too)."""
    batches_in: int = 0
    """Batch envelopes read (their messages are counted in messages_in one by one)."""
    writes_out: int = 0
    """gRPC writes (one message or one batch each): messages_out / writes_out is how
    many messages a write carries."""
    reads_in: int = 0
    """gRPC reads that returned a message or a batch."""
    stream_reconnects: int = 0
    """Streams opened to a node this node had a stream to before, after every earlier
    stream to it had closed (the peer's stream was lost and came back)."""
    by_kind_out: dict[str, int] = field(default_factory=dict)
    """Messages written, by kind (Gossip, StateSync, Ping, Ack, PingReq, Nack)."""
    by_kind_in: dict[str, int] = field(default_factory=dict)
    """Messages read and decoded, by kind."""
    bytes_by_kind_out: dict[str, int] = field(default_factory=dict)
    bytes_by_kind_in: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        """Flat counters, names prefixed ``transport_``."""
        flat = {f"transport_{k}": v for k, v in vars(self).items() if isinstance(v, int)}
        for label, table in (("messages_out", self.by_kind_out),
                             ("messages_in", self.by_kind_in),
                             ("bytes_out", self.bytes_by_kind_out),
                             ("bytes_in", self.bytes_by_kind_in)):
            for kind, count in dict(table).items():  # a copy: the loop thread writes
                flat[f"transport_{label}_{kind}"] = count
        return flat


_FLUSH = object()

INBOUND_WINDOW = 4
"""Messages a stream delivers ahead of what its consumer has handled (``processed``).
The reader stops reading beyond it, so HTTP/2 flow control pushes back on a peer that
sends faster than this node applies what it sends."""


class StreamHost(Protocol):
    """What a GrpcStream needs of the transport that runs it (GrpcTransport), so that
    this module does not import the transport."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def config(self) -> Config: ...

    @property
    def counters(self) -> TransportCounters: ...

    @property
    def faults(self) -> Faults | None: ...

    def forget_stream(self, stream: GrpcStream) -> None:
        """``stream`` closed (loop thread)."""
        ...


class GrpcStream:
    """A handshaken stream; implements transport.base.Stream."""

    def __init__(
        self,
        transport: StreamHost,
        *,
        stream_id: int,
        outbound: bool,
        remote: codec.Hello,
        dialed_address: str | None = None,
        target_address: str | None = None,
        read: Callable[[], Awaitable[Any]],
        write: Callable[[bytes], Awaitable[None]],
        cancel: Callable[[], None],
    ) -> None:
        self._transport = transport
        self._loop = transport.loop
        self._id = stream_id
        self._outbound = outbound
        self._dialed_address = dialed_address
        self.target_address = target_address
        """The concrete address this node dialled (outbound streams; differs from
        ``dialed_address`` for a DNS seed), else None."""
        self._remote = remote
        self._read = read
        self._write = write
        self._cancel = cancel
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._early: list[WireMessage] = []
        self._on_message: Callable[[WireMessage], None] | None = None
        self._on_closed: Callable[[str], None] | None = None
        self._closed_reason: str | None = None
        self._flushes: list[concurrent.futures.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._inflight = 0
        """Messages delivered and not yet ``processed`` (guarded by ``_window_lock``)."""
        self._reader_waiting = False
        """The reader waits for the window to open (guarded by ``_window_lock``)."""
        self._window_lock = threading.Lock()
        self._window_open = asyncio.Event()
        self._window_open.set()

    # -- transport.base.Stream (thread-safe) ---------------------------------

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
        return self._remote.name

    @property
    def remote_address(self) -> str:
        return self._remote.address

    def bind(
        self, on_message: Callable[[WireMessage], None], on_closed: Callable[[str], None]
    ) -> None:
        self._threadsafe(self._bind, on_message, on_closed)

    def send(self, message: WireMessage) -> None:
        data = codec.encode(message)
        if len(data) > self._transport.config.max_message_bytes:
            self._transport.counters.oversized_dropped += 1
            log.error("not sending a %d-byte %s to %s: larger than max_message_bytes",
                      len(data), type(message).__name__, self.remote_name)
            return
        faults = self._transport.faults
        if faults is not None:
            verdict = faults.outbound(self.remote_name)
            if verdict == DROP:
                return
            if verdict > 0:
                self._threadsafe(self._enqueue_later, verdict, data, type(message).__name__)
                return
        if asyncio.events._get_running_loop() is self._loop:
            # On the loop's thread (an actor hosted on it, actors/hosting.py): queue it
            # now, no wake-up of the loop.
            self._enqueue(data, type(message).__name__)
        else:
            self._threadsafe(self._enqueue, data, type(message).__name__)

    def flush(self) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._threadsafe(self._enqueue_flush, future)
        return future

    def close(self) -> None:
        self._threadsafe(self._close_now)

    def processed(self) -> None:
        # Counted here, on the caller's thread: the loop is woken only when its reader
        # waits for the window, not once per message.
        with self._window_lock:
            self._inflight = max(0, self._inflight - 1)
            wake = self._reader_waiting and self._inflight < INBOUND_WINDOW
            if wake:
                self._reader_waiting = False
        if wake:
            self._threadsafe(self._window_open.set)

    # -- loop side ------------------------------------------------------------

    def _threadsafe(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            if asyncio.events._get_running_loop() is self._loop:
                self._loop.call_soon(fn, *args)
            else:
                self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: the transport stopped, so is the stream

    def _bind(
        self, on_message: Callable[[WireMessage], None], on_closed: Callable[[str], None]
    ) -> None:
        self._on_message, self._on_closed = on_message, on_closed
        early, self._early = self._early, []
        for message in early:
            on_message(message)
        if self._closed_reason is not None:
            on_closed(self._closed_reason)

    def _enqueue_later(self, delay_s: float, data: bytes, kind: str) -> None:
        self._loop.call_later(delay_s, self._enqueue, data, kind)

    def _enqueue(self, data: bytes, kind: str) -> None:
        if self._closed_reason is not None:
            return
        if self._queue.qsize() >= self._transport.config.outbound_buffer_size:
            # The peer does not read (paused, or a hung connection): drop, do not hoard.
            self._transport.counters.outbound_dropped += 1
            return
        self._queue.put_nowait((data, kind))

    def _enqueue_flush(self, future: concurrent.futures.Future[None]) -> None:
        if self._closed_reason is not None:
            future.set_result(None)
        else:
            self._flushes.append(future)
            self._queue.put_nowait((_FLUSH, future))

    def _close_now(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(self) -> None:
        """Read until the stream ends; a writer task drains the send queue meanwhile."""
        self._task = asyncio.current_task()
        writer = asyncio.create_task(self._write_loop())
        reason = "closed"
        try:
            reason = await self._read_loop()
        except asyncio.CancelledError:
            reason = "closed by this node"
        except grpc.aio.AioRpcError as error:
            reason = f"{error.code().name}: {error.details()}"
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                # gRPC refused a message over its own size limit before we saw it.
                self._transport.counters.malformed_messages += 1
                log.warning("oversized message from %s (%s): %s; stream closed",
                            self.remote_name, self.remote_address, error.details())
        except Exception as error:  # noqa: BLE001 - any failure ends only this stream
            reason = f"{type(error).__name__}: {error}"
        finally:
            writer.cancel()
            self._cancel()
            self._finish(reason)

    async def _read_loop(self) -> str:
        counters = self._transport.counters
        max_bytes = self._transport.config.max_message_bytes
        while True:
            with self._window_lock:
                full = self._inflight >= INBOUND_WINDOW
                if full:
                    self._reader_waiting = True
                    self._window_open.clear()
            if full:
                await self._window_open.wait()
            data = await self._read()
            if data is grpc.aio.EOF or data is None:
                return "closed by peer"
            counters.reads_in += 1
            if is_batch(data):
                try:
                    parts = split_batch(data, max_bytes)
                except codec.DecodeError as error:
                    counters.malformed_messages += 1
                    log.warning("malformed batch from %s (%s): %s; closing its stream",
                                self.remote_name, self.remote_address, error)
                    return f"malformed message: {error}"
                counters.batches_in += 1
                for part in parts:
                    problem = self._accept(part)
                    if problem is not None:
                        return problem
            else:
                problem = self._accept(data)
                if problem is not None:
                    return problem

    def _accept(self, data: bytes) -> str | None:
        """Count, decode and deliver one received Envelope; why the stream must close, or
        None."""
        counters = self._transport.counters
        counters.messages_in += 1
        counters.bytes_in += len(data)
        try:
            message = codec.decode(data, self._transport.config.max_message_bytes)
        except codec.DecodeError as error:
            counters.malformed_messages += 1
            log.warning("malformed message from %s (%s): %s; closing its stream",
                        self.remote_name, self.remote_address, error)
            return f"malformed message: {error}"
        if isinstance(message, codec.Hello | codec.Refusal | codec.Auth):
            # Handshake messages come first or not at all; everything else is routed
            # by class at the PeerActor (membership, key-value replica messages).
            counters.malformed_messages += 1
            log.warning("unexpected %s from %s after the handshake; closing its stream",
                        type(message).__name__, self.remote_name)
            return "protocol violation"
        kind = type(message).__name__
        counters.by_kind_in[kind] = counters.by_kind_in.get(kind, 0) + 1
        counters.bytes_by_kind_in[kind] = counters.bytes_by_kind_in.get(kind, 0) + len(data)
        faults = self._transport.faults
        if faults is not None and faults.inbound(self.remote_name):
            return None
        with self._window_lock:
            self._inflight += 1
        if self._on_message is None:
            self._early.append(message)
        else:
            self._on_message(message)
        return None

    async def _write_loop(self) -> None:
        counters = self._transport.counters
        queue = self._queue
        batching = self._remote.protocol_version >= BATCH_PROTOCOL_VERSION
        limit = self._transport.config.max_message_bytes - BATCH_OVERHEAD_BYTES
        held: Any = None
        while True:
            item = held if held is not None else await queue.get()
            held = None
            data, extra = item
            if data is _FLUSH:
                if extra in self._flushes:
                    self._flushes.remove(extra)
                extra.set_result(None)
                continue
            group = [item]
            # What is queued behind it goes in the same write (never waiting for more:
            # a batch adds no latency). A flush marker, or a message that would make the
            # batch too big, waits for the next turn.
            size = len(data) + PART_OVERHEAD_BYTES
            while batching and len(group) < MAX_BATCH_MESSAGES and not queue.empty():
                following = queue.get_nowait()
                if following[0] is _FLUSH or size + len(following[0]) + PART_OVERHEAD_BYTES > limit:
                    held = following
                    break
                group.append(following)
                size += len(following[0]) + PART_OVERHEAD_BYTES
            counters.writes_out += 1
            if len(group) == 1:
                await self._write(data)
            else:
                await self._write(encode_batch([part for part, _kind in group]))
                counters.batches_out += 1
            for part, kind in group:
                counters.messages_out += 1
                counters.bytes_out += len(part)
                counters.by_kind_out[kind] = counters.by_kind_out.get(kind, 0) + 1
                counters.bytes_by_kind_out[kind] = (
                    counters.bytes_by_kind_out.get(kind, 0) + len(part))

    def _finish(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        for future in self._flushes:
            if not future.done():
                future.set_result(None)
        self._flushes.clear()
        self._transport.forget_stream(self)
        if self._on_closed is not None:
            self._on_closed(reason)
