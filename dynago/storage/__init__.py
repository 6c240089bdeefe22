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
