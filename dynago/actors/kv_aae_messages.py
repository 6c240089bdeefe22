"""The AntiEntropyActor's own messages (its wire messages are dynago.kv.aae_messages) and
the state of the exchange it is running."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dynago.storage.engine import Write


@dataclass(frozen=True, slots=True)
class Committed:
    """Private: a commit's writes, from the StorageActor's listener."""

    writes: tuple[Write, ...]


@dataclass(frozen=True, slots=True)
class Listed:
    """Private: a page of the keys listed while the trees are built."""

    keys: tuple[bytes, ...]
    full: bool


@dataclass(frozen=True, slots=True)
class Scanned:
    """Private: one listed key's stored value, read to hash it."""

    key: bytes
    data: bytes | None


@dataclass(frozen=True, slots=True)
class Tick:
    """Private: time for the next exchange."""


@dataclass(frozen=True, slots=True)
class Expired:
    """Private: exchange ``exchange_id`` waited too long for its peer."""

    exchange_id: int


@dataclass(frozen=True, slots=True)
class GetAaeStats:
    """Ask: the anti-entropy counters (``kv_aae_lag_s`` a gauge, the rest counts)."""


@dataclass
class Exchange:
    """The exchange in progress: which partition, with whom, at which level."""

    exchange_id: int
    partition: int
    peer: str
    level: int
    timer: Any = None
    segments: tuple[int, ...] = ()
    unsure: frozenset[int] = frozenset()
    """Segments found differing and left for a later exchange: no confirmation there."""
