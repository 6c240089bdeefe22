"""The HTTP server under the admin API (dynago.http.server, on aiohttp): many concurrent
clients on one loop thread, routes that services add through the hook, the request size
limit, and the server's life (port 0, a port in use, a bounded stop).

Real HTTP on 127.0.0.1 (port 0); in-process nodes over a MemoryNetwork. Clients are raw
sockets driven from the test thread, so that the thread count measured is the server's.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from aiohttp import web
from cluster_support import http_status

from dynago.actors import api
from dynago.config import Config
from dynago.core import Member
from dynago.http.admin import AdminServer
from dynago.http.auth import TokenCheck
from dynago.launch import LaunchError, wait_until
from dynago.node import Node
from dynago.transport.memory import MemoryNetwork

TIMEOUT_S = 20.0
CLIENTS = 200
PORT = iter(range(17600, 17700))
MIB = 1 << 20


@pytest.fixture
def node() -> Iterator[Callable[..., Node]]:
    """Start an in-process node (on a MemoryNetwork); stopped at teardown."""
    started: list[Node] = []

    def start(**kwargs: Any) -> Node:
        started.append(Node(bind=f"127.0.0.1:{next(PORT)}", name=f"n{len(started)}",
                            config=Config.local(), transport=MemoryNetwork().transport(),
                            **kwargs))
        return started[-1].start()

    yield start
    for each in started:
        each.stop(leave=False)
    pykka.ActorRegistry.stop_all(timeout=10)


@pytest.fixture
def servers() -> Iterator[list[AdminServer]]:
    """AdminServers a test builds itself; stopped at teardown."""
    built: list[AdminServer] = []
    yield built
    for server in built:
        server.stop()


def wait(condition: Callable[[], Any], what: str, timeout_s: float = TIMEOUT_S) -> Any:
    try:
        return wait_until(condition, timeout_s=timeout_s, what=what, interval_s=0.02)
    except LaunchError as error:
        pytest.fail(str(error))


def open_clients(address: str, request: bytes, count: int) -> list[socket.socket]:
    host, port = address.rsplit(":", 1)
    clients = []
    for _ in range(count):
        client = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
        client.sendall(request)
        clients.append(client)
    return clients


def read_all_until(clients: list[socket.socket], done: Callable[[bytes], bool],
                   what: str) -> dict[socket.socket, bytes]:
    """Read every client (one select loop, no thread) until ``done(data)`` holds for all."""
    received = {client: b"" for client in clients}
    waiting = set(clients)

    def progress() -> bool:
        readable, _, _ = select.select(list(waiting), [], [], 0.05)
        for client in readable:
            chunk = client.recv(65536)
            received[client] += chunk
            if done(received[client]) or not chunk:
                waiting.discard(client)
        return not waiting

    wait(progress, what)
    return received


def close_all(clients: list[socket.socket]) -> None:
    for client in clients:
        client.close()


def test_http_server_200_slow_event_streams_on_one_loop(node):
    """200 clients that read nothing for a while each hold an open /v1/events stream;
    the server serves them all with its loop thread and its small pool (no thread per
    stream), and each then gets the next member event."""
    a = node(http_bind="127.0.0.1:0")
    a.http.events.max_clients = CLIENTS + 10
    baseline = threading.active_count()
    clients = open_clients(a.http_address, b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n",
                           CLIENTS)
    try:
        wait(lambda: a.http.events.clients == CLIENTS, f"{CLIENTS} streams to be open")
        # The first comment is written once the stream is subscribed: none misses x.
        started = read_all_until(clients, lambda data: b": events of" in data,
                                 "every stream to start")
        assert all(data.startswith(b"HTTP/1.1 200") for data in started.values())
        # The loop thread was already counted; the pool adds at most its 8 threads.
        assert threading.active_count() <= baseline + 8, _thread_names()

        api.add(a.membership, Member("x", "127.0.0.1:9"))
        received = read_all_until(clients, lambda data: b"event: joined" in data,
                                  "every stream to show x joining")
        assert all(b'"name": "x"' in data for data in received.values())
        # (x's PeerActor is a new thread of the node's now; the server still has 1 + 8.)
        http_threads = [t for t in threading.enumerate() if t.name.startswith("dynago-http")]
        assert len(http_threads) <= 9, _thread_names()
    finally:
        close_all(clients)
    wait(lambda: a.http.events.clients == 0, "the server to let every stream go")


class _Gate:
    """A route whose handler awaits until ``count`` requests are inside it at once."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.inside = 0
        self._open: asyncio.Event | None = None

    def add(self, app: web.Application) -> None:
        app.router.add_get("/ext/gate", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        if self._open is None:
            self._open = asyncio.Event()
        self.inside += 1
        if self.inside >= self.count:
            self._open.set()
        await self._open.wait()
        return web.json_response({"inside": self.inside})


def test_http_server_200_concurrent_requests_wait_in_one_loop(node, servers):
    """200 requests to a hook's route whose handler awaits are inside it at the same time
    (it only answers once all 200 are), on the loop thread: no thread per request."""
    a = node()
    gate = _Gate(CLIENTS)
    server = AdminServer("127.0.0.1:0", a, routes=[gate.add])
    servers.append(server)
    server.start()
    baseline = threading.active_count()
    clients = open_clients(server.address,
                           b"GET /ext/gate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           CLIENTS)
    try:
        received = read_all_until(clients, lambda data: data.endswith(b"}"),
                                  "every gated request to be answered")
    finally:
        close_all(clients)
    assert all(data.startswith(b"HTTP/1.1 200") for data in received.values())
    assert all(b'"inside": 200' in data for data in received.values())
    assert threading.active_count() <= baseline


def _extension(app: web.Application, *, token_check: TokenCheck) -> None:
    """What a service's hook looks like: open data routes, one guarded route."""

    async def ping(request: web.Request) -> web.Response:
        await asyncio.sleep(0)
        return web.Response(text="OK")

    async def store(request: web.Request) -> web.Response:
        return web.json_response({"stored": len(await request.read())})

    app.router.add_get("/ext/ping", ping)
    app.router.add_put("/ext/data", store)
    app.router.add_post("/ext/admin", token_check.require(store))


def test_http_server_routes_added_through_the_hook(node, servers):
    """Routes from ``add_routes`` are served beside the admin API; a data route takes a
    body of 1.5 MiB with no token, a route wrapped in ``token_check.require`` gets 401
    without the token; the admin routes keep their token; unknown paths stay 404 JSON."""
    a = node()
    server = AdminServer("127.0.0.1:0", a, token="s3cret")
    server.add_routes(lambda app: _extension(app, token_check=server.token_check))
    servers.append(server)
    server.start()
    address = server.address

    assert http_status(address, "/ext/ping") == (200, b"OK")
    value = b"v" * (3 * MIB // 2)
    status, body = http_status(address, "/ext/data", method="PUT", body=value)
    assert (status, json.loads(body)) == (200, {"stored": len(value)})
    assert http_status(address, "/ext/admin", method="POST", body=b"x")[0] == 401
    bearer = {"Authorization": "Bearer s3cret"}
    status, body = http_status(address, "/ext/admin", method="POST", body=b"xy", headers=bearer)
    assert (status, json.loads(body)) == (200, {"stored": 2})
    assert http_status(address, "/v1/tags", method="POST", body=b"{}")[0] == 401
    assert http_status(address, "/members")[0] == 200
    status, body = http_status(address, "/ext/nothing")
    assert (status, json.loads(body)) == (404, {"error": "no such resource /ext/nothing"})
    with pytest.raises(RuntimeError):
        server.add_routes(lambda app: None)


def test_http_server_body_limit_is_the_larger_of_2_mib_and_the_asked(node, servers):
    """A hook's route takes 2 MiB by default (aiohttp's own 1 MiB would be too small for
    a key-value object), more when the server is asked for more; beyond it: 413."""
    a = node()

    def hook(app: web.Application) -> None:
        _extension(app, token_check=TokenCheck(None))

    default = AdminServer("127.0.0.1:0", a, routes=[hook])
    larger = AdminServer("127.0.0.1:0", a, client_max_size=3 * MIB, routes=[hook])
    servers.extend([default, larger])
    default.start()
    larger.start()
    value = b"v" * (5 * MIB // 2)
    assert http_status(default.address, "/ext/data", method="PUT", body=value,
                       timeout_s=10)[0] == 413
    status, body = http_status(larger.address, "/ext/data", method="PUT", body=value,
                               timeout_s=10)
    assert (status, json.loads(body)) == (200, {"stored": len(value)})


def test_http_server_port_zero_port_in_use_and_bounded_stop(node, servers):
    """Port 0 is read back into ``address``; the same port again fails in the constructor
    with OSError; ``stop`` ends an open event stream and joins the loop thread."""
    a = node()
    server = AdminServer("127.0.0.1:0", a)
    servers.append(server)
    assert not server.address.endswith(":0")
    with pytest.raises(OSError):
        AdminServer(server.address, a)
    server.start()
    stream = open_clients(server.address, b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    try:
        wait(lambda: server.events.clients == 1, "the stream to be open")
        server.stop()
        received = read_all_until(stream, lambda data: False, "the stream to end")
        assert b": the node is stopping" in received[stream[0]]
    finally:
        close_all(stream)
    assert not any(t.name.startswith("dynago-http") for t in threading.enumerate()
                   if t.is_alive()), _thread_names()


def _thread_names() -> str:
    return ", ".join(sorted(t.name for t in threading.enumerate()))


def test_http_server_stop_without_start_frees_the_port(node):
    """A node whose start fails after the admin API was bound stops it unstarted: the
    port is free again and no thread is left."""
    a = node()
    server = AdminServer("127.0.0.1:0", a)
    server.stop()
    server.stop()
    again = AdminServer(server.address, a)  # the same port binds again
    again.stop()
    assert not any(t.name.startswith("dynago-http") for t in threading.enumerate())
