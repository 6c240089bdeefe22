"""Riak's HTTP object API over the ``KvFrontend`` (conventions of basho/riak_kv's
``riak_kv_wm_object``, ``riak_kv_wm_keylist``, ``riak_kv_wm_ping``, ``riak_kv_wm_stats``
and ``riak_api_wm_urlmap``; docs/kv-http.md has the table).

Rules worth knowing:

* Bucket and key come from the raw path, percent-decoded with ``+`` as a space (Riak
  with ``http_url_encoding = on``, what its clients send).
* ``r``, ``w``, ``pr``, ``pw``: a non-negative integer or ``one`` (1), ``quorum``,
  ``all``, ``default`` (None). ``quorum`` and ``all`` depend on N, which only the
  frontend knows: they travel as ``QUORUM_MAJORITY`` / ``QUORUM_ALL`` (dynago.kv.model),
  resolved by ``dynago.kv.requests.resolve_quorum``. ``returnbody`` is ``true`` or
  ``false``. Anything else: 400 naming the parameter, nothing stored.
* A read asks for tombstones too (Riak's ``deletedvclock``): only tombstones means
  404 with ``X-Riak-Deleted: true`` and the context in ``X-Riak-Vclock``; a tombstone
  beside live values is a sibling, marked ``X-Riak-Deleted: true`` in its part.
* ``X-Riak-Vclock`` is base64 of the frontend's opaque context, on every answer that
  has one (PUT answers too, so that a client can chain writes without a read).
* DELETE reads first, as Riak does: a missing (or already deleted) key is 404.
* Errors are ``text/plain``; 503 says how many replicas answered of how many needed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from dynago import __version__
from dynago.http import riak_multipart as frame
from dynago.http.kv_common import KvSurface, decode_segment, object_key, raw_segments, read_body
from dynago.kv.model import (
    QUORUM_ALL,
    QUORUM_MAJORITY,
    BadRequest,
    Content,
    KvError,
    ObjectKey,
    Quorum,
    Sibling,
    Unavailable,
)

VCLOCK = "X-Riak-Vclock"
DELETED = "X-Riak-Deleted"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RiakHandler = Callable[[web.Request, KvSurface, str], Awaitable[web.StreamResponse]]

_WORDS = {"one": 1, "quorum": QUORUM_MAJORITY, "all": QUORUM_ALL, "default": None}

# What GET / lists, as riak_api_wm_urlmap does: each resource with the root of its URLs.
RESOURCES = (("riak_kv_wm_buckets", "/buckets"), ("riak_kv_wm_keylist", "/buckets"),
             ("riak_kv_wm_object", "/buckets"), ("riak_kv_wm_ping", "/ping"),
             ("riak_kv_wm_stats", "/stats"))


def add_routes(app: web.Application, surface: KvSurface) -> None:
    """Register Riak's resources on ``app``."""

    def guarded(handler: RiakHandler, prefix: str) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request, surface, prefix)
            except KvError as error:
                return _error(error, request.method)
        return run

    app.router.add_get("/ping", _ping)
    app.router.add_get("/", _resources)
    async def stats(request: web.Request) -> web.Response:
        return await _stats(request, surface)

    app.router.add_get("/stats", stats)
    for prefix in ("", "/types/default"):
        keys = prefix + "/buckets/{bucket}/keys"
        app.router.add_get(keys, guarded(_list_keys, prefix))
        app.router.add_post(keys, guarded(_create, prefix))
        one = keys + "/{key}"
        app.router.add_get(one, guarded(_get, prefix))
        app.router.add_put(one, guarded(_put, prefix))
        app.router.add_post(one, guarded(_put, prefix))
        app.router.add_delete(one, guarded(_delete, prefix))


def _text(body: str, status: int, **headers: str) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain", headers=headers)


def _error(error: KvError, method: str) -> web.Response:
    if isinstance(error, Unavailable):
        what = "R" if method in ("GET", "HEAD") else "W"
        return _text(f"{what}-value unsatisfied: {error.answered}/{error.needed} replicas "
                     f"answered: {error}\n", error.status)
    return _text(f"{error}\n", error.status)


async def _ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", content_type="text/html")


async def _resources(request: web.Request) -> web.Response:
    link = ",".join(f'<{uri}>; rel="{name}"' for name, uri in RESOURCES)
    return web.json_response(dict(RESOURCES), headers={"Link": link})


