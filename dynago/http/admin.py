"""HTTP admin API (stdlib ``http.server``; one thread per request, daemon threads).

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
Handlers only ``ask`` the membership actor (with a timeout); they never touch its state.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pykka

from dynago.core.address import format_address, parse_address
from dynago.http import membership_api
from dynago.http.events import EventStreams
from dynago.transport.faults import FaultError, Faults

if TYPE_CHECKING:
    from dynago.nodeview import NodeView

log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    node: NodeView
    on_leave: Any
    token: bytes | None
    events: EventStreams


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("http %s - %s", self.address_string(), format % args)

    def _send_json(self, status: int, body: Any) -> None:
        data = (json.dumps(body, indent=None) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path, _, query_text = self.path.partition("?")
        path = path.rstrip("/") or "/"
        query = parse_qs(query_text, keep_blank_values=True)
        node = self.server.node
        try:
            history_of = membership_api.history_name(path)
            if path == "/v1/events":
                refused = self.server.events.serve(self, node, query)
                if refused is not None:
                    self._send_json(*refused)
            elif history_of is not None:
                self._send_json(*membership_api.history(node, history_of))
            elif path == "/v1/tags":
                self._send_json(*membership_api.tags(node))
            elif path == "/members":
                live = node.members(live_only=True)
                self._send_json(200, sorted(view.address for view in live))
            elif path == "/v1/members":
                self._send_json(*membership_api.members(node, query))
            elif path == "/metrics":
                from dynago.ops import metrics

                self._send_bytes(200, metrics.render(node), metrics.CONTENT_TYPE)
            elif path == "/v1/stats":
                self._send_json(200, {**node.stats(), **self.server.events.counters()})
            elif path == "/v1/faults" and node.faults is not None:
                self._send_json(200, node.faults.rules.as_dict())
            elif path == "/healthz":
                live = node.members(live_only=True)
                self._send_json(200, {"status": "ok", "name": node.name,
                                      "address": node.address, "live_members": len(live)})
            else:
                self._send_json(404, {"error": f"no such resource {path}"})
        except (pykka.ActorDeadError, pykka.Timeout, AssertionError):
            self._send_json(503, {"status": "unavailable", "error": "membership not running"})

    def _authorized(self) -> bool:
        """Requests that change the node need the bearer token, when one is set."""
        token = self.server.token
        if token is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        if not self._authorized():
            self.close_connection = True
            data = b'{"error": "missing or wrong bearer token"}\n'
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="dynago"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > 1 << 16:
            self._send_json(413, {"error": "request body larger than 64 KiB"})
            return
        body = self.rfile.read(length) if length > 0 else b""
        faults = self.server.node.faults
        if path == "/v1/tags":
            try:
                self._send_json(*membership_api.change_tags(self.server.node, self.command, body))
            except (pykka.ActorDeadError, pykka.Timeout, AssertionError):
                self._send_json(503, {"error": "membership not running"})
        elif self.command == "PUT":
            self._send_json(405, {"error": f"PUT is not allowed on {path}"})
        elif path == "/v1/faults" and faults is not None:
            try:
                _apply_faults(faults, json.loads(body or b"{}"))
            except (ValueError, TypeError, KeyError) as error:
                self._send_json(400, {"error": str(error)})
                return
            self._send_json(200, faults.rules.as_dict())
        elif path == "/v1/leave":
            callback = self.server.on_leave
            if callback is None:
                self._send_json(409, {"error": "this node cannot be stopped over HTTP"})
                return
            self._send_json(202, {"status": "leaving"})
            threading.Thread(target=callback, name="dynago-leave", daemon=True).start()
        else:
            self._send_json(404, {"error": f"no such resource {path}"})

    do_PUT = do_POST  # noqa: N815 - stdlib name; PUT /v1/tags only


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


class AdminServer:
    """Serves the admin API of ``node`` on ``bind`` (port 0: any free port)."""

    def __init__(
        self, bind: str, node: NodeView, on_leave: Any = None, token: str | None = None
    ) -> None:
        host, port = parse_address(bind, allow_port_zero=True)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.node = node
        self._server.on_leave = on_leave
        self._server.token = token.encode() if token else None
        self.events = self._server.events = EventStreams()
        bound_port = self._server.server_address[1]
        self.address = format_address(host, int(bound_port))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dynago-http", daemon=True,
            kwargs={"poll_interval": 0.1},
        )

    def set_on_leave(self, callback: Any) -> None:
        """Called (on its own thread) when ``POST /v1/leave`` arrives."""
        self._server.on_leave = callback

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.events.close()  # before shutdown: event streams end cleanly, with a last word
        self._server.shutdown()
        self._server.server_close()
