"""A blocking Python client of a node's KV HTTP surface (dynago.http.kv_api), over one
keep-alive ``http.client`` connection.

    from dynago.kv.client import KvClient

    kv = KvClient("127.0.0.1:8001")
    kv.put("k", "v", bucket="b")
    obj = kv.get("k", bucket="b")        # None when not found
    kv.put("k", "v2", bucket="b", context=obj.context)   # replaces what obj saw
    kv.delete("k", bucket="b", context=obj.context)

Not found is None (``get``) or False (``delete``); every other refusal raises
``KvClientError(status, message)``; an unreachable node raises ``OSError``. One client is
one connection: use it from one thread at a time.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from dynago.kv.model import DEFAULT_BUCKET

_Connection = http.client.HTTPConnection  # the client's ``http`` argument hides the module

QuorumValue = int | str | None
"""An r/w value: a count, one of Riak's words ``one``/``quorum``/``all``/``default``,
or None for the node's default."""


class KvClientError(Exception):
    """The node answered with an error ``status``; ``message`` is its explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ClientSibling:
    """One value of an object, as the node sent it."""

    value: bytes
    content_type: str
    vtag: str
    last_modified: str | None = None
    meta: tuple[tuple[str, str], ...] = ()
    deleted: bool = False


@dataclass(frozen=True)
class ClientObject:
    """An object read or written: its siblings (one unless writes were concurrent) and
    the causal context to send back with the next write."""

    bucket: str
    key: str
    siblings: tuple[ClientSibling, ...] = ()
    context: bytes | None = None
    location: str | None = None
    """A bucket POST's ``Location`` (the generated key's path)."""

    @property
    def value(self) -> bytes:
        """The only sibling's value; ValueError when there are several (or none)."""
        if len(self.siblings) != 1:
            raise ValueError(f"{len(self.siblings)} siblings: pick one of .siblings")
        return self.siblings[0].value


def _path(bucket: str, key: str | None = None) -> str:
    path = f"/buckets/{quote(bucket, safe='')}/keys"
    return path if key is None else f"{path}/{quote(key, safe='')}"


def _query(**params: Any) -> str:
    given = {name: str(value).lower() if isinstance(value, bool) else value
             for name, value in params.items() if value is not None}
    return f"?{urlencode(given)}" if given else ""


def _sibling(header: Callable[[str], str | None], body: bytes,
             meta: list[tuple[str, str]]) -> ClientSibling:
    """A sibling from its headers (``header`` looks up a lower-case name) and value."""
    return ClientSibling(value=body,
                         content_type=header("content-type") or "application/octet-stream",
                         vtag=(header("etag") or "").strip('"'),
                         last_modified=header("last-modified"), meta=tuple(meta),
                         deleted=header("x-riak-deleted") == "true")


