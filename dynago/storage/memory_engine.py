"""MemoryEngine: the store in a dict. Not durable: everything is gone when the process
ends (a node using it logs one warning saying so). For tests and throw-away nodes.

``keys`` sorts the matching keys on every call (O(n log n) for n stored keys): fine for
the sizes this engine is meant for.
"""

from __future__ import annotations

from collections.abc import Sequence

from dynago.storage.engine import (
    DEFAULT_LIST_LIMIT,
    MAX_KEY_BYTES,
    StorageError,
    Write,
    check_key,
    check_list_args,
    check_writes,
)


class MemoryEngine:
    """An Engine over a dict; ``size_bytes`` is the bytes of its keys and values."""

    kind = "memory"
    max_key_bytes = MAX_KEY_BYTES
    durable = False

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._bytes = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the memory store is closed")

    def get(self, key: bytes) -> bytes | None:
        check_key(key)
        self._check_open()
        return self._data.get(key)

    def commit(self, writes: Sequence[Write]) -> None:
        check_writes(writes)
        self._check_open()
        for key, value in writes:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= len(key) + len(old)
            if value is not None:
                self._data[key] = value
                self._bytes += len(key) + len(value)

    def keys(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[bytes]:
        check_list_args(limit)
        self._check_open()
        matching = sorted(
            key
            for key in self._data
            if key.startswith(prefix) and (after is None or key > after)
        )
        return matching[:limit]

    def items(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[tuple[bytes, bytes]]:
        return [(key, self._data[key]) for key in self.keys(prefix, after=after, limit=limit)]

    def count(self, start: bytes = b"") -> int:
        return len(self._data) if not start else sum(k >= start for k in self._data)

    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        self._closed = True
