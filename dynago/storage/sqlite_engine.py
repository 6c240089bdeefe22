"""SqliteEngine: the store in SQLite (standard library), one table ``kv``.

Durability: WAL journal mode with ``synchronous=FULL``, so a commit returns only after
its WAL frames are fsynced: one commit = one durable batch. (SQLite's default for WAL,
NORMAL, may lose the last commits on power loss; FULL does not.) Keys are BLOBs, which
SQLite orders with memcmp, the same byte order as the other engines.

Layout: an ordinary (rowid) table whose key is a unique index. Not ``WITHOUT ROWID``: such
a table is one index B-tree, and an index B-tree keeps at most about a quarter of a page
of a row in the page (about 1,000 bytes with SQLite's 4 KiB pages), the rest in overflow
pages of their own, so values of 1 KiB took 4.5 times their size on disk
(docs/performance.md, "Scale of the data"). A rowid table keeps a row in its leaf page up
to nearly a page. Stores made before keep their ``WITHOUT ROWID`` table: every statement
here works on both.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from dynago.storage.datadir import DataDir
from dynago.storage.engine import (
    DEFAULT_LIST_LIMIT,
    MAX_KEY_BYTES,
    StorageError,
    Write,
    check_key,
    check_list_args,
    check_writes,
    prefix_end,
)

DB_FILE = "kv.sqlite3"
DATA_FILES = (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm")
"""SQLite's files inside the data dir."""


class SqliteEngine:
    """An Engine over SQLite in the data dir ``path`` (created if missing).

    Raises StorageError if the dir cannot be used (see DataDir) or SQLite cannot open it.
    """

    kind = "sqlite"
    max_key_bytes = MAX_KEY_BYTES
    durable = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._dir = DataDir(path, self.kind)
        try:
            # Autocommit mode (isolation_level=None): transactions are explicit below.
            # The engine is made on one thread and used on its owner's (the actor's).
            self._db = sqlite3.connect(
                self._dir.path / DB_FILE, isolation_level=None, check_same_thread=False
            )
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal mode is {mode}, not wal")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        except sqlite3.Error as error:
            self._dir.close()
            raise StorageError(f"cannot open SQLite store in {self._dir.path}: {error}") from None
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        check_key(key)
        row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def commit(self, writes: Sequence[Write]) -> None:
        check_writes(writes)
        if not writes:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key, value in writes:
                    if value is None:
                        self._db.execute("DELETE FROM kv WHERE k = ?", (key,))
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value)
                        )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise StorageError(f"SQLite commit failed in {self._dir.path}: {error}") from None

    def keys(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[bytes]:
        rows = self._range("k", prefix, after, limit)
        return [bytes(row[0]) for row in rows]

    def items(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[tuple[bytes, bytes]]:
        rows = self._range("k, v", prefix, after, limit)
        return [(bytes(k), bytes(v)) for k, v in rows]

    def _range(self, columns: str, prefix: bytes, after: bytes | None,
               limit: int) -> list[Any]:
        check_list_args(limit)
        clauses, params = ["k >= ?"], [prefix]
        end = prefix_end(prefix)
        if end is not None:
            clauses.append("k < ?")
            params.append(end)
        if after is not None:
            clauses.append("k > ?")
            params.append(after)
        sql = f"SELECT {columns} FROM kv WHERE {' AND '.join(clauses)} ORDER BY k LIMIT ?"
        return self._db.execute(sql, (*params, limit)).fetchall()

    def count(self, start: bytes = b"") -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM kv WHERE k >= ?",
                                    (start,)).fetchone()[0])

    def size_bytes(self) -> int:
        return self._dir.files_size(DATA_FILES)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._db.close()
        self._dir.close()
