"""The key-value store's HTTP surface on an aiohttp application: ``add_kv_routes``.

Two APIs over one ``KvFrontend`` (docs/kv-http.md has the tables):

* Dynago's ``/kvstore`` (the Go project's API): JSON in and out, one value a key
  (dynago.http.kv_dynago).
* Riak's HTTP object API: ``/ping``, ``/``, ``/stats``, ``/buckets/B/keys[/K]`` and the
  same under ``/types/default``, with siblings, causal contexts and quorum parameters
  (dynago.http.kv_riak, framing in dynago.http.riak_multipart).

Every handler is a coroutine that awaits the frontend and never blocks the loop. Every
error answers before anything is stored: bad input 400, too large 413, a ``KvError``
its ``status``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from aiohttp import web

from dynago.kv.model import MAX_BUCKET_BYTES, BadRequest, KvFrontend, ObjectKey, TooLarge

READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class KvSurface:
    """What every KV handler needs: the frontend and the limits."""

    frontend: KvFrontend
    node_name: str
    max_key_bytes: int
    max_value_bytes: int
    stats: Callable[[], dict[str, object]] | None


def add_kv_routes(app: web.Application, frontend: KvFrontend, *, node_name: str,
                  max_key_bytes: int = 1024, max_value_bytes: int = 1 << 20,
                  stats: Callable[[], dict[str, object]] | None = None) -> None:
    """Register Dynago's ``/kvstore`` and Riak's object API on ``app``.

    Args:
        app: the application to add routes to (not yet started).
        frontend: the node's KV service; every request awaits it.
        node_name: this node's name (``/stats``'s ``nodename``).
        max_key_bytes: longest key (UTF-8 bytes) a write or read may name; longer: 413.
        max_value_bytes: largest value a write may carry; larger: 413, nothing stored.
        stats: counters merged into ``GET /stats`` (called on each request; must not block).
    """
    if max_key_bytes < 1 or max_value_bytes < 0:
        raise ValueError("max_key_bytes must be ≥ 1 and max_value_bytes ≥ 0")
    from dynago.http import kv_dynago, kv_riak

    surface = KvSurface(frontend, node_name, max_key_bytes, max_value_bytes, stats)
    kv_dynago.add_routes(app, surface)
    kv_riak.add_routes(app, surface)


def raw_segments(request: web.Request) -> list[str]:
    """The request path's segments still percent-encoded (``%2F`` stays inside its
    segment; decoding is each API's business)."""
    return request.rel_url.raw_path.strip("/").split("/")


def decode_segment(raw: str, *, plus_is_space: bool, what: str) -> str:
    """One path segment decoded: percent escapes (UTF-8), and ``+`` as a space for Riak's
    routes (clients encode with ``quote_plus``). Bad UTF-8: BadRequest."""
    try:
        if plus_is_space:
            return unquote_plus(raw, errors="strict")
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not percent-encoded UTF-8") from None


def object_key(surface: KvSurface, bucket: str, key: str) -> ObjectKey:
    """Check a bucket and key against the rules and limits; BadRequest or TooLarge."""
    if not bucket:
        raise BadRequest("bucket must not be empty")
    if "\x00" in bucket:
        raise BadRequest("bucket must not contain NUL")
    if len(bucket.encode()) > MAX_BUCKET_BYTES:
        raise TooLarge(f"bucket is longer than {MAX_BUCKET_BYTES} bytes")
    if not key:
        raise BadRequest("key must not be empty")
    if len(key.encode()) > surface.max_key_bytes:
        raise TooLarge(f"key is longer than {surface.max_key_bytes} bytes")
    return ObjectKey(bucket, key)


async def read_body(request: web.Request, limit: int, what: str = "value") -> bytes:
    """The request body, refused with TooLarge as soon as it passes ``limit`` bytes.

    Reads the stream itself so that the application's ``client_max_size`` (set by
    whoever builds the app) does not decide this API's limit.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"{what} is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(READ_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
