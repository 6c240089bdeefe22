"""What the KV route modules share: the surface they serve (frontend and limits), path
segments decoded the way Riak's clients encode them, object keys checked against the
limits, and bodies read within a bound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from aiohttp import web

from dynago.kv.model import BadRequest, KvFrontend, ObjectKey, TooLarge

READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class KvSurface:
    """What every KV handler needs: the frontend and the limits."""

    frontend: KvFrontend
    node_name: str
    max_key_bytes: int
    max_value_bytes: int
    stats: Callable[[], dict[str, object]] | None


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
    return ObjectKey(bucket, key).check(surface.max_key_bytes)


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
