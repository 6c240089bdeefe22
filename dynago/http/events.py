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

No thread per client: every stream is a coroutine on the HTTP loop. The node never waits
for a client: the membership actor calls each client's subscriber, which stamps the event
and hands it to the loop (``call_soon_threadsafe``, once per burst) into that client's
bounded queue. A
client that falls ``queue_capacity`` events behind (4096: many times the records of one
full-state chunk, which arrive at once), or whose socket takes no data for
``write_timeout_s``, is disconnected and counted. A client that hangs up is noticed within
``poll_s`` (one watchdog for all streams); when the node stops, every stream gets what was
queued, a final comment, and is closed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from dynago.actors import api
from dynago.core.member import Member
from dynago.core.messages import EventKind, MemberEvent
from dynago.nodeview import NodeView

log = logging.getLogger(__name__)

Blocking = Callable[..., Awaitable[Any]]
"""``await blocking(fn, *args)``: ``fn`` on a thread of the server's pool."""

WRITE_BATCH = 512
"""Most events written to a client in one write."""

SEND_BUFFER = 1 << 16
"""Bytes a slow client may hold in the kernel and in the loop's buffer (each)."""


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


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=(json.dumps({"error": message}) + "\n").encode(),
                        headers={"Content-Type": "application/json"})


class _ClientGone(Exception):
    """The client hung up or stopped taking data."""


class _Client:
    """One stream's subscriber and bounded queue of ``(wall_time, event)``.

    ``__call__`` runs on the membership actor's thread and never blocks: it stamps the
    event, adds it to a small inbox and, unless a hand-over is already scheduled, asks the
    loop (``call_soon_threadsafe``) to move the inbox into the asyncio queue. A burst of
    events thus costs the actor one wake-up of the loop, not one per event. Pending events
    (in the inbox or the queue, not yet taken by the writer) never exceed ``capacity``;
    one more and the client is marked ``overflowed`` and gets no more events.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int,
                 request: web.BaseRequest) -> None:
        self._loop = loop
        self.capacity = capacity
        self.request = request
        # + 1: room for one wake-up marker (None) on top of ``capacity`` events.
        self._queue: asyncio.Queue[tuple[float, MemberEvent] | None] = asyncio.Queue(
            capacity + 1)
        self._lock = threading.Lock()
        self._inbox: list[tuple[float, MemberEvent]] = []
        self._handover_scheduled = False
        self._pending = 0
        self._wake_queued = False
        self.overflowed = False

    def __call__(self, event: MemberEvent) -> None:  # the membership actor's thread
        with self._lock:
            if self.overflowed:
                return
            if self._pending >= self.capacity:
                self.overflowed = True
            else:
                self._pending += 1
                self._inbox.append((time.time(), event))
            schedule = not self._handover_scheduled
            self._handover_scheduled = True
        if schedule:
            try:
                self._loop.call_soon_threadsafe(self._hand_over)
            except RuntimeError:  # the loop is closed: the server stopped, nobody reads
                pass

    def _hand_over(self) -> None:  # the loop
        with self._lock:
            items, self._inbox = self._inbox, []
            self._handover_scheduled = False
            overflowed = self.overflowed
        for item in items:
            self._queue.put_nowait(item)  # never full: pending <= capacity
        if overflowed:
            self.wake()

    @property
    def gone(self) -> bool:
        """True once the client's connection is closed."""
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def wake(self) -> None:
        """Make a waiting ``get`` return now (on the loop)."""
        if not self._wake_queued:
            self._wake_queued = True
            self._queue.put_nowait(None)

    async def get(self, timeout_s: float) -> tuple[float, MemberEvent] | None:
        """The next event; None after ``timeout_s`` or a wake-up."""
        try:
            async with asyncio.timeout(timeout_s):
                item = await self._queue.get()
        except TimeoutError:
            return None
        return self._taken(item)

    def take(self, limit: int) -> list[tuple[float, MemberEvent]]:
        """Up to ``limit`` events queued now, without waiting."""
        taken: list[tuple[float, MemberEvent]] = []
        while len(taken) < limit and not self._queue.empty():
            item = self._taken(self._queue.get_nowait())
            if item is not None:
                taken.append(item)
        return taken

    def _taken(self, item: tuple[float, MemberEvent] | None) -> tuple[float, MemberEvent] | None:
        if item is None:
            self._wake_queued = False
        else:
            with self._lock:
                self._pending -= 1
        return item


