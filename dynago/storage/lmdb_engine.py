"""LmdbEngine: the store in LMDB (the ``lmdb`` package), one named database ``kv``.

Durability: the environment is opened with ``sync=True, metasync=True``, so a write
transaction's commit returns only after LMDB has flushed the data pages and then the
meta page to disk (fdatasync): one commit = one durable batch, however many writes it
holds. LMDB never overwrites live pages (copy-on-write B+tree), so a crash at any point
leaves the last committed transaction intact; there is no recovery step at open.

Map size: LMDB maps the file into memory with a fixed upper bound. It starts at
``INITIAL_MAP_SIZE`` (address space only: the file grows with the data, not with the
map) and doubles whenever a commit hits the bound (``MapFullError``), then retries the
same commit; the map survives reopening at the size the file needs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import lmdb

from dynago.storage.datadir import DataDir
from dynago.storage.engine import (
    DEFAULT_LIST_LIMIT,
    LMDB_MAX_KEY_BYTES,
    StorageError,
    Write,
    check_key,
    check_list_args,
    check_writes,
)

INITIAL_MAP_SIZE = 1 << 30
"""First upper bound of the memory map, 1 GiB; doubled each time a commit needs more."""

MAX_MAP_SIZE = 1 << 40
"""The map never grows past 1 TiB: a commit that would need more fails (StorageError)."""

DATA_FILES = ("data.mdb", "lock.mdb")
"""LMDB's files inside the data dir."""

_DB_NAME = b"kv"


class LmdbEngine:
    """An Engine over LMDB in the data dir ``path`` (created if missing).

    Raises StorageError if the dir cannot be used (see DataDir) or LMDB cannot open it.
    """

    kind = "lmdb"
    durable = True
    max_key_bytes = LMDB_MAX_KEY_BYTES

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._dir = DataDir(path, self.kind)
        try:
            self._env = lmdb.open(
                str(self._dir.path),
                map_size=INITIAL_MAP_SIZE,
                subdir=True,
                max_dbs=1,
                sync=True,
                metasync=True,
                lock=True,
                # Values are read whole and at random: read-ahead only fills the page cache.
                readahead=False,
                meminit=False,
            )
            self._db = self._env.open_db(_DB_NAME)
        except lmdb.Error as error:
            self._dir.close()
            raise StorageError(f"cannot open LMDB store in {self._dir.path}: {error}") from None
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        check_key(key, LMDB_MAX_KEY_BYTES)
        with self._env.begin(db=self._db) as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def commit(self, writes: Sequence[Write]) -> None:
        check_writes(writes, LMDB_MAX_KEY_BYTES)
        if not writes:
            return
        while True:
            try:
                with self._env.begin(write=True, db=self._db) as txn:
                    for key, value in writes:
                        if value is None:
                            txn.delete(key)
                        else:
                            txn.put(key, value)
                return
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as error:
                raise StorageError(f"LMDB commit failed in {self._dir.path}: {error}") from None

    def _grow(self) -> None:
        size = int(self._env.info()["map_size"])
        if size >= MAX_MAP_SIZE:
            raise StorageError(
                f"LMDB store in {self._dir.path} is full at its largest map size ({size} bytes)"
            )
        # Safe here: the map may be resized only when this process has no transaction
        # open, and the engine's owner is the only thread that opens any.
        self._env.set_mapsize(min(size * 2, MAX_MAP_SIZE))

    def keys(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[bytes]:
        return [key for key, _ in self._range(prefix, after, limit, values=False)]

    def items(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[tuple[bytes, bytes]]:
        return self._range(prefix, after, limit, values=True)

    def _range(self, prefix: bytes, after: bytes | None, limit: int,
               *, values: bool) -> list[tuple[bytes, bytes]]:
        check_list_args(limit)
        start = prefix if after is None or after < prefix else after
        found: list[tuple[bytes, bytes]] = []
        with self._env.begin(db=self._db) as txn, txn.cursor() as cursor:
            if not cursor.set_range(start):
                return found
            while True:
                key = bytes(cursor.key())
                if not key.startswith(prefix):
                    break
                if after is None or key > after:
                    found.append((key, bytes(cursor.value()) if values else b""))
                    if len(found) >= limit:
                        break
                if not cursor.next():
                    break
        return found

    def count(self, start: bytes = b"") -> int:
        with self._env.begin(db=self._db) as txn:
            if not start:
                return int(txn.stat(self._db)["entries"])
            with txn.cursor() as cursor:  # LMDB keeps no counts per range: walk it
                if not cursor.set_range(start):
                    return 0
                return sum(1 for _ in cursor.iternext(keys=True, values=False))

    def size_bytes(self) -> int:
        return self._dir.files_size(DATA_FILES)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._env.close()
        self._dir.close()
