"""The storage engine contract: an ordered map of bytes to bytes, committed in batches.

An ``Engine`` is owned by one thread at a time (the node's StorageActor); none of the
implementations is safe for concurrent use. Values are opaque bytes: the layers above
encode and decode objects, the engine never looks inside.

Keys are 1 to ``max_key_bytes`` bytes (an attribute of each engine: ``MAX_KEY_BYTES``,
2 KiB, for SQLite and memory; LMDB's compiled-in 511) and are ordered as byte strings
(memcmp), so the keys sharing a prefix form one contiguous range.

Implementations (see ``dynago.storage.open_engine``):

* ``SqliteEngine`` (dynago.storage.sqlite_engine), the default: SQLite in WAL mode;
* ``LmdbEngine`` (dynago.storage.lmdb_engine): a B+tree in one memory map;
* ``MemoryEngine`` (dynago.storage.memory_engine): a dict, not durable.

Why SQLite is the default is in ``dynago.storage.DEFAULT_ENGINE``'s docstring, with the
numbers of ``python -m bench.storage_engines`` on this kind of machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

MAX_KEY_BYTES = 2048
"""Longest key, in bytes, of the SQLite and memory engines: room for a 1 KiB client key
(the KV default bound) with its bucket."""

LMDB_MAX_KEY_BYTES = 511
"""Longest key of the LMDB engine: LMDB's compiled-in limit."""

DEFAULT_LIST_LIMIT = 1000
"""``Engine.keys`` returns at most this many keys unless told otherwise."""

Write = tuple[bytes, bytes | None]
"""One write of a batch: ``(key, value)`` stores ``value``; ``(key, None)`` deletes the key."""


class StorageError(Exception):
    """The storage could not do what was asked: a data dir that cannot be opened, is in
    use, or was written by another engine; or an I/O failure in a commit. The message says
    which, in words an operator can act on."""


def check_key(key: bytes, limit: int = MAX_KEY_BYTES) -> None:
    """Raise ValueError unless ``key`` is bytes of 1 to ``limit`` bytes."""
    if not isinstance(key, bytes):
        raise ValueError(f"a storage key is bytes, not {type(key).__name__}")
    if not key:
        raise ValueError("a storage key cannot be empty")
    if len(key) > limit:
        raise ValueError(f"a storage key is at most {limit} bytes, not {len(key)}")


def check_writes(writes: Sequence[Write], limit: int = MAX_KEY_BYTES) -> None:
    """Raise ValueError if any write of the batch is malformed (then nothing is applied)."""
    for key, value in writes:
        check_key(key, limit)
        if value is not None and not isinstance(value, bytes):
            raise ValueError(f"a stored value is bytes or None, not {type(value).__name__}")


def check_list_args(limit: int) -> None:
    """Raise ValueError unless ``limit`` is a positive number of keys."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``;
    None if there is none (an empty prefix, or one of only 0xff bytes)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class Engine(Protocol):
    """An ordered, durable map of bytes to bytes. One owner thread at a time."""

    kind: str
    """``"lmdb"``, ``"sqlite"`` or ``"memory"``."""

    durable: bool
    """True if a returned ``commit`` survives a crash of the process or the machine."""

    max_key_bytes: int
    """Longest key this engine stores (longer ones: ValueError, nothing applied)."""

    def get(self, key: bytes) -> bytes | None:
        """The value committed under ``key``, or None if there is none."""
        ...

    def commit(self, writes: Sequence[Write]) -> None:
        """Apply every write in one transaction, in order (a later write of the same key
        wins); ``None`` deletes (a missing key is no error).

        All or nothing, and durable on return: a durable engine syncs to disk once for
        the whole batch. Raises ValueError on a malformed write (nothing applied) and
        StorageError if the transaction failed (nothing applied).
        """
        ...

    def keys(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[bytes]:
        """Up to ``limit`` keys starting with ``prefix``, in byte order, each greater than
        ``after`` if given (pass the last key of a page to get the next page)."""
        ...

    def count(self) -> int:
        """How many keys are stored."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store takes: its files on disk, or its keys and values in memory."""
        ...

    def close(self) -> None:
        """Release the store (files, locks). Safe to call twice; nothing works after."""
        ...
