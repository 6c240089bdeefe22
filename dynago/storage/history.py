"""How each recently written key got its value on this node: a bounded write history.

The StorageActor notes one ``WriteRecord`` per committed write that names its origin
(``dynago.actors.storage_messages.Origin``): written as coordinator, merged from a
replica put, a read repair, a hint, anti-entropy, a handoff. ``dynago kv explain`` shows
it beside the versions each replica holds: the versions are the durable truth, the
history is how they arrived.

It is memory only and bounded: the ``max_keys`` most recently written keys, the last
``per_key`` records of each (older keys and records are forgotten, oldest first; a
restart forgets everything). Pure: the caller passes the time in.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

DEFAULT_MAX_KEYS = 4096
"""Keys remembered: ~4096 x 8 records of ~100 bytes is ~3 MiB at most."""

DEFAULT_PER_KEY = 8
"""Records remembered per key."""


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One committed write of a key.

    Attributes:
        at: wall-clock time of the commit, seconds since the epoch.
        how: what wrote it ("coordinated", "replica", "read repair", "hint",
            "hint handed back", "anti-entropy", "handoff", "reaped", ...).
        peer: the node it came from ("" for this node's own doing).
        size: bytes stored (0: the key was deleted from the engine).
    """

    at: float
    how: str
    peer: str
    size: int


class WriteHistory:
    """The last ``per_key`` writes of the ``max_keys`` most recently written keys."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, per_key: int = DEFAULT_PER_KEY) -> None:
        if max_keys < 1 or per_key < 1:
            raise ValueError("max_keys and per_key are at least 1")
        self._max_keys = max_keys
        self._per_key = per_key
        self._keys: OrderedDict[bytes, deque[WriteRecord]] = OrderedDict()

    def note(self, key: bytes, record: WriteRecord) -> None:
        """Remember ``record`` as the newest write of ``key``."""
        records = self._keys.get(key)
        if records is None:
            records = self._keys[key] = deque(maxlen=self._per_key)
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        records.append(record)

    def of(self, key: bytes) -> tuple[WriteRecord, ...]:
        """The remembered writes of ``key``, oldest first (empty if none)."""
        return tuple(self._keys.get(key, ()))

    def __len__(self) -> int:
        return len(self._keys)
