"""HttpServer: one asyncio loop on one thread (``dynago-http``) serving an aiohttp
Application, for the admin API and the services' routes on the same port.

Threads: the loop thread, and a small bounded pool (``dynago-http-ask``, ``ask_workers``
threads) for handler work that has to block (a pykka ``ask`` with a timeout): a handler
``await server.blocking(fn, *args)`` and the loop never waits. Everything else a handler
does runs on the loop, so many concurrent clients cost no thread each.

Life: the constructor binds and listens (so that a port in use raises ``OSError`` there,
before anything else starts; port 0 gives a free port, read back into ``address``);
``add_routes`` hooks run before ``start``; ``start`` serves; ``stop`` runs the
``on_stop`` coroutines (event streams end with a last word), closes every connection
within ``shutdown_timeout_s`` and joins the thread. aiohttp is imported only by this
package's server modules, so a node without ``--http`` never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dynago.core.address import format_address, parse_address

log = logging.getLogger(__name__)

T = TypeVar("T")

RouteHook = Callable[[web.Application], None]
"""Adds routes (and, if it must, middlewares) to the application before it starts."""

MIN_CLIENT_MAX_SIZE = 2 << 20
"""Smallest request body limit the server is built with (2 MiB): the key-value routes take
values up to ~1 MiB plus headers; aiohttp's own default (1 MiB) would refuse them."""

LISTEN_BACKLOG = 128
"""Connections the kernel queues before ``accept``: many clients connect at once."""


class _DebugAccessLog(AbstractAccessLogger):
    """One debug line per request (aiohttp's own access log is at INFO: far too loud)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug("http %s - %s %s %d %.1f ms", request.remote, request.method,
                          request.path_qs, response.status, time * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


def listen(bind: str) -> tuple[socket.socket, str]:
    """A listening socket on ``bind`` (``HOST:PORT``, ``[V6]:PORT``; port 0: any free
    port) and the address it is bound to. Raises AddressError (a ValueError) for a bad
    address and OSError when the port cannot be bound."""
    host, port = parse_address(bind, allow_port_zero=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As http.server did: a restarted node can bind again at once (TIME_WAIT), while a
        # port that another process listens on still fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, format_address(host, int(sock.getsockname()[1]))


class HttpServer:
    """An aiohttp Application served on ``bind`` by a loop on its own thread.

    Args:
        bind: ``HOST:PORT`` to listen on (bound by the constructor).
        client_max_size: largest request body a caller needs; the application takes
            ``max(MIN_CLIENT_MAX_SIZE, client_max_size)``.
        middlewares: aiohttp middlewares, outermost first.
        ask_workers: threads of the pool for blocking work (``blocking``).
        shutdown_timeout_s: how long ``stop`` lets open requests finish before closing
            their connections.
    """

    def __init__(
        self,
        bind: str,
        *,
        client_max_size: int | None = None,
        middlewares: Iterable[Any] = (),
        ask_workers: int = 8,
        shutdown_timeout_s: float = 1.0,
    ) -> None:
        self._socket, self.address = listen(bind)
        self.app = web.Application(
            client_max_size=max(MIN_CLIENT_MAX_SIZE, client_max_size or 0),
            middlewares=list(middlewares),
        )
        self.on_stop: list[Callable[[], Awaitable[None]]] = []
        """Coroutines run on the loop first thing in ``stop``, before connections close."""
        self._shutdown_timeout_s = shutdown_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=ask_workers,
                                        thread_name_prefix="dynago-http-ask")
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="dynago-http", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped = False

    def add_routes(self, hook: RouteHook) -> None:
        """Let ``hook`` add its routes. Only before ``start``: a running app is frozen."""
        if self._thread.is_alive() or self._stopped:
            raise RuntimeError("routes are added before start()")
        hook(self.app)

    def add_all(self, hooks: Sequence[RouteHook]) -> None:
        for hook in hooks:
            self.add_routes(hook)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the bounded pool (it may block: a pykka ask), awaited."""
        return await self.loop.run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------------ life

    def start(self, timeout_s: float = 10.0) -> None:
        """Serve; returns once the server accepts connections (or raises what stopped it)."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("the HTTP server did not start")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            try:
                self.loop.run_until_complete(self._setup())
            except BaseException as error:  # noqa: BLE001 - handed to start()'s caller
                self._error = error
                return
            finally:
                self._ready.set()
            self.loop.run_forever()
        finally:
            self._close_loop()

    async def _setup(self) -> None:
        runner = web.AppRunner(self.app, handle_signals=False,
                               access_log_class=_DebugAccessLog,
                               access_log=logging.getLogger("dynago.http.access"),
                               shutdown_timeout=self._shutdown_timeout_s)
        await runner.setup()
        self._runner = runner
        # SockSite on the socket bound by the constructor: the bind (and its error) stays
        # synchronous and before start, and port 0 is already known.
        await web.SockSite(runner, self._socket).start()

    def _close_loop(self) -> None:
        pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Run ``on_stop``, close the server and every connection, join the thread; bounded
        by about ``timeout_s``. Safe to call twice, and without ``start``."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.ident is None:  # never started: the loop never ran
            self.loop.close()
        elif self._error is None:
            # Not ``loop.is_running()``: start() may return just before run_forever begins;
            # what is scheduled now runs as soon as it does.
            try:
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
                future.result(timeout_s)
            except Exception:  # noqa: BLE001 - stopping regardless; say why in the log
                log.warning("admin API: unclean shutdown", exc_info=True)
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:  # the loop already closed
                pass
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
        self._socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self) -> None:
        for coroutine in self.on_stop:
            try:
                await coroutine()
            except Exception:  # noqa: BLE001 - the rest of the shutdown must still run
                log.exception("admin API: stop hook failed")
        if self._runner is not None:
            await self._runner.cleanup()
