"""Dynago's ``/kvstore`` API, as the Go project serves it, over the ``KvFrontend``.

* ``POST /kvstore`` with ``{"Key": "k", "Value": "v"}``: field names match in any case,
  as Go's encoding/json decodes them (the last matching field wins); ``Value`` is a JSON
  string, a missing one is the empty string (Go's zero value). The write is a plain
  overwrite of the key in bucket ``DEFAULT_BUCKET`` (stored as ``text/plain;
  charset=utf-8``). Answer: ``200 {"message": "Stored the key value", "node": FIRST}``,
  FIRST the key's first preference-list node.
* ``GET /kvstore/{key}``: ``200 {"key", "value", "node"}``. With siblings, the one
  ``riak_multipart.resolve_one`` picks (greatest ``last_modified_us``, then greatest
  vtag, tombstones ignored). A missing key: ``404 {"error": ...}`` (Go answers 200 with an
  empty value; we do not). A value that is not UTF-8 text (written through the Riak API):
  406, read it there.
* ``GET /kvstore``: ``200 "Welcome to keystore"``, as Go answers.

Every error is ``{"error": message}`` with the status of its ``KvError``; nothing is stored.
The key in the path is percent-decoded as Go decodes paths (``+`` stays ``+``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dynago.http.kv_common import KvSurface, decode_segment, object_key, raw_segments, read_body
from dynago.http.riak_multipart import resolve_one
from dynago.kv.model import DEFAULT_BUCKET, BadRequest, Content, KvError, Quorum, TooLarge

STORED_CONTENT_TYPE = "text/plain; charset=utf-8"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_routes(app: web.Application, surface: KvSurface) -> None:
    """Register ``/kvstore`` on ``app``."""

    def guarded(handler: Callable[[web.Request, KvSurface], Awaitable[web.Response]],
                ) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request, surface)
            except KvError as error:
                return web.json_response({"error": str(error)}, status=error.status)
        return run

    app.router.add_get("/kvstore", guarded(_welcome))
    app.router.add_post("/kvstore", guarded(_store))
    app.router.add_get("/kvstore/{key}", guarded(_fetch))


async def _welcome(request: web.Request, surface: KvSurface) -> web.Response:
    return web.json_response("Welcome to keystore")


class _Pairs(list[tuple[str, Any]]):
    """A JSON object's fields in order (unlike a dict, keeps every duplicate name)."""


def parse_store_body(body: bytes) -> tuple[str, str]:
    """``(key, value)`` from a ``POST /kvstore`` body; BadRequest when malformed.

    Go's encoding/json: a field name matches ``Key``/``Value`` in any case (Python's
    ``lower`` folds the Kelvin sign to ``k`` as Go's folding does), the last match wins.
    """
    try:
        pairs = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"body is not JSON: {error}") from None
    if not isinstance(pairs, _Pairs):
        raise BadRequest('body must be a JSON object {"Key": ..., "Value": ...}')
    fields: dict[str, Any] = {}
    for name, value in pairs:
        folded = name.lower()
        if folded in ("key", "value"):
            fields[folded] = value
    key, value = fields.get("key"), fields.get("value", "")
    if not isinstance(key, str) or not key:
        raise BadRequest("Key must be a non-empty JSON string")
    if not isinstance(value, str):
        raise BadRequest("Value must be a JSON string")
    return key, value


async def _store(request: web.Request, surface: KvSurface) -> web.Response:
    # JSON escapes take up to 6 bytes a character (\uXXXX): bound the body by that.
    limit = 6 * (surface.max_key_bytes + surface.max_value_bytes) + 4096
    key, value = parse_store_body(await read_body(request, limit, "body"))
    raw = value.encode()
    if len(raw) > surface.max_value_bytes:
        raise TooLarge(f"value is larger than {surface.max_value_bytes} bytes")
    target = object_key(surface, DEFAULT_BUCKET, key)
    await surface.frontend.put(target, Content(raw, STORED_CONTENT_TYPE), None, Quorum(),
                               overwrite=True)
    return web.json_response({"message": "Stored the key value",
                              "node": surface.frontend.first_node(target)})


async def _fetch(request: web.Request, surface: KvSurface) -> web.Response:
    key = decode_segment(raw_segments(request)[1], plus_is_space=False, what="key")
    reply = await surface.frontend.get(object_key(surface, DEFAULT_BUCKET, key), Quorum())
    chosen = resolve_one(reply.siblings)
    if chosen is None:
        return web.json_response({"error": f"key {key!r} not found"}, status=404)
    try:
        value = chosen.content.value.decode()
    except UnicodeDecodeError:
        return web.json_response(
            {"error": f"the value of {key!r} is not UTF-8 text: read it through "
                      f"/buckets/{DEFAULT_BUCKET}/keys/"}, status=406)
    return web.json_response({"key": key, "value": value, "node": reply.node})
