"""The AntiEntropyActor's own messages (its wire messages are dynago.kv.aae_messages) and
the state of the exchange it is running."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dynago.kv.aae_index import IndexChange, RebuildCursor
from dynago.kv.aae_messages import AaeKeys, AaeKeysAsk


@dataclass(frozen=True, slots=True)
class IndexChanged:
    """Private: what a commit changed in the index, from the StorageActor's listener."""

    changes: tuple[IndexChange, ...]


@dataclass(frozen=True, slots=True)
class MarkerRead:
    """Private: the index's MARKER as stored (None: none), read at start."""

    value: bytes | None


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """Private: a rebuild step committed (``cursor``: the next, None: done) or failed."""

    cursor: RebuildCursor | None
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Scanned:
    """Private: a page of index records read while the trees are built (``failed``: the
    read failed, so the page is read again)."""

    items: tuple[tuple[bytes, bytes], ...]
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Held:
    """Private: the records an exchange step asked the store for (``for_ask``: to answer
    a peer's AaeKeysAsk; else the keys of the exchange ``exchange_id`` to compare)."""

    exchange_id: int
    items: tuple[tuple[bytes, bytes], ...] | None
    sender: str = ""
    for_ask: AaeKeysAsk | None = None


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
    theirs: AaeKeys | None = None
    """The peer's keys, kept while this node's are read from the store."""