class EventStreams:
    """The event streams of one admin server: limits, counters, and shutdown. Every
    method runs on the HTTP loop; the limits may be changed from any thread."""

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
        self._clients: set[_Client] = set()
        self._idle = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False
        self.clients_total = 0
        self.clients_refused = 0
        self.clients_too_slow = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    def counters(self) -> dict[str, int]:
        """For /v1/stats."""
        return {
            "event_streams_open": len(self._clients),
            "event_streams_total": self.clients_total,
            "event_streams_refused": self.clients_refused,
            "event_streams_too_slow": self.clients_too_slow,
        }

    async def close(self, timeout_s: float = 2.0) -> None:
        """End every stream (each gets what was queued) and wait, bounded, until they have;
        a stream still stuck writing to its client then is cut off."""
        self._stopping = True
        for client in list(self._clients):
            client.wake()
        if self._clients:
            self._idle.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._idle.wait()
            except TimeoutError:
                pass
        for client in list(self._clients):
            _abort(client.request)

    # ------------------------------------------------------------------ one request

    async def serve(self, request: web.Request, node: NodeView,
                    blocking: Blocking) -> web.StreamResponse:
        """Stream events to ``request``'s client until it leaves or the node stops.
        Raises what the subscribing ask raises (pykka.ActorDeadError, pykka.Timeout)."""
        query = parse_qs(request.raw_path.partition("?")[2], keep_blank_values=True)
        unknown = set(query) - {"snapshot", "kinds"}
        if unknown:
            return _error(400, f"unknown query parameters: {', '.join(sorted(unknown))}")
        try:
            kinds = _kinds(query.get("kinds", []))
        except ValueError as error:
            return _error(400, str(error))
        snapshot = query.get("snapshot", ["0"])[-1] in ("1", "true", "yes")
        if self._stopping:
            return _error(503, "the node is stopping")
        if len(self._clients) >= self.max_clients:
            self.clients_refused += 1
            return _error(503, f"too many event streams (at most {self.max_clients})")
        client = _Client(asyncio.get_running_loop(), self.queue_capacity, request)
        self._clients.add(client)
        self.clients_total += 1
        self._watch()
        try:
            membership = node.membership
            assert membership is not None, "start() first"
            token, members = await blocking(functools.partial(
                api.subscribe_with_snapshot, membership, client, kinds=kinds))
            try:
                return await self._stream(request, node, client,
                                          members if snapshot else None)
            finally:
                try:
                    await blocking(api.unsubscribe, membership, token)
                except Exception:  # noqa: BLE001 - the node may be stopping: nothing to undo
                    pass
        finally:
            self._clients.discard(client)
            if not self._clients:
                self._idle.set()

    def _watch(self) -> None:
        """One watchdog for every stream: wakes a stream whose client hung up."""
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_hangups())

    async def _watch_hangups(self) -> None:
        while self._clients:
            await asyncio.sleep(self.poll_s)
            for client in list(self._clients):
                if client.gone:
                    client.wake()

    async def _stream(self, request: web.Request, node: NodeView, client: _Client,
                      members: Any) -> web.StreamResponse:
        from dynago.http.membership_api import member_json

        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        response.force_close()  # "Connection: close": the stream is the whole connection
        await response.prepare(request)
        _bound_buffers(request)
        loop = asyncio.get_running_loop()
        try:
            await self._write(request, response, f": events of {node.name}\n\n".encode())
            if members is not None:
                await self._write(request, response,
                                  _message("snapshot", [member_json(m) for m in members]))
            last_write = loop.time()
            while True:
                if client.overflowed:
                    self.clients_too_slow += 1
                    log.info("event stream to %s: client too slow, disconnected",
                             request.remote)
                    _abort(request)
                    return response
                if self._stopping:
                    queued = client.take(client.capacity)
                    if queued:
                        await self._write(request, response, _messages(queued))
                    await self._write(request, response, b": the node is stopping\n\n")
                    await response.write_eof()  # the whole stream is out before the count drops
                    return response
                if client.gone:
                    return response
                item = await client.get(max(0.0, self.keepalive_s - (loop.time() - last_write)))
                if item is not None:
                    # Whatever else is queued goes out in the same write: a burst (a
                    # full-state exchange with a large cluster) drains as fast as it came.
                    await self._write(request, response,
                                      _messages([item, *client.take(WRITE_BATCH - 1)]))
                    last_write = loop.time()
                elif loop.time() - last_write >= self.keepalive_s:
                    await self._write(request, response, b": keep-alive\n\n")
                    last_write = loop.time()
        except _ClientGone:
            return response

    async def _write(self, request: web.BaseRequest, response: web.StreamResponse,
                     data: bytes) -> None:
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await response.write(data)
        except TimeoutError as error:  # the client takes no data: it must not pin memory
            self.clients_too_slow += 1
            log.info("event stream: client took no data for %.1f s, disconnected",
                     self.write_timeout_s)
            _abort(request)
            raise _ClientGone() from error
        except (OSError, RuntimeError) as error:  # reset, broken pipe, closed transport
            raise _ClientGone() from error


def _messages(batch: list[tuple[float, MemberEvent]]) -> bytes:
    return b"".join(_message(event.kind.value, event_json(event, at)) for at, event in batch)


def _bound_buffers(request: web.BaseRequest) -> None:
    """A slow client must not pin much memory: small kernel and loop send buffers."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    transport.set_write_buffer_limits(high=SEND_BUFFER)


def _abort(request: web.BaseRequest) -> None:
    """Drop the connection now, unsent data and all (the client is gone or too slow)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


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
