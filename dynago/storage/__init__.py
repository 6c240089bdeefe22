"""The node's storage: engines behind one contract (dynago.storage.engine.Engine).

``open_engine(kind, data_dir)`` is how a node gets its engine; the StorageActor
(dynago.actors.storage) owns it from then on.
"""

from __future__ import annotations

from dynago.storage.engine import MAX_KEY_BYTES, Engine, StorageError, Write
from dynago.storage.lmdb_engine import LmdbEngine
from dynago.storage.memory_engine import MemoryEngine
from dynago.storage.sqlite_engine import SqliteEngine

ENGINES = ("lmdb", "sqlite")
"""The durable engines a data dir can hold, by name."""

DEFAULT_ENGINE = "lmdb"
"""The engine a node uses unless configured otherwise.

Chosen on ``python -m bench.storage_engines``, four runs on a 2-core VM (ext4 on a
virtio disk, shared with other busy processes), p50 as the range over the runs (run 4 had
a disk slowed by others' I/O for both engines; docs/performance/storage_engines.json is
run 3):

==========================================  ===============  ================
figure (100-byte values)                    lmdb             sqlite (WAL, FULL)
==========================================  ===============  ================
durable commit of 1 write, p50              0.39-0.49 ms     0.21-1.70 ms
durable commit of 16 writes, p50            0.50-0.83 ms     0.42-1.26 ms
durable commit of 256 writes, p50           0.88-1.27 ms     2.36-3.65 ms
writes/s in commits of 256                  169k-253k        57k-100k
random get over 100,000 keys, p50 / p99     2.2-3.8 / 5-9 us 11-16 / 42-57 us
bytes on disk per 100,000 keys              13.8 MB          17.7 MB
write 100,000 keys (commits of 1000)        0.34-0.39 s      0.85-1.76 s
StorageActor, 16 writers: writes/commit     11.7-12.6        15.4-15.6
StorageActor, 16 writers: writes/s          5.7k-6.4k        5.7k-6.7k
==========================================  ===============  ================

LMDB wins on what the store does most: every get and every put (an Update reads
before it writes) is a random read, 3-7x faster in LMDB; batches of the size group
commit produces under load commit 2-2.5x faster; handoff's bulk writes 2-5x faster; a
fifth less disk. SQLite wins only a lone one-write commit on a quiet disk (0.21 vs 0.4
ms), which is well below a network round trip. Through the actor, both reach the same
writes/s: there the actor's per-message Python work is the bound, not the engine.
Both sync once per commit (strace: one fdatasync per commit for each; LMDB also writes
its meta page through an O_DSYNC descriptor).
"""


def open_engine(kind: str, data_dir: str | None) -> Engine:
    """The engine of kind ``kind`` (``"lmdb"`` or ``"sqlite"``) over ``data_dir``.

    ``data_dir`` None gives a MemoryEngine whatever ``kind`` is (not durable: the caller
    logs a warning). Raises ValueError for an unknown kind, and StorageError if the dir
    cannot be created or opened, is locked by another node, or holds another engine's
    data (its format marker says which).
    """
    if kind not in ENGINES:
        raise ValueError(f"unknown storage engine {kind!r}; expected one of {', '.join(ENGINES)}")
    if data_dir is None:
        return MemoryEngine()
    if kind == "lmdb":
        return LmdbEngine(data_dir)
    return SqliteEngine(data_dir)


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "MAX_KEY_BYTES",
    "Engine",
    "LmdbEngine",
    "MemoryEngine",
    "SqliteEngine",
    "StorageError",
    "Write",
    "open_engine",
]
