"""Anti-entropy's index on disk: one record per stored object, in the engine itself.

Pure (no I/O, no clock): the StorageActor calls ``AaeIndexer.derive`` on every batch it
commits and writes the records it returns **in the same transaction** as the objects, so
the index and the objects never disagree, not even after a crash. The AntiEntropyActor
keeps only the trees in memory (dynago.kv.tictac: 1024 segment hashes and counts per
partition), builds them at start from the records, and reads the records of the few
segments an exchange compares key by key. A node's memory therefore does not grow with
the number of keys it holds; its disk grows by one small record per key.

Layout (engine keys under NUL are node-local and never replicated):

* ``MARKER`` → ``marker(partitions)``: the records are complete for a ring of that many
  partitions. Written last by a rebuild; removed first by the next one.
* a record's key: ``RECORD_PREFIX`` + partition (2 bytes) + segment (2 bytes) + a
  16-byte digest of the storage key, so every record key has the same length
  (``RECORD_KEY_BYTES``, within every engine's key limit whatever the object's key) and
  the records of one segment are one contiguous range;
* its value: the object hash (8 bytes) + flags (1 byte: ``TOMBSTONE``) + the storage key.

A store written before this index existed, or with another partition count, has no
valid ``MARKER``: ``rebuild_step`` then clears the records and writes one per stored
object, a page per step, while the node keeps serving (each step is its own
transaction on the StorageActor's thread, and every commit in between keeps the records
of what it writes, so the finished index holds exactly the objects).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dynago.kv import version
from dynago.kv.model import ObjectKey
from dynago.kv.reap import is_tombstone
from dynago.kv.ring import partition_of
from dynago.kv.tictac import SEGMENTS, object_hash, segment_of
from dynago.storage.engine import Write

NODE_LOCAL = b"\x00"
"""Engine keys starting with it are the node's own (hints, progress, this index)."""

RECORD_PREFIX = b"\x00a\x00i"
MARKER = b"\x00a\x00m"
DIGEST_BYTES = 16
RECORD_KEY_BYTES = len(RECORD_PREFIX) + 4 + DIGEST_BYTES
TOMBSTONE = 1
"""Flag: the object is a tombstone (a candidate for the reap)."""

REBUILD_PAGE = 1000
"""Records cleared, or objects indexed, per rebuild step (one transaction)."""

_HEAD = 9  # hash + flags


@dataclass(frozen=True, slots=True)
class Record:
    """One stored object as the index knows it."""

    key: bytes
    """The object's storage key."""
    partition: int
    segment: int
    obj_hash: int
    tombstone: bool


@dataclass(frozen=True, slots=True)
class IndexChange:
    """What a commit changed for one object: its hash went from ``old`` to ``new``
    (None: absent); ``tombstone`` says whether the new object is one."""

    record_key: bytes
    key: bytes
    partition: int
    segment: int
    old: int | None
    new: int | None
    tombstone: bool


@dataclass(frozen=True, slots=True)
class RebuildCursor:
    """Where a rebuild is: clearing old records (``clearing``) after ``after``, or
    indexing the objects whose keys start with byte ``first``, after ``after``."""

    clearing: bool
    first: int = 1
    after: bytes | None = None


Items = Callable[..., list[tuple[bytes, bytes]]]
"""An engine's ``items(prefix, after=..., limit=...)``."""


def marker(partitions: int) -> bytes:
    """The MARKER value of a complete index for a ring of ``partitions``."""
    return b"dynago aae index 1 partitions=%d" % partitions


def segment_prefix(partition: int, segment: int) -> bytes:
    """The first bytes of every record of ``segment`` of ``partition``."""
    return RECORD_PREFIX + partition.to_bytes(2, "big") + segment.to_bytes(2, "big")


def partition_prefix(partition: int) -> bytes:
    return RECORD_PREFIX + partition.to_bytes(2, "big")


def record_key(partition: int, segment: int, key: bytes) -> bytes:
    """The record key of storage key ``key``."""
    digest = hashlib.blake2b(key, digest_size=DIGEST_BYTES, person=b"dynago-aaeidx").digest()
    return segment_prefix(partition, segment) + digest


def encode_value(obj_hash: int, tombstone: bool, key: bytes) -> bytes:
    return obj_hash.to_bytes(8, "big") + bytes((TOMBSTONE if tombstone else 0,)) + key


