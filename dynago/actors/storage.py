"""StorageActor: owns the node's storage Engine; every read and write goes through it.

Group commit. An update is applied to a pending overlay in memory (so a later Read or
Update of the same key sees it) and the overlay is committed with ONE ``engine.commit``
(one fsync) as soon as either

* the actor's inbox holds no further message (nothing else is waiting to join the
  batch), or
* the batch holds ``max_batch`` writes,

whichever comes first (and before GetStats is answered). There is no timer: a lone
write is committed at once, and under load the writes that arrive while one commit
syncs form the next batch, so fsyncs per write fall as the load rises. The wait is
bounded by ``max_batch`` messages of work.

Acknowledgement only once durable. The replies of a batch's updates, and of reads that
saw its pending data, are called only after its commit returned. If the commit raises,
every update of the batch gets ``on_error``, nothing of it is acknowledged, and the
overlay is dropped (the engine's transaction is all or nothing, so nothing of it is
stored either).

The actor never dies of a message: an ``fn`` that raises, an engine error, a callback
that raises or an unknown message is logged and counted, and the next message is
handled. Messages and the reply contract: dynago.actors.storage_messages (replies run
on this actor's thread and must not block).

Derived records. Given an ``indexer`` (dynago.kv.aae_index.AaeIndexer for a KV node),
every commit also writes the records the indexer derives from the batch, in the same
transaction, and tells the WatchIndex listeners what changed once it returned.

The actor closes its engine when it stops, after committing what was pending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pykka

from dynago.actors.storage_messages import (
    CommitListener,
    Delete,
    DeleteIf,
    GetStats,
    History,
    Indexer,
    IndexListener,
    ListItems,
    ListKeys,
    Origin,
    Read,
    RebuildIndex,
    StorageStats,
    Update,
    WatchCommits,
    WatchIndex,
)
from dynago.storage.engine import Engine, check_key, check_list_args
from dynago.storage.history import WriteHistory, WriteRecord

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 256
"""Most writes in one commit. Higher: fewer fsyncs under heavy load, but a longer wait
for the first writes of a full batch; 256 writes of ~1 KiB is well under a millisecond of
work before the sync."""

OBJECTS_FROM = b"\x01"
"""The first possible object key: every key below it is node-local (under NUL)."""

_OnOk = Callable[[], None]
_OnFail = Callable[[Exception], None]


class StorageActor(pykka.ThreadingActor):
    """Owns ``engine`` (closing it when stopped). ``max_batch`` is at least 1."""

    def __init__(self, engine: Engine, *, max_batch: int = DEFAULT_MAX_BATCH,
                 wall: Callable[[], float] = time.time,
                 indexer: Indexer | None = None) -> None:
        super().__init__()
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._engine = engine
        self._max_batch = max_batch
        # The batch being gathered: key -> new value (None deletes), the number of writes
        # in it, and what to do once its commit returned or failed, in arrival order.
        self._pending: dict[bytes, bytes | None] = {}
        self._batch_writes = 0
        self._deferred: list[tuple[_OnOk, _OnFail]] = []
        # Origins of the batch's writes, noted in the history once it is committed.
        self._origins: list[tuple[bytes, Origin]] = []
        self._history = WriteHistory()
        self._wall = wall
        self._listeners: list[CommitListener] = []
        self._indexer = indexer
        self._index_listeners: list[IndexListener] = []
        self._counts = dict.fromkeys(
            ("reads", "updates", "writes", "commits", "fsyncs", "max_batch", "fn_errors",
             "failed_commits", "errors"), 0,
        )

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        if not self._engine.durable:
            log.warning(
                "storage: %s engine, not durable: every stored key is lost when the node "
                "stops (give a data dir to keep them)", self._engine.kind,
            )

    def on_stop(self) -> None:
        self._commit_batch()
        self._engine.close()

    def on_failure(self, *exc_info: Any) -> None:
        self._engine.close()

    # ------------------------------------------------------------------ dispatch

    def on_receive(self, message: Any) -> Any:
        result: Any = None
        try:
            if isinstance(message, Update):
                self._update(message)
            elif isinstance(message, Read):
                self._read(message)
            elif isinstance(message, Delete):
                self._delete(message)
            elif isinstance(message, ListKeys):
                self._list_keys(message)
            elif isinstance(message, DeleteIf):
                self._delete_if(message)
            elif isinstance(message, History):
                self._call(message.reply, self._history.of(message.key))
            elif isinstance(message, WatchCommits):
                self._listeners.append(message.listener)
            elif isinstance(message, ListItems):
                self._list_items(message)
            elif isinstance(message, WatchIndex):
                self._index_listeners.append(message.listener)
            elif isinstance(message, RebuildIndex):
                self._rebuild_index(message)
            elif isinstance(message, GetStats):
                # Counted after the batch being gathered: what was told before is in them.
                self._commit_batch()
                result = self.stats()
                if message.reply is not None:
                    self._call(message.reply, result)
            else:
                self._counts["errors"] += 1
                log.warning("storage: dropped an unknown message %r", type(message).__name__)
        finally:
            # Peek, do not wait: commit as soon as nothing else is queued to join the batch.
            if self._deferred and (
                self._batch_writes >= self._max_batch or self.actor_inbox.empty()
            ):
                self._commit_batch()
        return result

    # ------------------------------------------------------------------ handlers

    def _current(self, key: bytes) -> tuple[bytes | None, bool]:
        """The latest value of ``key`` and whether it comes from the pending batch."""
        if key in self._pending:
            return self._pending[key], True
        return self._engine.get(key), False

    def _read(self, message: Read) -> None:
        self._counts["reads"] += 1
        try:
            check_key(message.key)
            value, pending = self._current(message.key)
        except Exception as error:  # noqa: BLE001 - a bad key or a failed read: tell the caller
            self._failed(message.on_error, error, "read")
            return
        if not pending:
            self._call(message.reply, value)
            return

        def committed_read() -> None:
            # The batch is gone: answer with what the engine holds.
            try:
                self._call(message.reply, self._engine.get(message.key))
            except Exception as error:  # noqa: BLE001
                self._failed(message.on_error, error, "read")

        self._deferred.append(
            (lambda: self._call(message.reply, value), lambda _error: committed_read())
        )

    def _update(self, message: Update) -> None:
        self._counts["updates"] += 1
        try:
            check_key(message.key)
            current, pending = self._current(message.key)
        except Exception as error:  # noqa: BLE001
            self._failed(message.on_error, error, "update")
            return
        try:
            new = message.fn(current)
            if new is not None and not isinstance(new, bytes):
                raise TypeError(f"an update's fn returned {type(new).__name__}, not bytes")
        except Exception as error:  # noqa: BLE001 - the KV layer's fn: its error, not ours
            self._counts["fn_errors"] += 1
            self._failed(message.on_error, error, None)
            return
        if new is None:
            if pending:  # the caller saw the batch's data: answer once it is durable
                self._defer(message.reply, current, message.on_error)
            else:
                self._call(message.reply, current)
            return
        self._write(message.key, new, message.reply, message.on_error, message.origin)

    def _delete(self, message: Delete) -> None:
        self._counts["updates"] += 1
        try:
            check_key(message.key)
        except ValueError as error:
            self._failed(message.on_error, error, "delete")
            return
        self._write(message.key, None, message.reply, message.on_error, message.origin)

    def _delete_if(self, message: DeleteIf) -> None:
        self._counts["updates"] += 1
        try:
            check_key(message.key)
            current, pending = self._current(message.key)
        except Exception as error:  # noqa: BLE001
            self._failed(message.on_error, error, "conditional delete")
            return
        if current != message.expected:
            if pending:  # compared with the batch's data: answer once it is durable
                self._defer(message.reply, False, message.on_error)
            else:
                self._call(message.reply, False)
            return
        self._write(message.key, None, lambda _none: message.reply(True), message.on_error,
                    message.origin)

    def _list_keys(self, message: ListKeys) -> None:
        def answer() -> None:
            try:
                check_list_args(message.limit)
                keys = self._engine.keys(message.prefix, after=message.after,
                                         limit=message.limit)
                keep = message.keep
                if keep is not None:
                    keys = [k for k in keys
                            if (value := self._engine.get(k)) is not None and keep(value)]
            except Exception as error:  # noqa: BLE001
                self._failed(message.on_error, error, "key listing")
                return
            self._call(message.reply, keys)

        self._after_batch(answer)

    def _list_items(self, message: ListItems) -> None:
        def answer() -> None:
            try:
                check_list_args(message.limit)
                found: list[tuple[bytes, bytes]] = []
                for prefix in message.prefixes:
                    left = message.limit - len(found)
                    if left <= 0:
                        break
                    found += self._engine.items(prefix, after=message.after, limit=left)
            except Exception as error:  # noqa: BLE001
                self._failed(message.on_error, error, "item listing")
                return
            self._call(message.reply, found)

        self._after_batch(answer)

    def _after_batch(self, answer: Callable[[], None]) -> None:
        """Run ``answer`` (a listing from the engine) now, or once the batch being
        gathered is committed (or failed), so that it sees what was told before it."""
        if self._deferred:
            self._deferred.append((answer, lambda _error: answer()))
        else:
            answer()

    def _rebuild_index(self, message: RebuildIndex) -> None:
        self._commit_batch()  # the step sees, and follows, every write told before it
        try:
            if self._indexer is None:
                raise ValueError("this store keeps no index")
            writes, cursor = self._indexer.rebuild_step(message.cursor, self._engine.items)
            if writes:
                self._engine.commit(writes)
                self._counts["commits"] += 1
                self._counts["fsyncs"] += int(self._engine.durable)
        except Exception as error:  # noqa: BLE001 - the step fails, the actor lives on
            self._failed(message.on_error, error, "index rebuild step")
            return
        self._call(message.reply, cursor)

    # ------------------------------------------------------------------ the batch

    def _write(self, key: bytes, value: bytes | None, reply: Callable[[Any], None],
               on_error: _OnFail, origin: Origin | None = None) -> None:
        self._pending[key] = value
        if origin is not None:
            self._origins.append((key, origin))
        self._batch_writes += 1
        self._defer(reply, value, on_error)

    def _defer(self, reply: Callable[[Any], None], value: Any, on_error: _OnFail) -> None:
        self._deferred.append((lambda: self._call(reply, value),
                               lambda error: self._call(on_error, error)))

    def _commit_batch(self) -> None:
        """Commit the pending overlay in one transaction, then answer the batch."""
        if not self._deferred:
            return
        writes = list(self._pending.items())
        batch_writes, deferred, origins = self._batch_writes, self._deferred, self._origins
        self._pending, self._batch_writes, self._deferred, self._origins = {}, 0, [], []
        if writes:
            changes: list[Any] = []
            try:
                if self._indexer is not None:
                    derived, changes = self._indexer.derive(writes, self._engine.get)
                    self._engine.commit(writes + derived if derived else writes)
                else:
                    self._engine.commit(writes)
            except Exception as error:  # noqa: BLE001 - the batch fails, the actor lives on
                self._counts["failed_commits"] += 1
                self._counts["errors"] += 1
                log.error("storage: commit of %d writes failed: %s", batch_writes, error)
                for _, on_fail in deferred:
                    on_fail(error)
                return
            self._counts["commits"] += 1
            self._counts["fsyncs"] += int(self._engine.durable)
            self._counts["writes"] += batch_writes
            self._counts["max_batch"] = max(self._counts["max_batch"], batch_writes)
            self._committed(writes, origins)
            if changes:
                for index_listener in self._index_listeners:
                    self._call(index_listener, changes)
        for on_ok, _ in deferred:
            on_ok()

    def _committed(self, writes: list[tuple[bytes, bytes | None]],
                   origins: list[tuple[bytes, Origin]]) -> None:
        """Note the batch's origins in the history and tell the commit listeners."""
        if origins:
            at = self._wall()
            final = dict(writes)
            for key, origin in origins:
                value = final.get(key)
                self._history.note(key, WriteRecord(at, origin.how, origin.peer,
                                                    len(value) if value is not None else 0))
        for listener in self._listeners:
            self._call(listener, writes)

    # ------------------------------------------------------------------ helpers

    def _call(self, callback: Callable[[Any], None], value: Any) -> None:
        try:
            callback(value)
        except Exception:  # noqa: BLE001 - a caller's bug must not stop the node's storage
            self._counts["errors"] += 1
            log.exception("storage: a reply callback raised")

    def _failed(self, on_error: _OnFail | None, error: Exception, what: str | None) -> None:
        self._counts["errors"] += 1
        if what is not None:
            log.warning("storage: %s failed: %s", what, error)
        if on_error is not None:
            self._call(on_error, error)

    def stats(self) -> StorageStats:
        """The counters now (on the actor's thread; others ``ask(GetStats())``)."""
        return StorageStats(engine=self._engine.kind, keys=self._engine.count(),
                            objects=self._engine.count(OBJECTS_FROM),
                            size_bytes=self._engine.size_bytes(), **self._counts)


def storage_stats(ref: pykka.ActorRef[Any], timeout_s: float = 5.0) -> StorageStats:
    """Ask the StorageActor ``ref`` for its counters (blocks: not for actors' threads)."""
    stats = ref.ask(GetStats(), timeout=timeout_s)
    assert isinstance(stats, StorageStats)
    return stats