async def _stats(request: web.Request, surface: KvSurface) -> web.Response:
    body: dict[str, object] = {"nodename": surface.node_name,
                               "riak_kv_version": __version__}
    if surface.stats is not None:
        body.update(surface.stats())
    return web.json_response(body)


# ---------------------------------------------------------------- request parsing


def _path_key(request: web.Request, surface: KvSurface, prefix: str) -> ObjectKey:
    segments = raw_segments(request)[len(prefix.strip("/").split("/")) if prefix else 0:]
    bucket = decode_segment(segments[1], plus_is_space=True, what="bucket")
    key = decode_segment(segments[3], plus_is_space=True, what="key") if len(segments) > 3 \
        else ""
    return object_key(surface, bucket, key)


def _path_bucket(request: web.Request, prefix: str) -> str:
    segments = raw_segments(request)[len(prefix.strip("/").split("/")) if prefix else 0:]
    bucket = decode_segment(segments[1], plus_is_space=True, what="bucket")
    if not bucket:
        raise BadRequest("bucket must not be empty")
    return bucket


def parse_quorum_value(name: str, text: str | None) -> int | None:
    """One of ``r``/``w``/``pr``/``pw``: an integer ≥ 0 or a Riak word; BadRequest."""
    if text is None:
        return None
    if text in _WORDS:
        return _WORDS[text]
    if text.isascii() and text.isdigit():
        return int(text)
    raise BadRequest(f"{name} query parameter must be an integer or one of the following "
                     f"words: 'one', 'quorum', 'all' or 'default'")


def parse_quorum(request: web.Request) -> Quorum:
    """The request's ``r``, ``w``, ``pr``, ``pw`` (each optional)."""
    query = request.query
    return Quorum(**{name: parse_quorum_value(name, query.get(name))
                     for name in ("r", "w", "pr", "pw")})


def _return_body(request: web.Request) -> bool:
    text = request.query.get("returnbody", "false")
    if text not in ("true", "false"):
        raise BadRequest("returnbody query parameter must be true or false")
    return text == "true"


def _context(request: web.Request) -> bytes | None:
    header = request.headers.get(VCLOCK)
    if header is None:
        return None
    try:
        return base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{VCLOCK} header is not base64") from None


def _content_type(request: web.Request) -> str:
    header = request.headers.get("Content-Type")
    if header is None:
        raise BadRequest("Missing Content-Type request header")
    media = header.split(";")[0].strip()
    kind, slash, sub = media.partition("/")
    if not (kind and slash and sub) or "/" in sub:
        raise _UnsupportedMedia(f'"{media}" is not a valid media type for the '
                                f"Content-type header.")
    return header.strip()


class _UnsupportedMedia(KvError):
    status = 415


def _user_meta(request: web.Request) -> tuple[tuple[str, str], ...]:
    prefix = len(frame.META_PREFIX)
    return tuple(sorted((name[prefix:].lower(), value)
                        for name, value in request.headers.items()
                        if name.lower().startswith(frame.META_PREFIX) and len(name) > prefix))


# ---------------------------------------------------------------- answers


def _vclock_headers(context: bytes) -> dict[str, str]:
    return {VCLOCK: base64.b64encode(context).decode()} if context else {}


def _single(bucket: str, sibling: Sibling, context: bytes, status: int,
            extra: dict[str, str]) -> web.Response:
    content = sibling.content
    headers: CIMultiDict[str] = CIMultiDict(extra)
    headers.update(_vclock_headers(context))
    headers["Content-Type"] = content.content_type
    headers["Link"] = frame.up_link(bucket)
    headers["ETag"] = f'"{sibling.vtag}"'
    headers["Last-Modified"] = frame.rfc1123(content.last_modified_us)
    if content.deleted:
        headers[DELETED] = "true"
    for name, value in frame.meta_headers(content):
        headers.add(name, value)
    return web.Response(body=content.value, status=status, headers=headers)


def _not_found(context: bytes, deleted: bool) -> web.Response:
    headers = _vclock_headers(context) if deleted else {}
    if deleted:
        headers[DELETED] = "true"
    return _text("not found\n", 404, **headers)