def _meta(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    prefix = "x-riak-meta-"
    return [(name[len(prefix):].lower(), value) for name, value in pairs
            if name.lower().startswith(prefix)]


def parse_multipart(content_type: str, body: bytes) -> tuple[ClientSibling, ...]:
    """The siblings of a ``multipart/mixed`` 300 answer (binary-safe: parts are cut at
    the exact ``CRLF--boundary`` delimiters, never re-encoded)."""
    boundary = ""
    for param in content_type.split(";")[1:]:
        name, _, text = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = text.strip('"')
    if not boundary:
        raise KvClientError(300, "multipart answer without a boundary")
    siblings = []
    for piece in body.split(f"\r\n--{boundary}".encode())[1:]:
        if piece.startswith(b"--"):
            break
        head, _, payload = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        pairs = []
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, text = line.partition(":")
            if colon:
                pairs.append((name.strip(), text.strip()))
        lookup = {name.lower(): text for name, text in pairs}
        siblings.append(_sibling(lookup.get, payload, _meta(pairs)))
    return tuple(siblings)


class KvClient:
    """See the module docstring. ``http`` is the node's ``HOST:PORT``."""

    def __init__(self, http: str = "127.0.0.1:8001", *, timeout_s: float = 5.0) -> None:
        host, _, port = http.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {http!r}")
        self._host, self._port, self._timeout_s = host.strip("[]"), int(port), timeout_s
        self._connection: _Connection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> KvClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None,
                 ) -> tuple[int, http.client.HTTPMessage, bytes]:
        # A kept-alive connection the node has closed fails before any answer: the
        # request never ran, so it is sent once more on a new connection.
        for attempt in (0, 1):
            fresh = self._connection is None
            if self._connection is None:
                self._connection = _Connection(self._host, self._port,
                                               timeout=self._timeout_s)
            try:
                self._connection.request(method, path, body=body, headers=headers or {})
                response = self._connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError):
                self.close()
                if fresh or attempt:
                    raise
                continue
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            if response.will_close:
                self.close()
            return response.status, response.headers, data
        raise AssertionError("unreachable")

    @staticmethod
    def _fail(status: int, body: bytes) -> KvClientError:
        text = body.decode(errors="replace").strip()
        try:
            parsed = json.loads(text)
            if isinstance(parsed, dict) and "error" in parsed:
                text = str(parsed["error"])
        except ValueError:
            pass
        return KvClientError(status, text or http.client.responses.get(status, "error"))

    @staticmethod
    def _context(headers: http.client.HTTPMessage) -> bytes | None:
        header = headers.get("X-Riak-Vclock")
        return base64.b64decode(header) if header else None

    def _object(self, bucket: str, key: str, status: int, headers: http.client.HTTPMessage,
                body: bytes) -> ClientObject:
        context = self._context(headers)
        location = headers.get("Location")
        if status == 300:
            siblings = parse_multipart(headers.get("Content-Type", ""), body)
        elif status == 200 or (status == 201 and "Etag" in headers):
            siblings = (_sibling(headers.get, body, _meta(list(headers.items()))),)
        else:
            siblings = ()
        return ClientObject(bucket, key, siblings, context, location)

    def get(self, key: str, *, bucket: str = DEFAULT_BUCKET,
            r: QuorumValue = None) -> ClientObject | None:
        """The object with every sibling (tombstones among siblings are marked
        ``deleted``), or None when not found (or deleted)."""
        status, headers, body = self._request(
            "GET", _path(bucket, key) + _query(r=r), headers={"Accept": "multipart/mixed"})
        if status == 404:
            return None
        if status not in (200, 300):
            raise self._fail(status, body)
        return self._object(bucket, key, status, headers, body)

    def put(self, key: str | None, value: bytes | str, *, bucket: str = DEFAULT_BUCKET,
            context: bytes | None = None, content_type: str = "application/octet-stream",
            w: QuorumValue = None, return_body: bool = False,
            meta: dict[str, str] | None = None) -> ClientObject:
        """Store ``value``; ``context`` (from a read) replaces what that read saw, None
        adds a sibling beside concurrent values. ``key`` None: the node picks one (see
        the answer's ``location`` and ``key``). A str value is sent as UTF-8 and
        ``content_type`` gets ``; charset=utf-8`` unless it names a charset."""
        if isinstance(value, str):
            value = value.encode()
            if "charset" not in content_type:
                content_type += "; charset=utf-8"
        headers = {"Content-Type": content_type, "Accept": "multipart/mixed"}
        if context:
            headers["X-Riak-Vclock"] = base64.b64encode(context).decode()
        for name, text in (meta or {}).items():
            headers[f"X-Riak-Meta-{name}"] = text
        query = _query(w=w, returnbody=True if return_body else None)
        method, path = ("POST", _path(bucket)) if key is None else ("PUT", _path(bucket, key))
        status, answer, body = self._request(method, path + query, value, headers)
        if status not in (200, 201, 204, 300):
            raise self._fail(status, body)
        if key is None:
            key = (answer.get("Location") or "").rsplit("/", 1)[-1]
        return self._object(bucket, key, status, answer, body)

    def delete(self, key: str, *, bucket: str = DEFAULT_BUCKET, context: bytes | None = None,
               w: QuorumValue = None) -> bool:
        """Delete ``key``: True, or False when it was not found."""
        headers = {"X-Riak-Vclock": base64.b64encode(context).decode()} if context else {}
        status, _, body = self._request("DELETE", _path(bucket, key) + _query(w=w),
                                        headers=headers)
        if status == 404:
            return False
        if status != 204:
            raise self._fail(status, body)
        return True

    def keys(self, bucket: str = DEFAULT_BUCKET) -> list[str]:
        """Every live key of ``bucket`` (costly on a large cluster: for operators)."""
        status, _, body = self._request("GET", _path(bucket) + "?keys=true")
        if status != 200:
            raise self._fail(status, body)
        keys: list[str] = json.loads(body)["keys"]
        return keys

    def explain(self, key: str, *, bucket: str = DEFAULT_BUCKET) -> dict[str, Any]:
        """``GET /v1/kv/explain``: which nodes hold which versions of the key, how they
        got them, and a quorum read (dynago.http.kv_ui_api has the document's shape)."""
        status, _, body = self._request("GET", "/v1/kv/explain"
                                        + _query(bucket=bucket, key=key))
        if status != 200:
            raise self._fail(status, body)
        answer: dict[str, Any] = json.loads(body)
        return answer

    def kvstore_put(self, key: str, value: str) -> dict[str, Any]:
        """Dynago's ``POST /kvstore``: the answer (``message``, ``node``)."""
        body = json.dumps({"Key": key, "Value": value}).encode()
        status, _, data = self._request("POST", "/kvstore", body,
                                        {"Content-Type": "application/json"})
        if status != 200:
            raise self._fail(status, data)
        answer: dict[str, Any] = json.loads(data)
        return answer

    def kvstore_get(self, key: str) -> str | None:
        """Dynago's ``GET /kvstore/{key}``: the value, or None when not found."""
        status, _, data = self._request("GET", f"/kvstore/{quote(key, safe='')}")
        if status == 404:
            return None
        if status != 200:
            raise self._fail(status, data)
        value: str = json.loads(data)["value"]
        return value
