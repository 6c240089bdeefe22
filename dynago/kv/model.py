"""The store's shared vocabulary: object keys, a sibling's content, and what a client
request gets back. Frozen dataclasses; no I/O.

The HTTP layer (dynago.http) speaks only these types to the KV service
(``KvFrontend``); the versions (dynago.kv.version) and the request state machines build
on ``ObjectKey`` and ``Content``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DEFAULT_BUCKET = "default"
"""The bucket of Dynago's ``/kvstore`` API and of ``dynago kv`` without ``--bucket``."""

MAX_BUCKET_BYTES = 255
"""Longest bucket name (UTF-8 bytes)."""


class KvError(Exception):
    """Base of the errors a KV request can end in; ``status`` is its HTTP status."""

    status = 500


class BadRequest(KvError):
    """The client's request breaks a rule (bad r/w, malformed body, bad key): nothing stored."""

    status = 400


class TooLarge(KvError):
    """Key or value over its configured bound: nothing stored."""

    status = 413


class Unavailable(KvError):
    """Not enough replicas answered in time. ``answered`` of ``needed``; nothing half-done
    is reported as done (a put may still have reached fewer than W replicas)."""

    status = 503

    def __init__(self, message: str, *, answered: int, needed: int) -> None:
        super().__init__(message)
        self.answered = answered
        self.needed = needed


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """A key inside a bucket (a namespace). Both are non-empty text."""

    bucket: str
    key: str

    def check(self, max_key_bytes: int) -> ObjectKey:
        """Return self if it may be stored, else raise BadRequest (empty, a NUL in the
        bucket) or TooLarge (a bucket over MAX_BUCKET_BYTES, a key over
        ``max_key_bytes``, both in UTF-8 bytes). The one key rule of every entry point."""
        bucket = self.bucket.encode()
        if not bucket:
            raise BadRequest("the bucket is empty")
        if len(bucket) > MAX_BUCKET_BYTES:
            raise TooLarge(f"the bucket is {len(bucket)} bytes, more than {MAX_BUCKET_BYTES}")
        if b"\x00" in bucket:
            raise BadRequest("the bucket holds a NUL character")
        raw = self.key.encode()
        if not raw:
            raise BadRequest("the key is empty")
        if len(raw) > max_key_bytes:
            raise TooLarge(f"the key is {len(raw)} bytes, more than {max_key_bytes}")
        return self

    def storage_key(self) -> bytes:
        """The engine's key: UTF-8 bucket, a NUL, UTF-8 key (buckets hold no NUL), so that
        one bucket's keys are one contiguous, ordered range."""
        return self.bucket.encode() + b"\x00" + self.key.encode()

    @staticmethod
    def from_storage_key(raw: bytes) -> ObjectKey:
        bucket, sep, key = raw.partition(b"\x00")
        if not sep:
            raise ValueError("not a storage key")
        return ObjectKey(bucket.decode(), key.decode())


@dataclass(frozen=True, slots=True)
class Content:
    """One sibling's payload, as a client wrote it."""

    value: bytes
    content_type: str = "application/octet-stream"
    meta: tuple[tuple[str, str], ...] = ()
    """User metadata (Riak's ``X-Riak-Meta-*``), names lower-cased, sorted."""
    deleted: bool = False
    """A tombstone: a delete, kept so that an old replica cannot bring the value back."""
    last_modified_us: int = 0
    """The coordinator's wall clock at the write, µs since the epoch: shown as
    ``Last-Modified`` and used by no rule (versions decide, never clocks)."""


@dataclass(frozen=True, slots=True)
class Sibling:
    """One sibling as a client sees it."""

    content: Content
    vtag: str
    """Stable short id of this sibling (Riak's vtag / ``Etag``)."""


@dataclass(frozen=True, slots=True)
class GetReply:
    """A read: every live sibling (tombstones left out unless asked) and the opaque
    causal context to send back with the next write. ``siblings`` empty: not found."""

    siblings: tuple[Sibling, ...]
    context: bytes
    node: str
    """The key's first preference-list node (Dynago's ``node`` field)."""

    @property
    def found(self) -> bool:
        return bool(self.siblings)


@dataclass(frozen=True, slots=True)
class PutReply:
    """A write acknowledged by W replicas; with ``return_body`` the object after it."""

    node: str
    """The key's first preference-list node."""
    context: bytes
    siblings: tuple[Sibling, ...] = ()
    """Only when the request asked for the body (``returnbody=true``)."""


@dataclass(frozen=True, slots=True)
class Quorum:
    """Per-request quorum parameters; None means the configured default."""

    r: int | None = None
    w: int | None = None
    pr: int | None = None
    pw: int | None = None


class KvFrontend(Protocol):
    """What the HTTP layer and in-process users ask of a node's KV service.

    Every coroutine runs on the caller's asyncio loop and never blocks it; each raises a
    ``KvError`` subclass (BadRequest, TooLarge, Unavailable) on failure.
    """

    async def get(self, key: ObjectKey, quorum: Quorum, *, include_deleted: bool = False,
                  ) -> GetReply: ...

    async def put(self, key: ObjectKey, content: Content, context: bytes | None,
                  quorum: Quorum, *, overwrite: bool = False, return_body: bool = False,
                  ) -> PutReply:
        """Store ``content``. ``context`` (from a read) replaces what that read saw; None
        adds a sibling; ``overwrite`` (Dynago's /kvstore) supersedes every version the
        coordinator holds."""
        ...

    async def delete(self, key: ObjectKey, context: bytes | None, quorum: Quorum) -> PutReply:
        """Write a tombstone with ``context`` (None: over what the coordinator holds)."""
        ...

    async def list_keys(self, bucket: str) -> list[str]:
        """Every live key of a bucket, over the whole cluster (costly: for operators)."""
        ...

    def first_node(self, key: ObjectKey) -> str:
        """The key's first preference-list node now (Dynago's ``node`` field)."""
        ...


QUORUM_ALL = -1
"""``Quorum`` value for Riak's ``all``: every one of the key's N replicas."""

QUORUM_MAJORITY = -2
"""``Quorum`` value for Riak's ``quorum``: a majority of N, ``N // 2 + 1``.

The HTTP layer cannot know N, so it passes Riak's two words as these sentinels and
``dynago.kv.requests.resolve_quorum``, which knows N, resolves them."""
