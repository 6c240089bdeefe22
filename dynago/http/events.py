"""``GET /v1/events``: membership events as server-sent events (text/event-stream).

One SSE message per member event::

    event: failed
    data: {"kind": "failed", "name": "node-3", "status": "failed", "incarnation": 0, ...}

``data`` is one line of JSON: the member's record (name, address, status, incarnation,
tags), ``previous`` (its record before, or null), ``reporter`` (the peer that brought
the change, ``self`` or ``local``), ``origin``, ``detail`` and ``at`` (RFC 3339, when
this node saw it). Query parameters:

* ``snapshot=1`` — first an ``event: snapshot`` whose data is the ``/v1/members`` array,
  taken in the same step as the subscription: no change falls between the two.
* ``kinds=failed,left`` — only these kinds (joined, changed, suspected, failed, left).

Every ``keepalive_s`` without an event the server sends a comment line (``: keep-alive``)
so that proxies and clients can tell a quiet stream from a dead one.

The node never waits for a client: events go through a bounded queue per client
(actors.events.EventQueue). A client that falls ``queue_capacity`` events behind (4096:
many times the records of one full-state chunk, which arrive at once), or
whose socket takes no data for ``write_timeout_s``, is disconnected and counted. A
client that hangs up is noticed within ``poll_s``; when the node stops, every stream
gets what was queued, a final comment, and is closed.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from dynago.actors.events import EventQueue
from dynago.core.member import Member
from dynago.core.messages import EventKind, MemberEvent

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from dynago.nodeview import NodeView

log = logging.getLogger(__name__)

WRITE_BATCH = 512
"""Most events written to a client in one write."""


def event_json(event: MemberEvent, at: float) -> dict[str, Any]:
    """The ``data`` of one SSE message."""
    from dynago.http.membership_api import rfc3339

    member = event.member
    return {
        "kind": event.kind.value,
        **_record(member),
        "previous": _record(event.previous) if event.previous is not None else None,
        "reporter": event.reporter,
        "origin": member.origin,
        "detail": event.detail,
        "at": rfc3339(at),
    }


def _record(member: Member) -> dict[str, Any]:
    return {
        "name": member.name,
        "address": member.address,
        "status": member.status.label,
        "incarnation": member.incarnation,
        "tags": dict(member.tags),
    }


def _message(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


class _ClientGone(Exception):
    """The client hung up or stopped taking data."""


class EventStreams:
    """The event streams of one admin server: limits, counters, and shutdown."""

    def __init__(
        self,
        *,
        max_clients: int = 64,
        queue_capacity: int = 4096,
        keepalive_s: float = 15.0,
        write_timeout_s: float = 10.0,
        poll_s: float = 0.2,
    ) -> None:
        self.max_clients = max_clients
        self.queue_capacity = queue_capacity
        self.keepalive_s = keepalive_s
        self.write_timeout_s = write_timeout_s
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._clients = 0
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self.clients_total = 0
        self.clients_refused = 0
        self.clients_too_slow = 0

    @property
    def clients(self) -> int:
        with self._lock:
            return self._clients

    def counters(self) -> dict[str, int]:
        """For /v1/stats."""
        with self._lock:
            return {
                "event_streams_open": self._clients,
                "event_streams_total": self.clients_total,
                "event_streams_refused": self.clients_refused,
                "event_streams_too_slow": self.clients_too_slow,
            }

    def close(self, timeout_s: float = 2.0) -> None:
        """End every stream (each gets what was queued) and wait, bounded, until they are."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._clients and (remaining := deadline - time.monotonic()) > 0:
                self._idle.wait(remaining)

    # ------------------------------------------------------------------ one request

    def serve(
        self, handler: BaseHTTPRequestHandler, node: NodeView, query: dict[str, list[str]]
    ) -> tuple[int, Any] | None:
        """Stream events to ``handler``'s client until it leaves or the node stops.
        Returns ``(status, error body)`` for a request refused before streaming starts."""
        unknown = set(query) - {"snapshot", "kinds"}
        if unknown:
            return 400, {"error": f"unknown query parameters: {', '.join(sorted(unknown))}"}
        try:
            kinds = _kinds(query.get("kinds", []))
        except ValueError as error:
            return 400, {"error": str(error)}
        snapshot = query.get("snapshot", ["0"])[-1] in ("1", "true", "yes")
        if self._stopping.is_set():
            return 503, {"error": "the node is stopping"}
        with self._lock:
            if self._clients >= self.max_clients:
                self.clients_refused += 1
                return 503, {"error": f"too many event streams (at most {self.max_clients})"}
            self._clients += 1
            self.clients_total += 1
        try:
            assert node.membership is not None, "start() first"
            with EventQueue.subscribe(node.membership, capacity=self.queue_capacity,
                                      kinds=kinds) as (events, members):
                self._stream(handler, node, events, members if snapshot else None)
        finally:
            with self._lock:
                self._clients -= 1
                self._idle.notify_all()
        return None

    def _stream(self, handler: BaseHTTPRequestHandler, node: NodeView, events: EventQueue,
                members: Any) -> None:
        from dynago.http.membership_api import member_json

        connection: socket.socket = handler.connection
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.send_header("X-Accel-Buffering", "no")
        handler.end_headers()
        # A slow client must not pin much memory, nor a handler thread for long.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        connection.settimeout(self.write_timeout_s)
        try:
            self._write(handler, f": events of {node.name}\n\n".encode())
            if members is not None:
                self._write(handler, _message("snapshot", [member_json(m) for m in members]))
            last_write = time.monotonic()
            while True:
                if events.overflowed:
                    with self._lock:
                        self.clients_too_slow += 1
                    log.info("event stream to %s: client too slow, disconnected",
                             handler.address_string())
                    return
                if self._stopping.is_set():
                    for at, event in events.iter(timeout_s=0):
                        self._write(handler, _message(event.kind.value, event_json(event, at)))
                    self._write(handler, b": the node is stopping\n\n")
                    return
                if _hung_up(connection):
                    return
                item = events.get(self.poll_s)
                if item is not None:
                    # Whatever else is queued goes out in the same write: a burst (a
                    # full-state exchange with a large cluster) drains as fast as it came.
                    batch = [item, *events.take(WRITE_BATCH - 1)]
                    self._write(handler, b"".join(
                        _message(event.kind.value, event_json(event, at)) for at, event in batch))
                    last_write = time.monotonic()
                elif time.monotonic() - last_write >= self.keepalive_s:
                    self._write(handler, b": keep-alive\n\n")
                    last_write = time.monotonic()
        except _ClientGone:
            return

    def _write(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        try:
            handler.wfile.write(data)
            handler.wfile.flush()
        except (OSError, ValueError) as error:  # timeout, reset, broken pipe, closed file
            if isinstance(error, TimeoutError):
                with self._lock:
                    self.clients_too_slow += 1
            raise _ClientGone() from error


def _kinds(values: list[str]) -> frozenset[EventKind] | None:
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not names:
        return None
    known = {kind.value: kind for kind in EventKind}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown event kinds {', '.join(unknown)}; "
                         f"known: {', '.join(known)}")
    return frozenset(known[name] for name in names)


def _hung_up(connection: socket.socket) -> bool:
    """True if the client closed its end (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        if not readable:
            return False
        return connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