def object_answer(request: web.Request, bucket: str, siblings: tuple[Sibling, ...],
                  context: bytes, *, status: int = 200,
                  extra: dict[str, str] | None = None) -> web.Response:
    """One object as Riak answers it: 404, one value (``status``), or 300 siblings."""
    extra = extra or {}
    if not siblings or all(s.content.deleted for s in siblings):
        return _not_found(context, deleted=bool(siblings))
    vtag = request.query.get("vtag")
    if vtag is not None:
        match = [s for s in siblings if s.vtag == vtag]
        if not match:
            return _text("not found\n", 404)
        return _single(bucket, match[0], context, status, extra)
    if len(siblings) == 1:
        return _single(bucket, siblings[0], context, status, extra)
    chosen = frame.choose_sibling_type(request.headers.get("Accept"))
    if chosen is None:
        return _text("siblings are served as multipart/mixed or text/plain\n", 406)
    headers = dict(extra)
    headers.update(_vclock_headers(context))
    headers["ETag"] = f'"{frame.context_etag(context)}"'
    latest = max(s.content.last_modified_us for s in siblings)
    headers["Last-Modified"] = frame.rfc1123(latest)
    if chosen == "multipart/mixed":
        boundary = frame.unique_id()
        headers["Content-Type"] = f"multipart/mixed; boundary={boundary}"
        body = frame.multipart(bucket, siblings, boundary)
    else:
        headers["Content-Type"] = "text/plain"
        body = frame.sibling_list(siblings)
    return web.Response(body=body, status=300, headers=headers)


# ---------------------------------------------------------------- handlers


async def _get(request: web.Request, surface: KvSurface, prefix: str) -> web.Response:
    target = _path_key(request, surface, prefix)
    quorum = parse_quorum(request)
    reply = await surface.frontend.get(target, quorum, include_deleted=True)
    return object_answer(request, target.bucket, reply.siblings, reply.context)


async def _write(request: web.Request, surface: KvSurface, target: ObjectKey,
                 location: str | None = None) -> web.Response:
    """PUT/POST of one object: 204, or 200 with ``returnbody``; a bucket POST (with the
    generated key's ``location``) 201 either way."""
    content_type = _content_type(request)
    quorum = parse_quorum(request)
    return_body = _return_body(request)
    context = _context(request)
    meta = _user_meta(request)
    value = await read_body(request, surface.max_value_bytes)
    content = Content(value, content_type, meta)
    reply = await surface.frontend.put(target, content, context, quorum,
                                       return_body=return_body)
    extra = {"Location": location} if location is not None else {}
    if return_body and reply.siblings:
        return object_answer(request, target.bucket, reply.siblings, reply.context,
                             status=201 if location else 200, extra=extra)
    extra.update(_vclock_headers(reply.context))
    return web.Response(status=201 if location else 204, headers=extra)


async def _put(request: web.Request, surface: KvSurface, prefix: str) -> web.Response:
    return await _write(request, surface, _path_key(request, surface, prefix))


async def _create(request: web.Request, surface: KvSurface, prefix: str) -> web.Response:
    bucket = _path_bucket(request, prefix)
    key = frame.unique_id()[:surface.max_key_bytes]  # ~27 characters; fit a tiny limit
    target = object_key(surface, bucket, key)
    # The bucket as the client encoded it, so that the Location is a valid URL path.
    location = f"{prefix}/buckets/{raw_segments(request)[-2]}/keys/{key}"
    return await _write(request, surface, target, location)


async def _delete(request: web.Request, surface: KvSurface, prefix: str) -> web.Response:
    target = _path_key(request, surface, prefix)
    quorum = parse_quorum(request)
    context = _context(request)
    seen = await surface.frontend.get(target, quorum, include_deleted=True)
    if not seen.siblings or all(s.content.deleted for s in seen.siblings):
        return _not_found(seen.context, deleted=bool(seen.siblings))
    reply = await surface.frontend.delete(target, context, quorum)
    return web.Response(status=204, headers=_vclock_headers(reply.context))


async def _list_keys(request: web.Request, surface: KvSurface, prefix: str) -> web.Response:
    bucket = _path_bucket(request, prefix)
    if request.query.get("keys") not in ("true", "stream"):
        raise BadRequest("keys query parameter must be true or stream")
    keys = sorted(await surface.frontend.list_keys(bucket))
    return web.Response(text=json.dumps({"keys": keys}), content_type="application/json")
