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
import itertools
import logging
import threading
from collections.abc import Awaitable
from typing import Any

import grpc
import grpc.aio

from dynago.config import MIN_COMPATIBLE_PROTOCOL_VERSION, PROTOCOL_VERSION, Config
from dynago.core.address import AddressError, parse_address
from dynago.transport import codec, grpc_handshake, grpc_options, handshake
from dynago.transport.base import OnDialFailed, OnStream, TransportError
from dynago.transport.faults import Faults
from dynago.transport.grpc_services import GrpcServices
from dynago.transport.grpc_stream import GrpcStream, TransportCounters
from dynago.transport.resolve import DnsSeeds, Resolver, is_dns_seed, resolve_all
from dynago.transport.tls import TlsFiles

log = logging.getLogger(__name__)

__all__ = ["GrpcStream", "GrpcTransport", "TlsFiles", "TransportCounters"]

SERVICE = "dynago.v1.Membership"
METHOD = f"/{SERVICE}/Stream"


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
            grpc_options.check_port_free(host, port)
        self._thread.start()
        port = int(self._submit(self._bind(address)).result(timeout=10))
        if ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"

    async def _bind(self, address: str) -> int:
        self._serving = asyncio.Event()
        server = grpc.aio.server(options=grpc_options.server_options(self.config))
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
            ring_partitions=self.config.ring_partitions,
            n_val=self.config.n_val,
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

    # ------------------------------------------------------------------ accepting

    async def _serve_stream(self, request_iterator: Any, context: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._track(task)
        assert self._serving is not None
        await self._serving.wait()
        hello = self._hello
        assert hello is not None
        remote = await grpc_handshake.accept(
            context, hello, self.keyring, self.config, self.counters, self._refuse_log)
        if remote is None:
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

    def forget_stream(self, stream: GrpcStream) -> None:
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
        except asyncio.InvalidStateError:
            # grpc.aio raises this from write() once the RPC has ended: the acceptor gave
            # up on the handshake (its connect timeout ran out on a loaded machine) between
            # our read of its Hello and our write of the Auth.
            reason = "stream closed by the acceptor during the handshake"
        except Exception as error:  # noqa: BLE001 - any failure ends only this dial
            reason = f"handshake failed: {type(error).__name__}: {error}"
        # Whatever happened, the dialler hears of it: a dial that ends without on_failed
        # leaves its peer actor waiting for a stream forever, never redialling.
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
        return grpc_options.channel(address, self.config, self.tls)
