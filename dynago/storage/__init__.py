"""The node's storage: engines behind one contract (dynago.storage.engine.Engine).

``open_engine(kind, data_dir)`` is how a node gets its engine; the StorageActor
(dynago.actors.storage) owns it from then on.
"""

from __future__ import annotations

from dynago.storage.engine import (
    DEFAULT_ENGINE,
    ENGINES,
    MAX_KEY_BYTES,
    Engine,
    StorageError,
    Write,
)
from dynago.storage.lmdb_engine import LmdbEngine
from dynago.storage.memory_engine import MemoryEngine
from dynago.storage.sqlite_engine import SqliteEngine


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
