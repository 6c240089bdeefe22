"""gRPC transport: one grpc.aio event loop thread per process, one bidi stream per peer.

Threads: every gRPC object lives on the loop thread ``dynago-transport``. Other threads
reach it only through ``loop.call_soon_threadsafe`` / ``run_coroutine_threadsafe``; the
loop reaches actors only through the callbacks of transport.base, which ``tell``. The
loop never waits on an actor.

Wire: the method ``/dynago.v1.Membership/Stream`` carries raw bytes, each an Envelope
(dynago/proto/membership.proto) decoded by transport.codec, so malformed bytes are
counted here and close only their own stream. The first message each way is a Hello;
a refusal (other cluster, incompatible version) is logged on both sides.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import errno
import itertools
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from dynago.config import MIN_COMPATIBLE_PROTOCOL_VERSION, PROTOCOL_VERSION, Config
from dynago.core.address import AddressError, parse_address
from dynago.core.messages import Ack, CoreMessage, Gossip, Nack, Ping, PingReq, StateSync
from dynago.transport import codec, handshake
from dynago.transport.base import OnDialFailed, OnStream, TransportError
from dynago.transport.faults import DROP, Faults
from dynago.transport.grpc_services import GrpcServices
from dynago.transport.resolve import DnsSeeds, Resolver, is_dns_seed, resolve_all

log = logging.getLogger(__name__)

SERVICE = "dynago.v1.Membership"
METHOD = f"/{SERVICE}/Stream"


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


@dataclass(frozen=True)
class TlsFiles:
    """Mutual TLS: this node's certificate chain and key, and the cluster's CA (PEM bytes).

    Both sides verify each other against ``ca``. The certificate a node presents must
    name ``server_name`` (a DNS subject alternative name; default ``dynago``), which
    every node checks instead of the address it dialled, so one name serves a cluster.
    """

    cert: bytes
    key: bytes
    ca: bytes
    server_name: str = "dynago"

    @classmethod
    def load(cls, cert: str, key: str, ca: str, server_name: str = "dynago") -> TlsFiles:
        """Read the three PEM files; raise TransportError naming one that cannot be read."""
        contents = []
        for label, path in (("certificate", cert), ("key", key), ("CA", ca)):
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError as error:
                raise TransportError(f"cannot read TLS {label} {path}: {error.strerror}") from None
            if b"-----BEGIN" not in data:
                raise TransportError(f"TLS {label} {path} is not a PEM file")
            contents.append(data)
        return cls(contents[0], contents[1], contents[2], server_name)


class GrpcStream:
    """A handshaken stream; implements transport.base.Stream."""

    def __init__(
        self,
        transport: GrpcTransport,
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
        self._early: list[CoreMessage] = []
        self._on_message: Callable[[CoreMessage], None] | None = None
        self._on_closed: Callable[[str], None] | None = None
        self._closed_reason: str | None = None
        self._flushes: list[concurrent.futures.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._inflight = 0
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
        self, on_message: Callable[[CoreMessage], None], on_closed: Callable[[str], None]
    ) -> None:
        self._threadsafe(self._bind, on_message, on_closed)

    def send(self, message: CoreMessage) -> None:
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
        self._threadsafe(self._enqueue, data, type(message).__name__)

    def flush(self) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._threadsafe(self._enqueue_flush, future)
        return future

    def close(self) -> None:
        self._threadsafe(self._close_now)

    def processed(self) -> None:
        self._threadsafe(self._processed_one)

    # -- loop side ------------------------------------------------------------

    def _threadsafe(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: the transport stopped, so is the stream

    def _bind(
        self, on_message: Callable[[CoreMessage], None], on_closed: Callable[[str], None]
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

    def _processed_one(self) -> None:
        self._inflight = max(0, self._inflight - 1)
        if self._inflight < INBOUND_WINDOW:
            self._window_open.set()

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
            if self._inflight >= INBOUND_WINDOW:
                self._window_open.clear()
                await self._window_open.wait()
            data = await self._read()
            if data is grpc.aio.EOF or data is None:
                return "closed by peer"
            counters.messages_in += 1
            counters.bytes_in += len(data)
            try:
                message = codec.decode(data, max_bytes)
            except codec.DecodeError as error:
                counters.malformed_messages += 1
                log.warning("malformed message from %s (%s): %s; closing its stream",
                            self.remote_name, self.remote_address, error)
                return f"malformed message: {error}"
            if not isinstance(message, Gossip | StateSync | Ping | Ack | PingReq | Nack):
                counters.malformed_messages += 1
                log.warning("unexpected %s from %s after the handshake; closing its stream",
                            type(message).__name__, self.remote_name)
                return "protocol violation"
            kind = type(message).__name__
            counters.by_kind_in[kind] = counters.by_kind_in.get(kind, 0) + 1
            counters.bytes_by_kind_in[kind] = counters.bytes_by_kind_in.get(kind, 0) + len(data)
            faults = self._transport.faults
            if faults is not None and faults.inbound(self.remote_name):
                continue
            self._inflight += 1
            if self._on_message is None:
                self._early.append(message)
            else:
                self._on_message(message)

    async def _write_loop(self) -> None:
        counters = self._transport.counters
        while True:
            data, extra = await self._queue.get()
            if data is _FLUSH:
                if extra in self._flushes:
                    self._flushes.remove(extra)
                extra.set_result(None)
                continue
            await self._write(data)
            counters.messages_out += 1
            counters.bytes_out += len(data)
            counters.by_kind_out[extra] = counters.by_kind_out.get(extra, 0) + 1
            counters.bytes_by_kind_out[extra] = (
                counters.bytes_by_kind_out.get(extra, 0) + len(data))

    def _finish(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        for future in self._flushes:
            if not future.done():
                future.set_result(None)
        self._flushes.clear()
        self._transport._forget_stream(self)
        if self._on_closed is not None:
            self._on_closed(reason)


def _check_port_free(host: str, port: int) -> None:
    """Raise TransportError if ``host:port`` cannot be bound for listening.

    gRPC would say so too, but only through its own log line on stderr; this check gives
    the one clear error. SO_REUSEADDR as gRPC sets it: a port held only by connections in
    TIME_WAIT (a node restarted on its old port) is free.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise TransportError(f"cannot bind {host}:{port}: {error.strerror or error}") from None
    for family, kind, proto, _name, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                reason = "address in use" if error.errno == errno.EADDRINUSE else (
                    error.strerror or str(error))
                raise TransportError(f"cannot bind {host}:{port}: {reason}") from None


