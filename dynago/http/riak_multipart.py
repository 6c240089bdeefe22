"""How Riak's HTTP object API frames an object: single-value headers, the ``300 Multiple
Choices`` bodies (the ``Siblings:`` text list and ``multipart/mixed``), links, dates and
generated keys. Pure functions of model values; no I/O.

The framing follows basho/riak_kv ``riak_kv_wm_object`` (``produce_multipart_body``,
``produce_sibling_message_body``, ``generate_etag``) and ``riak_kv_wm_utils``
(``multipart_encode_body``, ``format_links``):

* multipart body: for every sibling ``"\\r\\n--" BOUNDARY "\\r\\n"`` then the part, and at
  the end ``"\\r\\n--" BOUNDARY "--\\r\\n"``; the response's ``Content-Type`` is
  ``multipart/mixed; boundary=BOUNDARY``.
* a part: ``Content-Type``, ``Link: </buckets/B>; rel="up"``, ``Etag: VTAG`` (unquoted),
  ``Last-Modified`` (RFC 1123), ``X-Riak-Deleted: true`` for a tombstone, one
  ``X-Riak-Meta-*`` line per user metadata entry, an empty line, the value.
* the text list: ``Siblings:\\n`` then one vtag a line.
"""

from __future__ import annotations

import email.utils
import hashlib
import secrets
from urllib.parse import quote_plus

from dynago.kv.model import Content, Sibling

META_PREFIX = "x-riak-meta-"
"""Request headers with this prefix (any case) are user metadata; the stored name is the
rest of the header name, lower-cased."""

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(number: int) -> str:
    """``number`` (≥ 0) in base 62, digits then upper then lower case letters."""
    if number == 0:
        return "0"
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def unique_id() -> str:
    """A random 160-bit id in base 62: URL-safe, as Riak's ``unique_id_62`` (used for
    generated keys and multipart boundaries)."""
    return base62(secrets.randbits(160))


def rfc1123(last_modified_us: int) -> str:
    """µs since the epoch as an RFC 1123 date (``Thu, 01 Jan 2015 00:00:00 GMT``)."""
    return email.utils.formatdate(last_modified_us // 1_000_000, usegmt=True)


def up_link(bucket: str) -> str:
    """The ``Link`` to the object's bucket that Riak sends with every object."""
    return f'</buckets/{quote_plus(bucket)}>; rel="up"'


def meta_headers(content: Content) -> list[tuple[str, str]]:
    """``X-Riak-Meta-*`` headers for the stored user metadata, in stored order."""
    return [(f"X-Riak-Meta-{name}", value) for name, value in content.meta]


def context_etag(context: bytes) -> str:
    """The ETag of an answer with siblings: base 62 of an MD5 of the causal context
    (Riak hashes the vector clock the same way)."""
    return base62(int.from_bytes(hashlib.md5(context).digest(), "big"))


def resolve_one(siblings: tuple[Sibling, ...]) -> Sibling | None:
    """The one sibling Dynago's ``/kvstore`` shows: tombstones ignored, the greatest
    ``last_modified_us``, ties broken by the greatest vtag. None when no live sibling.

    Deterministic (every node answers the same for the same siblings) and the same rule
    as the version layer's ``resolve_one``; it picks a value, it decides nothing about
    which versions supersede which.
    """
    live = [s for s in siblings if not s.content.deleted]
    if not live:
        return None
    return max(live, key=lambda s: (s.content.last_modified_us, s.vtag))


def sibling_list(siblings: tuple[Sibling, ...]) -> bytes:
    """The ``text/plain`` body of a 300 answer: ``Siblings:`` and one vtag a line."""
    return ("Siblings:\n" + "".join(f"{s.vtag}\n" for s in siblings)).encode()


def _part(bucket: str, sibling: Sibling) -> bytes:
    content = sibling.content
    lines = [f"Content-Type: {content.content_type}",
             f"Link: {up_link(bucket)}",
             f"Etag: {sibling.vtag}",
             f"Last-Modified: {rfc1123(content.last_modified_us)}"]
    if content.deleted:
        lines.append("X-Riak-Deleted: true")
    lines.extend(f"{name}: {value}" for name, value in meta_headers(content))
    head = "".join(line + "\r\n" for line in lines) + "\r\n"
    return head.encode() + content.value


def multipart(bucket: str, siblings: tuple[Sibling, ...], boundary: str) -> bytes:
    """The ``multipart/mixed`` body of a 300 answer, one part a sibling (tombstones
    included, marked ``X-Riak-Deleted: true``)."""
    delimiter = f"\r\n--{boundary}\r\n".encode()
    body = b"".join(delimiter + _part(bucket, sibling) for sibling in siblings)
    return body + f"\r\n--{boundary}--\r\n".encode()


def choose_sibling_type(accept: str | None) -> str | None:
    """``multipart/mixed`` or ``text/plain`` for a 300 answer, by the ``Accept`` header
    (quality values, exact type over ``type/*`` over ``*/*``; a tie or no header:
    ``text/plain``, the type Riak offers first). None: the client accepts neither."""
    if not accept:
        return "text/plain"
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        media, *params = (piece.strip() for piece in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, raw = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(raw)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))

    def quality_of(candidate: str) -> float:
        kind = candidate.split("/")[0]
        for pattern in (candidate, f"{kind}/*", "*/*"):
            for media, quality in ranges:
                if media == pattern:
                    return quality
        return 0.0

    text, mixed = quality_of("text/plain"), quality_of("multipart/mixed")
    if max(text, mixed) <= 0:
        return None
    return "multipart/mixed" if mixed > text else "text/plain"
