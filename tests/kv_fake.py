"""A faithful in-memory ``KvFrontend`` and a real aiohttp server around it, for the HTTP,
client and CLI tests of the KV surface.

``FakeFrontend``: a dict of key → siblings, each tagged with the per-key version that
wrote it. The causal context is that version as text: a write with context ``v``
supersedes the siblings written at versions ≤ ``v`` and keeps newer ones (concurrent);
no context supersedes nothing (a new sibling); ``overwrite`` supersedes all. Quorum
values are resolved against N = 3 with ``resolve_quorum``: out of range is BadRequest.
``unavailable`` set makes every request raise it. Writes are stamped by a fake clock
that advances one second a write.

``KvServer``: ``add_kv_routes`` on a fresh ``web.Application``, run by ``AppRunner`` on
127.0.0.1 port 0 on a thread of its own; ``stop()`` shuts it down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dynago.http.kv_api import add_kv_routes
from dynago.kv.model import (
    BadRequest,
    Content,
    GetReply,
    ObjectKey,
    PutReply,
    Quorum,
    Sibling,
    Unavailable,
)
from dynago.kv.requests import resolve_quorum

N_VAL = 3
START_US = 1_700_000_000_000_000


class FakeFrontend:
    """See the module docstring."""

    def __init__(self, node: str = "node-a") -> None:
        self.node = node
        self.objects: dict[ObjectKey, list[tuple[int, Sibling]]] = {}
        self.versions: dict[ObjectKey, int] = {}
        self.calls: list[tuple[str, ObjectKey | str, Quorum | None, dict[str, Any]]] = []
        self.unavailable: Unavailable | None = None
        self.now_us = START_US

    # -- helpers for tests

    def seed(self, key: ObjectKey, siblings: list[Sibling]) -> None:
        """Make ``key`` hold exactly these siblings (as if written concurrently)."""
        entries = []
        for sibling in siblings:
            self.versions[key] = self.versions.get(key, 0) + 1
            entries.append((self.versions[key], sibling))
        self.objects[key] = entries

    def live(self, key: ObjectKey) -> list[Sibling]:
        return [s for _, s in self.objects.get(key, []) if not s.content.deleted]

    def stored_keys(self) -> set[ObjectKey]:
        return {key for key in self.objects if self.live(key)}

    # -- KvFrontend

    def _check(self, what: str, key: ObjectKey | str, quorum: Quorum | None,
               **details: Any) -> None:
        self.calls.append((what, key, quorum, details))
        if self.unavailable is not None:
            raise self.unavailable
        if quorum is not None:
            resolve_quorum(N_VAL, quorum)  # BadRequest as the real frontend's

    def _context(self, key: ObjectKey) -> bytes:
        return str(self.versions[key]).encode() if key in self.versions else b""

    async def get(self, key: ObjectKey, quorum: Quorum, *, include_deleted: bool = False,
                  ) -> GetReply:
        self._check("get", key, quorum, include_deleted=include_deleted)
        siblings = tuple(s for _, s in self.objects.get(key, [])
                         if include_deleted or not s.content.deleted)
        return GetReply(siblings, self._context(key), self.node)

    async def put(self, key: ObjectKey, content: Content, context: bytes | None,
                  quorum: Quorum, *, overwrite: bool = False, return_body: bool = False,
                  ) -> PutReply:
        self._check("put", key, quorum, content=content, context=context,
                    overwrite=overwrite, return_body=return_body)
        try:
            seen = int(context) if context else 0
        except ValueError:
            raise BadRequest("context is not one of this store's") from None
        self.now_us += 1_000_000
        version = self.versions.get(key, 0) + 1
        self.versions[key] = version
        stamped = dataclasses.replace(content, last_modified_us=self.now_us)
        kept = [] if overwrite else [(v, s) for v, s in self.objects.get(key, []) if v > seen]
        self.objects[key] = kept + [(version, Sibling(stamped, f"v{version}"))]
        body = tuple(s for _, s in self.objects[key]) if return_body else ()
        return PutReply(self.node, self._context(key), body)

    async def delete(self, key: ObjectKey, context: bytes | None, quorum: Quorum,
                     ) -> PutReply:
        self._check("delete", key, quorum, context=context)
        # No context: the tombstone supersedes everything held (the frontend's contract).
        return await self.put(key, Content(b"", deleted=True), context, Quorum(),
                              overwrite=context is None)

    async def list_keys(self, bucket: str) -> list[str]:
        self._check("list_keys", bucket, None)
        return [key.key for key in self.stored_keys() if key.bucket == bucket]

    def first_node(self, key: ObjectKey) -> str:
        return self.node


class KvServer:
    """The KV routes over a ``FakeFrontend`` on 127.0.0.1:0, served from a thread."""

    def __init__(self, frontend: FakeFrontend, **options: Any) -> None:
        self.frontend = frontend
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> KvServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        add_kv_routes(app, self.frontend, **{"node_name": "node-a", **self._options})
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (to touch the frontend between requests)."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None,
                ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a fresh connection: (status, headers, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(),
                                             self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