class GrpcTransport:
    """Serves and dials node-to-node streams over gRPC (grpc.aio)."""

    def __init__(
        self,
        config: Config,
        faults: Faults | None = None,
        *,
        keyring: handshake.Keyring | None = None,
        tls: TlsFiles | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.config = config
        self._dns = DnsSeeds(resolver or resolve_all, config.connect_timeout_s)
        self._open_by_name: dict[str, int] = {}
        self._streamed_names: set[str] = set()
        self._services: GrpcServices | None = None
        self.keyring = keyring
        """Cluster keys: a peer must prove it holds one (None: no key check)."""
        self.tls = tls
        """Mutual TLS material (None: plaintext)."""
        self._refusals_logged: set[tuple[str, str, str]] = set()
        self.faults = faults
        """Fault injection rules, or None (the default: no faults, no checks)."""
        self.counters = TransportCounters()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name="dynago-transport", daemon=True
        )
        self._server: grpc.aio.Server | None = None
        self._hello: codec.Hello | None = None
        self._on_stream: OnStream | None = None
        self._serving: asyncio.Event | None = None
        self._streams: set[GrpcStream] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def bind(self, address: str) -> str:
        """Bind ``address`` (port 0: any free port) and return the bound ``host:port``.

        Raises TransportError if the address cannot be bound (in use, not local).
        """
        try:
            host, port = parse_address(address, allow_port_zero=True)
        except AddressError as error:
            raise TransportError(str(error)) from None
        if port:
            _check_port_free(host, port)
        self._thread.start()
        port = int(self._submit(self._bind(address)).result(timeout=10))
        if ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"

    async def _bind(self, address: str) -> int:
        self._serving = asyncio.Event()
        server = grpc.aio.server(options=self._server_options())
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Stream": grpc.stream_stream_rpc_method_handler(self._serve_stream)}
        )
        server.add_generic_rpc_handlers((handler,))
        self._services = GrpcServices(server)
        await self._services.set_serving(False)  # until serve(): the actors are not up
        try:
            if self.tls is None:
                port = int(server.add_insecure_port(address))
            else:
                credentials = grpc.ssl_server_credentials(
                    [(self.tls.key, self.tls.cert)], root_certificates=self.tls.ca,
                    require_client_auth=True)
                port = int(server.add_secure_port(address, credentials))
        except RuntimeError as error:
            raise TransportError(f"cannot bind {address}: {error}") from None
        if port == 0:
            raise TransportError(f"cannot bind {address}: address in use or not available")
        await server.start()
        self._server = server
        return port

    def serve(self, name: str, address: str, on_stream: OnStream) -> None:
        """Start accepting streams as node ``name`` advertised at ``address``."""
        self._hello = codec.Hello(
            name=name,
            address=address,
            cluster=self.config.cluster,
            protocol_version=PROTOCOL_VERSION,
            min_protocol_version=MIN_COMPATIBLE_PROTOCOL_VERSION,
        )
        self._on_stream = on_stream
        serving = self._serving
        assert serving is not None, "bind() first"
        self.loop.call_soon_threadsafe(serving.set)
        if self._services is not None:
            self._submit(self._services.set_serving(True)).result(timeout=10)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close every stream, stop the server and the loop thread."""
        if self._stopped or not self._thread.is_alive():
            self._stopped = True
            return
        self._stopped = True
        try:
            self._submit(self._shutdown()).result(timeout=timeout_s)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("transport did not shut down within %.1f s", timeout_s)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)

    async def _shutdown(self) -> None:
        if self._services is not None:
            await self._services.shutdown()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=0.5)
        if self._server is not None:
            await self._server.stop(grace=0.1)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    # ------------------------------------------------------------------ options

    def _message_options(self) -> list[tuple[str, Any]]:
        # gRPC's own limit sits well above ours, so that oversized messages up to 4x the
        # limit reach the codec, which refuses, logs and counts them. Beyond that gRPC
        # cuts the stream itself before dynago sees the message: the node is fine, but
        # the acceptor only sees the stream end (the dialler's side counts it).
        limit = 4 * self.config.max_message_bytes + 1024
        return [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]

    def _server_options(self) -> list[tuple[str, Any]]:
        keepalive_ms = int(self.config.keepalive_interval_s * 1000)
        return [
            *self._message_options(),
            ("grpc.so_reuseport", 0),  # a port in use must fail, not be shared
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", keepalive_ms // 2),
            ("grpc.http2.max_ping_strikes", 0),
        ]

    def _client_options(self) -> list[tuple[str, Any]]:
        keepalive_ms = int(self.config.keepalive_interval_s * 1000)
        return [
            *self._message_options(),
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.enable_retries", 0),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]

    # ------------------------------------------------------------------ accepting

    async def _serve_stream(self, request_iterator: Any, context: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._track(task)
        assert self._serving is not None
        await self._serving.wait()
        hello = self._hello
        assert hello is not None
        timeout = self.config.connect_timeout_s
        try:
            first = await asyncio.wait_for(context.read(), timeout)
            if first is grpc.aio.EOF:
                return
            remote = self._read_hello(first, context.peer())
            if remote is None:
                return
            reason = codec.check_hello(hello, remote)
            if reason is not None:
                self._refuse_log(remote, reason)
                await context.write(codec.encode(codec.Refusal(reason)))
                return
            own_nonce = handshake.new_nonce()
            proof = handshake.make_proof(self.keyring, "acceptor", hello.cluster, own_nonce,
                                         remote.nonce, hello.name, remote.name)
            await context.write(codec.encode(
                dataclasses.replace(hello, nonce=own_nonce, proof=proof)))
            second = await asyncio.wait_for(context.read(), timeout)
            if second is grpc.aio.EOF:
                return
            auth = codec.decode(second, self.config.max_message_bytes)
            if isinstance(auth, codec.Refusal):
                # The dialler could not check our proof (other key, or none).
                self._refuse_log(remote, f"it refused us: {auth.reason[:200]}")
                return
            if not isinstance(auth, codec.Auth):
                raise codec.DecodeError(f"expected Auth, got {type(auth).__name__}")
            reason = handshake.check_proof(self.keyring, auth.proof, "dialler", hello.cluster,
                                           remote.nonce, own_nonce, remote.name, hello.name)
            if reason is not None:
                self._refuse_log(remote, reason)
                await context.write(codec.encode(codec.Refusal(reason)))
                return
        except (TimeoutError, grpc.aio.AioRpcError):
            return
        except codec.DecodeError as error:
            self.counters.malformed_messages += 1
            log.warning("malformed handshake from %s: %s", context.peer(), error)
            return
        stream = GrpcStream(
            self,
            stream_id=next(self._ids),
            outbound=False,
            remote=remote,
            read=context.read,
            write=context.write,
            cancel=lambda: None,
        )
        await self._run_stream(stream)

    def _refuse_log(self, remote: codec.Hello, reason: str) -> None:
        """Count every refusal; log it once per (peer, reason), then at DEBUG."""
        self.counters.streams_refused += 1
        key = (remote.name[:256], remote.address[:262], reason)
        level = logging.DEBUG if key in self._refusals_logged else logging.WARNING
        if len(self._refusals_logged) < 10_000:
            self._refusals_logged.add(key)
        log.log(level, "refused stream with %r (%s): %s", remote.name[:64],
                remote.address[:64], reason)

    def _read_hello(self, data: bytes, origin: str) -> codec.Hello | None:
        try:
            message = codec.decode(data, self.config.max_message_bytes)
        except codec.DecodeError as error:
            self.counters.malformed_messages += 1
            log.warning("malformed handshake from %s: %s", origin, error)
            return None
        if not isinstance(message, codec.Hello):
            self.counters.malformed_messages += 1
            log.warning("stream from %s did not start with a handshake", origin)
            return None
        return message

    async def _run_stream(self, stream: GrpcStream) -> None:
        self._streams.add(stream)
        self.counters.streams_opened += 1
        name = stream.remote_name
        if self._open_by_name.get(name, 0) == 0 and name in self._streamed_names:
            self.counters.stream_reconnects += 1
        self._open_by_name[name] = self._open_by_name.get(name, 0) + 1
        if len(self._streamed_names) < 2 * self.config.max_members:
            self._streamed_names.add(name)
        log.debug("stream %d %s %s (%s) open", stream.stream_id,
                  "to" if stream.outbound else "from", stream.remote_name, stream.remote_address)
        assert self._on_stream is not None
        self._on_stream(stream)
        await stream.run()

    def _forget_stream(self, stream: GrpcStream) -> None:
        """``stream`` closed (loop thread)."""
        if stream not in self._streams:
            return
        self._streams.discard(stream)
        name = stream.remote_name
        left = self._open_by_name.get(name, 0) - 1
        if left > 0:
            self._open_by_name[name] = left
        else:
            self._open_by_name.pop(name, None)

    # ------------------------------------------------------------------ dialling

    def dial(self, address: str, expected_name: str | None, on_failed: OnDialFailed) -> None:
        """See transport.base.Transport.dial. Thread-safe, returns at once.

        ``address`` may be a DNS seed, ``dns:NAME:PORT``: see ``_dial_dns``.
        """
        if self._stopped:
            return

        def start() -> None:
            if is_dns_seed(address):
                self._track(self.loop.create_task(self._dial_dns(address, on_failed)))
            else:
                self._track(self.loop.create_task(
                    self._dial(address, expected_name, on_failed)))

        try:
            self.loop.call_soon_threadsafe(start)
        except RuntimeError:
            pass  # loop closed: stopping

    async def _dial_dns(self, seed: str, on_failed: OnDialFailed) -> None:
        """Dial the DNS seed ``dns:NAME:PORT``: see resolve.DnsSeeds.dial."""
        hello = self._hello
        connected = {s.remote_address for s in self._streams} | {
            s.target_address for s in self._streams if s.target_address}
        if hello is not None:
            connected.add(hello.address)

        def dial_one(address: str, failed: OnDialFailed) -> None:
            self._track(self.loop.create_task(
                self._dial(address, None, failed, dialed_address=seed)))

        if not await self._dns.dial(seed, connected, dial_one, on_failed):
            self.counters.dials_failed += 1

    async def _dial(
        self, address: str, expected_name: str | None, on_failed: OnDialFailed,
        *, dialed_address: str | None = None,
    ) -> None:
        hello = self._hello
        assert hello is not None, "serve() before dial()"
        channel = self._channel(address)
        call = channel.stream_stream(METHOD)()
        reason = None
        remote: codec.Hello | None = None
        timeout = self.config.connect_timeout_s
        try:
            own_nonce = handshake.new_nonce()
            await call.write(codec.encode(dataclasses.replace(hello, nonce=own_nonce)))
            first = await asyncio.wait_for(call.read(), timeout)
            if first is grpc.aio.EOF:
                reason = "stream closed during the handshake"
            else:
                message = codec.decode(first, self.config.max_message_bytes)
                if isinstance(message, codec.Refusal):
                    reason = f"refused by {address}, which says: {message.reason}"
                    self.counters.refused_by_peers += 1
                    key = ("", address, message.reason[:256])
                    level = logging.DEBUG if key in self._refusals_logged else logging.WARNING
                    if len(self._refusals_logged) < 10_000:
                        self._refusals_logged.add(key)
                    log.log(level, "node at %s refused our stream; in its words: %r",
                            address, message.reason[:256])
                elif not isinstance(message, codec.Hello):
                    reason = "peer did not answer with a handshake"
                else:
                    remote = message
                    reason = codec.check_hello(hello, remote)
                    if reason is None:
                        reason = handshake.check_proof(
                            self.keyring, remote.proof, "acceptor", hello.cluster,
                            remote.nonce, own_nonce, remote.name, hello.name)
                    if reason is not None:
                        self._refuse_log(remote, reason)
                        # Say why before hanging up, so that the acceptor logs it too.
                        await call.write(codec.encode(codec.Refusal(reason)))
                        await call.done_writing()
                    elif expected_name is not None and remote.name != expected_name:
                        reason = f"{address} is now node {remote.name!r}, not {expected_name!r}"
                    elif remote.name == hello.name:
                        reason = f"{address} is this node itself"
                    else:
                        proof = handshake.make_proof(
                            self.keyring, "dialler", hello.cluster, own_nonce, remote.nonce,
                            hello.name, remote.name)
                        await call.write(codec.encode(codec.Auth(proof)))
        except TimeoutError:
            reason = "handshake timed out"
        except asyncio.CancelledError:
            reason = "transport stopping"
        except grpc.aio.AioRpcError as error:
            reason = f"{error.code().name}: {error.details()}"
        except codec.DecodeError as error:
            self.counters.malformed_messages += 1
            reason = f"malformed handshake: {error}"
        if reason is not None or remote is None:
            self.counters.dials_failed += 1
            call.cancel()
            await channel.close()
            on_failed(reason or "handshake failed")
            return
        stream = GrpcStream(
            self,
            stream_id=next(self._ids),
            outbound=True,
            remote=remote,
            dialed_address=dialed_address or address,
            target_address=address,
            read=call.read,
            write=call.write,
            cancel=call.cancel,
        )
        try:
            await self._run_stream(stream)
        finally:
            await channel.close()

    def _channel(self, address: str) -> grpc.aio.Channel:
        options = self._client_options()
        if self.tls is None:
            return grpc.aio.insecure_channel(address, options=options)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.tls.ca, private_key=self.tls.key,
            certificate_chain=self.tls.cert)
        options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return grpc.aio.secure_channel(address, credentials, options=options)
