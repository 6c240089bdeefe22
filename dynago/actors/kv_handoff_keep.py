"""The HandoffActor's keeping half: what happens to this node's copy while and after a
partition is handed over.

* **Writes during a handoff**: a write this node commits to a key its scan has already
  passed is forwarded to the target at once (a one-object chunk), so no write falls
  behind the scan.
* **Dropping the copy**: once every entrant acknowledged all of a partition this node no
  longer replicates, its copy is deleted, a page of keys at a time (never while leaving:
  a leaving node keeps its data).
* **Reading**: the snapshot of counters and transfers for ``/v1/stats`` and ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dynago.actors.kv_handoff_messages import (
    Committed,
    Dropped,
    HandoffSnapshot,
    InboundView,
    TransferView,
)
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import Delete, ListKeys
from dynago.kv import handoff
from dynago.kv.handoff_messages import HandoffChunk
from dynago.kv.model import ObjectKey
from dynago.kv.ring import Ring
from dynago.kv.stats import KvStats

log = logging.getLogger(__name__)

PAGE_KEYS = 1000
"""Keys per scan page (one ListKeys; values are read with them)."""


@dataclass
class Transfer:
    """One partition being handed to one target: its progress and scan position."""

    partition: int
    target: str
    stays: bool
    leaving: bool
    progress: handoff.TransferProgress
    scanned: bytes | None = None
    """The last key put in this transfer's buffer or a chunk (the scan skips up to it)."""
    buffer: list[tuple[ObjectKey, bytes]] = field(default_factory=list)
    buffer_bytes: int = 0
    keys_acked: int = 0
    retrying: bool = False


def ignore(_result: object) -> None:
    """A storage reply nobody waits for."""
    return None


class CopyKeeper:
    """Mixin of HandoffActor (which provides these attributes)."""

    name: str
    ring: Ring
    storage: Any
    peers: Any
    stats: KvStats
    inbound: InboundView
    actor_ref: Any
    _transfers: dict[tuple[int, str], Transfer]
    _seq: int
    _has_objects: bool | None
    _leave_reply: Callable[[int], None] | None
    _dropping: set[int]
    _drop_busy: bool

    # ------------------------------------------------------------ writes during handoff

    def _forward(self, committed: Committed) -> None:
        if not self._has_objects and any(
                v is not None and handoff.is_object_key(k) for k, v in committed.writes):
            self._has_objects = True
        if not self._transfers:
            return
        parts = self.ring.partitions
        for key, value in committed.writes:
            if value is None or not handoff.is_object_key(key):
                continue
            p = handoff.storage_partition(key, parts)
            for t in self._transfers.values():
                if t.partition == p and t.scanned is not None and key <= t.scanned:
                    try:
                        okey = ObjectKey.from_storage_key(key)
                    except (ValueError, UnicodeDecodeError):
                        break
                    self._seq += 1  # its ack matches no chunk and is ignored
                    self.peers.send(t.target, HandoffChunk(self._seq, p, ((okey, value),)))
                    self.stats.count("kv_handoff_writes_forwarded")

    # ------------------------------------------------------------ dropping a copy

    def _maybe_drop(self, p: int) -> None:
        if self._leave_reply is not None or self.name in self.ring.preference_list(p):
            return
        self._dropping.add(p)
        if not self._drop_busy:
            self._drop_page(None)

    def _drop_page(self, after: bytes | None) -> None:
        self._drop_busy = True
        parts, ref = frozenset(self._dropping), self.actor_ref
        storage, count = self.storage, self.ring.partitions

        def reply(keys: list[bytes]) -> None:
            # On the StorageActor's thread: its Deletes are queued behind this listing.
            doomed = [k for k in keys if handoff.is_object_key(k)
                      and handoff.storage_partition(k, count) in parts]
            for k in doomed:
                storage.tell(Delete(k, reply=ignore, on_error=ignore))
            tell_quietly(ref, Dropped(parts, keys[-1] if keys else None, len(doomed),
                                      len(keys) >= PAGE_KEYS))

        self.storage.tell(ListKeys(b"", after=after, limit=PAGE_KEYS, reply=reply))

    def _dropped(self, page: Dropped) -> None:
        self.stats.count("kv_handoff_keys_dropped", page.deleted)
        if page.full:
            self._drop_page(page.last_key)
            return
        self._dropping -= page.partitions
        self._drop_busy = False
        for p in sorted(page.partitions):
            log.info("handoff: dropped this node's copy of partition %d", p)
        if self._dropping:
            self._drop_page(None)

    # ------------------------------------------------------------ reading

    def _pending(self) -> int:
        return len(self._transfers)

    def snapshot(self) -> HandoffSnapshot:
        views = []
        for t in self._transfers.values():
            state = ("retrying" if t.retrying else
                     "waiting" if t.progress.scan_done else "scanning")
            views.append(TransferView(t.partition, t.target, t.keys_acked,
                                      t.progress.in_flight, state, t.leaving))
        counters = dict(self.stats.counters)
        counters["kv_handoffs_pending"] = len(views)
        counters["kv_handoffs_inbound"] = sum(len(s) for s in self.inbound.current.values())
        return HandoffSnapshot(counters, tuple(sorted(views, key=lambda v: (v.partition,
                                                                            v.target))))
