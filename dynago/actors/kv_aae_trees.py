"""The AntiEntropyActor's trees (mixin of dynago.actors.kv_aae): built at start from the
index records on disk (dynago.kv.aae_index), rebuilding them first for a store without
a current marker, and kept up to date from the StorageActor's index changes.

* **Start**: WatchIndex first, then Read(MARKER): the store answers in order on one
  thread, so every later commit is either in a page the scan reads or told after it.
* **Rebuild** (no current marker): RebuildIndex steps until the cursor is None; a
  failed step is retried at the next tick.
* **Scan**: ListItems of the records, SCAN_PAGE at a time, into each partition's
  ``PartitionTree`` and the tombstones; then ``built``.
* **Changes**: applied once built, or before that only if the scan already passed their
  record (the scan sees the others): every object counts once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from dynago.actors.kv_aae_messages import IndexChanged, MarkerRead, Rebuilt, Scanned
from dynago.actors.kv_aae_serve import answer, failure
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import ListItems, Read, RebuildIndex, WatchIndex
from dynago.kv import aae_index
from dynago.kv.aae_index import AaeIndexer, IndexChange, RebuildCursor
from dynago.kv.model import ObjectKey
from dynago.kv.ring import partition_of
from dynago.kv.tictac import PartitionTree

log = logging.getLogger(__name__)

SCAN_PAGE = 5000
"""Index records read per page while the trees are built."""


class AaeTrees:
    """Mixin of AntiEntropyActor (which provides what is annotated here)."""

    storage: Any
    keeper: Any
    actor_ref: Any
    indexer: AaeIndexer
    trees: dict[int, PartitionTree]
    tombstones: dict[int, dict[bytes, int]]
    confirmed: dict[bytes, dict[str, int]]
    counts: dict[str, int]
    built: bool
    _scanned: bytes | None
    _stalled: Any

    def start_trees(self) -> None:
        """Watch the index, then read its marker: the trees are built from there."""
        ref = self.actor_ref

        def listener(changes: list[IndexChange]) -> None:  # on the StorageActor's thread
            tell_quietly(ref, IndexChanged(tuple(changes)))

        # Watch first, then read: the store answers in order on one thread, so every
        # commit after the watch is either in a page the scan reads or told after it.
        self.storage.tell(WatchIndex(listener))
        self.storage.tell(Read(aae_index.MARKER, reply=answer(ref, MarkerRead),
                               on_error=failure(ref, MarkerRead)))

    def index_changed(self, message: IndexChanged) -> None:
        for change in message.changes:
            if self.built or (self._scanned is not None
                              and change.record_key <= self._scanned):
                self._changed(change)

    def rebuilt(self, message: Rebuilt) -> None:
        if message.failed:
            log.error("aae: a step of the index rebuild failed; retried later")
            self._stalled = lambda c=message.cursor: self._rebuild(c)
        elif message.cursor is None:
            log.info("aae: index rebuilt")
            self._scan()
        else:
            self._rebuild(message.cursor)

    def _rebuild(self, cursor: RebuildCursor | None) -> None:
        ref = self.actor_ref
        self.storage.tell(RebuildIndex(cursor, reply=answer(ref, Rebuilt),
                                       on_error=failure(ref, Rebuilt, cursor, value=True)))

    def _scan(self) -> None:
        ref = self.actor_ref
        self.storage.tell(ListItems(
            (aae_index.RECORD_PREFIX,), limit=SCAN_PAGE, after=self._scanned,
            reply=lambda items: tell_quietly(ref, Scanned(tuple(items))),
            on_error=lambda _exc: tell_quietly(ref, Scanned((), failed=True))))

    def marker_read(self, stored: bytes | None) -> None:
        if self.indexer.is_current(stored):
            self._scan()
            return
        self.counts["kv_aae_index_rebuilds"] += 1
        log.info("aae: this store's index is %s: rebuilding it from the stored objects",
                 "missing" if stored is None else "for another ring size")
        self._rebuild(None)

    def scanned(self, message: Scanned) -> None:
        if message.failed:
            log.error("aae: reading the index failed; retried later")
            self._stalled = self._scan
            return
        partitions = self.keeper.partitions
        for raw_key, raw_value in message.items:
            try:
                record = aae_index.decode(raw_key, raw_value)
                if record.partition >= partitions:
                    raise ValueError("partition out of range")
            except ValueError:
                self.counts["kv_aae_records_dropped"] += 1
                continue
            self.trees.setdefault(record.partition, PartitionTree()).update(
                record.key, None, record.obj_hash, record.segment)
            if record.tombstone:
                self.tombstones.setdefault(record.partition, {})[record.key] = record.obj_hash
        if message.items:
            self._scanned = message.items[-1][0]
        if len(message.items) >= SCAN_PAGE:
            self._scan()
            return
        self.built = True
        log.info("aae: trees built, %d keys in %d partitions",
                 sum(len(t) for t in self.trees.values()), len(self.trees))

    def _partition(self, key: bytes) -> int | None:
        try:
            return partition_of(ObjectKey.from_storage_key(key), self.keeper.partitions)
        except (ValueError, UnicodeDecodeError):
            return None

    def _changed(self, change: IndexChange) -> None:
        self.trees.setdefault(change.partition, PartitionTree()).update(
            change.key, change.old, change.new, change.segment)
        self.confirmed.pop(change.key, None)  # a confirmation is of the object it replaced
        held = self.tombstones.get(change.partition)
        if held is not None:
            held.pop(change.key, None)
        if change.new is not None and change.tombstone:
            self.tombstones.setdefault(change.partition, {})[change.key] = change.new

    def records(self, items: Sequence[tuple[bytes, bytes]], partition: int) -> dict[bytes, int]:
        """Storage key → object hash of the index records ``items`` of ``partition``."""
        out: dict[bytes, int] = {}
        for raw_key, raw_value in items:
            try:
                record = aae_index.decode(raw_key, raw_value)
            except ValueError:
                self.counts["kv_aae_records_dropped"] += 1
                continue
            if record.partition == partition:
                out[record.key] = record.obj_hash
        return out