def decode(raw_key: bytes, raw_value: bytes) -> Record:
    """The record stored under ``raw_key``. Raises ValueError if it is not one."""
    if (len(raw_key) != RECORD_KEY_BYTES or not raw_key.startswith(RECORD_PREFIX)
            or len(raw_value) <= _HEAD):
        raise ValueError("not an anti-entropy index record")
    at = len(RECORD_PREFIX)
    partition = int.from_bytes(raw_key[at:at + 2], "big")
    segment = int.from_bytes(raw_key[at + 2:at + 4], "big")
    if segment >= SEGMENTS or raw_value[8] & ~TOMBSTONE:
        raise ValueError("an anti-entropy index record out of range")
    return Record(raw_value[_HEAD:], partition, segment,
                  int.from_bytes(raw_value[:8], "big"), bool(raw_value[8] & TOMBSTONE))


def holds_tombstone(value: bytes) -> bool:
    try:
        return is_tombstone(version.decode(value))
    except ValueError:
        return False  # not an object this node can read: hashed, never reaped


class AaeIndexer:
    """The index rules for a ring of ``partitions`` partitions."""

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError(f"a ring has at least one partition, not {partitions}")
        self.partitions = partitions
        self.marker = marker(partitions)

    def locate(self, key: bytes) -> tuple[int, int] | None:
        """(partition, segment) of an object's storage key; None for a node-local key or
        one that names no object."""
        if key.startswith(NODE_LOCAL):
            return None
        try:
            partition = partition_of(ObjectKey.from_storage_key(key), self.partitions)
        except (ValueError, UnicodeDecodeError):
            return None
        return partition, segment_of(key)

    def is_current(self, stored_marker: bytes | None) -> bool:
        """True if a store whose MARKER holds ``stored_marker`` has a complete index."""
        return stored_marker == self.marker

    def derive(self, writes: Sequence[Write], get: Callable[[bytes], bytes | None]
               ) -> tuple[list[Write], list[IndexChange]]:
        """The record writes that go with a batch's ``writes`` (each key once, its final
        value; ``get`` reads the committed store) and what they change."""
        extra: list[Write] = []
        changes: list[IndexChange] = []
        for key, value in writes:
            where = self.locate(key)
            if where is None:
                continue
            partition, segment = where
            rkey = record_key(partition, segment, key)
            before = get(rkey)
            old: int | None = None
            if before is not None:
                try:
                    old = decode(rkey, before).obj_hash
                except ValueError:
                    old = None  # skipped by the scan too: it never reached a tree
            if value is None:
                if before is not None:
                    extra.append((rkey, None))
                new, tombstone = None, False
            else:
                new, tombstone = object_hash(value), holds_tombstone(value)
                record = encode_value(new, tombstone, key)
                if record != before:
                    extra.append((rkey, record))
            if old != new:
                changes.append(IndexChange(rkey, key, partition, segment, old, new, tombstone))
        return extra, changes

    def rebuild_step(self, cursor: RebuildCursor | None, items: Items
                     ) -> tuple[list[Write], RebuildCursor | None]:
        """One step of a rebuild from ``cursor`` (None: the first): the writes to commit
        in one transaction and the next cursor (None: done, the MARKER is among the
        writes)."""
        if cursor is None:
            return [(MARKER, None)], RebuildCursor(clearing=True)
        if cursor.clearing:
            page = items(RECORD_PREFIX, after=cursor.after, limit=REBUILD_PAGE)
            writes: list[Write] = [(k, None) for k, _ in page]
            if len(page) < REBUILD_PAGE:
                return writes, RebuildCursor(clearing=False)
            return writes, RebuildCursor(clearing=True, after=page[-1][0])
        first, after = cursor.first, cursor.after
        page = items(bytes((first,)), after=after, limit=REBUILD_PAGE)
        writes = []
        for key, value in page:
            where = self.locate(key)
            if where is not None:
                writes.append((record_key(*where, key),
                               encode_value(object_hash(value), holds_tombstone(value), key)))
        if len(page) == REBUILD_PAGE:
            return writes, RebuildCursor(clearing=False, first=first, after=page[-1][0])
        if first < 0xFF:
            return writes, RebuildCursor(clearing=False, first=first + 1)
        writes.append((MARKER, self.marker))
        return writes, None
