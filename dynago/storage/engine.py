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

Why SQLite is the default is in ``DEFAULT_ENGINE``'s docstring (below), with the
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

ENGINES = ("sqlite", "lmdb")
"""The durable engines a data dir can hold, by name, the default first."""

DEFAULT_ENGINE = "sqlite"
"""The engine a node uses unless configured otherwise: SQLite (WAL, ``synchronous=FULL``).

Chosen on six runs of ``python -m bench.storage_engines`` on a 2-core VM (ext4 on a
virtio disk shared with other busy processes: in runs 1-3 a sync took ~0.2 ms, in runs
4-6 others' I/O made it ~4 ms). p50 figures as the range over the runs, "quiet / busy
disk" where the two regimes differ; docs/performance/storage_engines.json is run 6:

----------------------------------------------  ----------------------  ----------------------
figure (100-byte values)                        lmdb                    sqlite
----------------------------------------------  ----------------------  ----------------------
durable commit of 1 write                       0.39-0.49 / 6.7-7.9 ms  0.21-1.7 / 1.1-4.0 ms
durable commit of 16 writes                     0.50-0.83 / 4.7-7.9 ms  0.42-1.3 / 0.6-3.9 ms
durable commit of 256 writes                    0.88-1.27 / 7.5-7.6 ms  2.4-3.7 / 3.7-7.5 ms
random get over 100,000 keys, p50 / p99         2.1-3.8 / 5-9 us        10-16 / 36-57 us
bytes on disk per 100,000 keys                  13.8 MB                 17.7 MB
write 100,000 keys in commits of 1000           0.34-1.05 s             0.85-1.91 s
StorageActor, 16 writers one write each: w/s    5.7k-6.4k / 1.7k-2.0k   5.7k-6.7k / 2.5k-3.2k
  the same, acknowledgement p50                 2.3-2.4 / 5.5-8.1 ms    2.2-2.3 / 3.8-4.4 ms
StorageActor, 16 x 2000 writes told at once     15k-18k w/s             11k-13k w/s
----------------------------------------------  ----------------------  ----------------------

Why SQLite: a commit costs SQLite one disk sync (the WAL's fdatasync) and LMDB two (an
fdatasync of the data pages, then the meta page written through an O_DSYNC descriptor;
strace shows the 2 writes per commit), so as soon as a sync is not free LMDB takes twice
as long to make a write durable (runs 4-6), and every put waits for W such commits.
Through the StorageActor with 16 concurrent writers SQLite acknowledged 1.06-1.9x as
many writes per second in 5 of 6 runs, at a lower p50 in all six. LMDB's wins are real
but weigh less here: its reads are 3-7x faster, but at 2-16 us both are far below the
actor's own cost per message; it is a fifth smaller on disk; it commits saturating
bursts of 256-write batches 1.15-1.6x faster (handoff, benchmarks). LMDB stays available
(``open_engine("lmdb", dir)``) for read-heavy nodes.
"""

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

    def items(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[tuple[bytes, bytes]]:
        """Like ``keys``, with each key's value: ``(key, value)`` pairs in byte order."""
        ...

    def count(self, start: bytes = b"") -> int:
        """How many keys are stored (those from ``start`` on in byte order, if given:
        ``count(b"\x01")`` skips the node-local keys under NUL)."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store takes: its files on disk, or its keys and values in memory."""
        ...

    def close(self) -> None:
        """Release the store (files, locks). Safe to call twice; nothing works after."""
        ...
