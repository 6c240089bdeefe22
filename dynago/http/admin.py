"""HTTP admin API, on the node's HttpServer (dynago.http.server: one asyncio loop thread).

* ``GET /members``    — JSON array of ``"host:port"`` of live members (alive, suspect),
  this node included: the shape Dynago's clients read.
* ``GET /v1/members`` — JSON array of objects: name, address, status, incarnation, since
  (RFC 3339 UTC time at which this node saw the change), tags; ``?tag=KEY=VALUE`` filters.
* ``GET /v1/members/{name}/history``, ``GET|PUT|POST /v1/tags`` — see http.membership_api.
* ``GET /v1/events`` — membership events as server-sent events; see http.events.
* ``GET /metrics``    — the same counters and more in the Prometheus text format
  (dynago.ops.metrics).
* ``GET /v1/stats``   — counters: membership (probes, suspicions, invalid records, ...)
  and transport (streams refused, malformed messages, bytes in and out, ...).
* ``GET /healthz``    — 200 ``{"status": "ok", ...}`` while the membership actor answers,
  503 otherwise.
* ``POST /v1/leave``  — leave the cluster and stop the node (202).
* ``GET|POST /v1/faults`` — fault injection (only on a node started with it enabled,
  404 otherwise). POST a JSON object with any of ``drop_rate`` (0..1), ``delay_s``,
  ``cut`` (``{"node": NAME, "direction": "both"|"out"|"in"}``), ``heal`` (a node name,
  or ``true`` for everything); the answer is the rules now in force. Bad input: 400 and
  nothing changes.

Requests that change the node (every POST and PUT) need ``Authorization: Bearer TOKEN`` when the
node has an admin token; without it they get 401 and nothing changes. Reads stay open.
Handlers only ``ask`` the membership actor (with a timeout), on the server's small thread
pool so that the loop never waits; they never touch its state. Unknown paths: 404 JSON.

Services serve their own routes on the same port: ``AdminServer(..., routes=[hook])`` or
``add_routes(hook)`` before ``start``, where ``hook(app)`` adds routes to the aiohttp
Application; a hook guards what must be guarded with ``token_check.require`` (see
dynago.http.auth). Request bodies up to ``max(2 MiB, client_max_size)``; the admin routes
themselves take at most 64 KiB.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import pykka
from aiohttp import web

from dynago.http import membership_api
from dynago.http.auth import Handler, TokenCheck
from dynago.http.events import EventStreams
from dynago.http.server import HttpServer, RouteHook
from dynago.nodeview import NodeView
from dynago.transport.faults import FaultError, Faults

log = logging.getLogger(__name__)

MAX_ADMIN_BODY = 1 << 16
"""Largest body of an admin POST or PUT (tags, fault rules: small JSON objects)."""

NOT_RUNNING = (pykka.ActorDeadError, pykka.Timeout, AssertionError)
"""What an ask of a stopped (or not yet started) membership actor raises."""

Answer = tuple[int, Any]
Body = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


def json_response(status: int, body: Any) -> web.Response:
    """``body`` as one line of JSON (the admin API's answers)."""
    return web.Response(status=status, body=(json.dumps(body, indent=None) + "\n").encode(),
                        headers={"Content-Type": "application/json"})


def _path(request: web.BaseRequest) -> str:
    """The request path as the admin API names it: raw, no query, no trailing slash."""
    return request.raw_path.partition("?")[0].rstrip("/") or "/"


def _not_found(request: web.BaseRequest) -> web.Response:
    return json_response(404, {"error": f"no such resource {_path(request)}"})


def _query(request: web.BaseRequest) -> dict[str, list[str]]:
    return parse_qs(request.raw_path.partition("?")[2], keep_blank_values=True)


def _apply_faults(faults: Faults, request: object) -> None:
    """Check the whole request first, then apply it: bad input changes nothing."""
    if not isinstance(request, dict):
        raise FaultError("expected a JSON object")
    unknown = set(request) - {"drop_rate", "delay_s", "cut", "heal"}
    if unknown:
        raise FaultError(f"unknown fields: {', '.join(sorted(unknown))}")
    drop_rate, delay_s = request.get("drop_rate"), request.get("delay_s")
    for label, value in (("drop_rate", drop_rate), ("delay_s", delay_s)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise FaultError(f"{label} must be a number")
    cut = request.get("cut")
    if cut is not None and not (isinstance(cut, dict) and isinstance(cut.get("node"), str)):
        raise FaultError('cut must be {"node": NAME, "direction": "both"|"out"|"in"}')
    heal = request.get("heal")
    if heal is not None and not (heal is True or isinstance(heal, str)):
        raise FaultError("heal must be a node name or true")
    trial = Faults()  # validate on a scratch copy so that a bad field changes nothing
    trial.set_loss(drop_rate, delay_s)
    if cut is not None:
        trial.cut(cut["node"], cut.get("direction", "both"))
    if heal is not None:
        faults.heal(None if heal is True else heal)
    faults.set_loss(drop_rate, delay_s)
    if cut is not None:
        faults.cut(cut["node"], cut.get("direction", "both"))


def _unknown_paths(token_check: TokenCheck) -> Any:
    """Middleware: a request that matches no route is answered as the admin API always
    has (a POST or PUT without the token: 401; a PUT: 405; else 404 JSON). Answers of the
    routes themselves (a service's own 404s and 405s) pass through untouched."""

    @web.middleware
    async def unknown_paths(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not isinstance(request.match_info.http_exception, web.HTTPNotFound):
            return await handler(request)
        if request.method in ("POST", "PUT"):
            if not token_check.authorized(request):
                return token_check.refusal()
            if request.method == "PUT":
                return json_response(405, {"error": f"PUT is not allowed on {_path(request)}"})
        return _not_found(request)

    return unknown_paths


class AdminServer:
    """Serves the admin API of ``node`` on ``bind`` (port 0: any free port), and the
    routes that ``routes`` hooks add, on one HttpServer.

    Args:
        bind: ``HOST:PORT`` or ``[V6]:PORT``; bound here, so a port in use raises OSError
            (and a bad address AddressError) from the constructor.
        node: what the API reads and asks.
        on_leave: called on its own thread after ``POST /v1/leave`` is answered (202);
            None: that request gets 409.
        token: the admin token every POST and PUT of the admin API needs (None: none).
        routes: hooks adding a service's routes (see ``add_routes``).
        client_max_size: largest request body the hooks' routes take (the server takes
            ``max(2 MiB, client_max_size)``).
    """

    def __init__(
        self,
        bind: str,
        node: NodeView,
        *,
        on_leave: Callable[[], object] | None = None,
        token: str | None = None,
        routes: Sequence[RouteHook] = (),
        client_max_size: int | None = None,
    ) -> None:
        self.node = node
        self.token_check = TokenCheck(token)
        """The admin token check, for hooks: ``token_check.require(handler)``."""
        self.events = EventStreams()
        self._on_leave = on_leave
        self._server = HttpServer(bind, client_max_size=client_max_size,
                                  middlewares=[_unknown_paths(self.token_check)])
        self.address = self._server.address
        """``HOST:PORT`` actually bound (port 0 resolved), brackets for IPv6."""
        self._server.on_stop.append(self.events.close)
        self._install(self._server.app)
        self._server.add_all(routes)

    @property
    def app(self) -> web.Application:
        """The aiohttp Application (its settings and routes; frozen once started)."""
        return self._server.app

    def add_routes(self, hook: RouteHook) -> None:
        """``hook(app)`` adds a service's routes; only before ``start``. A route that
        changes the node wraps its handler in ``self.token_check.require``."""
        self._server.add_routes(hook)

    def set_on_leave(self, callback: Callable[[], object]) -> None:
        """Called (on its own thread) when ``POST /v1/leave`` arrives."""
        self._on_leave = callback

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        """End the event streams (each with a last word), close every connection and the
        server, join the loop thread: within a few seconds."""
        self._server.stop()

    # ------------------------------------------------------------------ routes

    def _install(self, app: web.Application) -> None:
        admin: list[tuple[str, Handler | None, Body | None, Body | None]] = [
            ("/members", self._members, None, None),
            ("/v1/members", self._member_list, None, None),
            ("/v1/tags", self._tags, self._change_tags, self._change_tags),
            ("/v1/events", self._events, None, None),
            ("/metrics", self._metrics, None, None),
            ("/v1/stats", self._stats, None, None),
            ("/v1/faults", self._faults, self._set_faults, None),
            ("/healthz", self._health, None, None),
            ("/v1/leave", None, self._leave, None),
        ]
        for path, get, post, put in admin:
            # Trailing slashes are the same resource, as they always were.
            app.router.add_route("*", path + "{slash:/*}", self._dispatch(get, post, put))
        app.router.add_route("*", membership_api.HISTORY_PREFIX + "{tail:.+}",
                             self._dispatch(self._history, None, None))

    def _dispatch(self, get: Handler | None, post: Body | None, put: Body | None) -> Handler:
        """One resource's handler for every method: reads are open, a POST or PUT needs the
        token (401 first, before anything is read), and its body is at most 64 KiB."""

        async def handle(request: web.Request) -> web.StreamResponse:
            method = request.method
            if method in ("GET", "HEAD"):
                return await get(request) if get is not None else _not_found(request)
            if method not in ("POST", "PUT"):
                return json_response(405, {"error": f"{method} is not allowed on "
                                                    f"{_path(request)}"})
            if not self.token_check.authorized(request):
                return self.token_check.refusal()
            too_large = json_response(413, {"error": "request body larger than 64 KiB"})
            if (request.content_length or 0) > MAX_ADMIN_BODY:
                too_large.force_close()  # the body stays unread
                return too_large
            body = await request.read()
            if len(body) > MAX_ADMIN_BODY:
                return too_large
            if method == "PUT" and put is None:
                return json_response(405, {"error": f"PUT is not allowed on {_path(request)}"})
            target = put if method == "PUT" else post
            return await target(request, body) if target is not None else _not_found(request)

        return handle

    async def _ask(self, answer: Callable[[], Answer],
                   unavailable: Any = None) -> web.Response:
        """``answer()`` (it asks the membership actor) on the pool; 503 if it is down."""
        try:
            status, body = await self._server.blocking(answer)
        except NOT_RUNNING:
            return json_response(503, unavailable or {"status": "unavailable",
                                                      "error": "membership not running"})
        return json_response(status, body)

    async def _members(self, request: web.Request) -> web.StreamResponse:
        node = self.node
        return await self._ask(lambda: (200, sorted(v.address
                                                    for v in node.members(live_only=True))))

    async def _member_list(self, request: web.Request) -> web.StreamResponse:
        query = _query(request)
        return await self._ask(lambda: membership_api.members(self.node, query))

    async def _history(self, request: web.Request) -> web.StreamResponse:
        name = membership_api.history_name(_path(request))
        if name is None:
            return _not_found(request)
        return await self._ask(lambda: membership_api.history(self.node, name))

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        return await self._ask(lambda: membership_api.tags(self.node))

    async def _change_tags(self, request: web.Request, body: bytes) -> web.StreamResponse:
        method = request.method
        return await self._ask(lambda: membership_api.change_tags(self.node, method, body),
                               {"error": "membership not running"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.events.serve(request, self.node, self._server.blocking)
        except NOT_RUNNING:
            return json_response(503, {"status": "unavailable",
                                       "error": "membership not running"})

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        from dynago.ops import metrics

        try:
            data = await self._server.blocking(metrics.render, self.node)
        except NOT_RUNNING:
            return json_response(503, {"status": "unavailable",
                                       "error": "membership not running"})
        return web.Response(body=data, headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        node, events = self.node, self.events
        return await self._ask(lambda: (200, {**node.stats(), **events.counters()}))

    async def _health(self, request: web.Request) -> web.StreamResponse:
        node = self.node

        def health() -> Answer:
            live = node.members(live_only=True)
            return 200, {"status": "ok", "name": node.name, "address": node.address,
                         "live_members": len(live)}

        return await self._ask(health)

    async def _faults(self, request: web.Request) -> web.StreamResponse:
        faults = self.node.faults
        if faults is None:
            return _not_found(request)
        return json_response(200, faults.rules.as_dict())

    async def _set_faults(self, request: web.Request, body: bytes) -> web.StreamResponse:
        faults = self.node.faults
        if faults is None:
            return _not_found(request)
        try:
            _apply_faults(faults, json.loads(body or b"{}"))
        except (ValueError, TypeError, KeyError) as error:
            return json_response(400, {"error": str(error)})
        return json_response(200, faults.rules.as_dict())

    async def _leave(self, request: web.Request, body: bytes) -> web.StreamResponse:
        callback = self._on_leave
        if callback is None:
            return json_response(409, {"error": "this node cannot be stopped over HTTP"})
        response = json_response(202, {"status": "leaving"})
        # The answer is out before the node starts stopping (and stops this server).
        await response.prepare(request)
        await response.write_eof()
        threading.Thread(target=callback, name="dynago-leave", daemon=True).start()
        return response
