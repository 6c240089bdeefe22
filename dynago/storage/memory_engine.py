"""MemoryEngine: the store in a dict. Not durable: everything is gone when the process
ends (a node using it logs one warning saying so). For tests and throw-away nodes.

The keys are also kept in one sorted list, so that a listing is a binary search and a
walk (O(log n + k)), as in the durable engines' B-trees; adding or removing a key moves
the list's tail (a memmove: microseconds at 100,000 keys), fine for the sizes this engine
is meant for.
"""

from __future__ import annotations

import bisect
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
        self._order: list[bytes] = []  # the keys of _data, sorted
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
                if value is None:
                    del self._order[bisect.bisect_left(self._order, key)]
            elif value is not None:
                bisect.insort(self._order, key)
            if value is not None:
                self._data[key] = value
                self._bytes += len(key) + len(value)

    def keys(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[bytes]:
        check_list_args(limit)
        self._check_open()
        order = self._order
        at = (bisect.bisect_right(order, after) if after is not None and after >= prefix
              else bisect.bisect_left(order, prefix))
        found: list[bytes] = []
        while at < len(order) and len(found) < limit and order[at].startswith(prefix):
            found.append(order[at])
            at += 1
        return found

    def items(
        self, prefix: bytes, *, after: bytes | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[tuple[bytes, bytes]]:
        return [(key, self._data[key]) for key in self.keys(prefix, after=after, limit=limit)]

    def count(self, start: bytes = b"") -> int:
        return len(self._order) - bisect.bisect_left(self._order, start)

    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        self._closed = True
