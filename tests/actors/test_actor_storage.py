"""The real StorageActor: group commit, acknowledgement only after a durable commit, and
errors that fail what they touch and nothing else.

The engine is a MemoryEngine behind a ``GatedEngine``: each commit waits until the test
opens the gate once for it, so the test decides when a commit returns and can prove that
no reply comes before. Messages told from the test's thread are in the actor's inbox
when ``tell`` returns, so "queued while a commit was held" is exact, not timing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pykka
import pytest

from dynago.actors.storage import StorageActor, storage_stats
from dynago.actors.storage_messages import (
    Delete,
    GetStats,
    ListItems,
    ListKeys,
    Read,
    Update,
    WatchIndex,
)
from dynago.kv import aae_index, version
from dynago.kv.aae_index import AaeIndexer
from dynago.kv.model import Content, ObjectKey
from dynago.kv.tictac import object_hash
from dynago.storage import LmdbEngine, MemoryEngine, StorageError, Write

GATE_TIMEOUT_S = 10.0


class GatedEngine:
    """A MemoryEngine whose every commit waits for one ``open_gate()`` (if ``gated``) and
    then fails with StorageError while ``failing`` is set."""

    kind = "gated"
    durable = True

    def __init__(self, *, gated: bool = True) -> None:
        self.inner = MemoryEngine()
        self.gated = gated
        self.failing = False
        self.closed = False
        self._allow = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._entered = 0
        self.committed: list[list[Write]] = []

    def open_gate(self, times: int = 1) -> None:
        for _ in range(times):
            self._allow.release()

    @property
    def entered(self) -> int:
        """Commits that started (returned or not)."""
        with self._lock:
            return self._entered

    def commit(self, writes: Sequence[Write]) -> None:
        with self._lock:
            self._entered += 1
        if self.gated and not self._allow.acquire(timeout=GATE_TIMEOUT_S):
            raise StorageError("the test never opened the gate")
        if self.failing:
            raise StorageError("disk on fire")
        self.inner.commit(writes)
        with self._lock:
            self.committed.append(list(writes))

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def keys(self, prefix: bytes, *, after: bytes | None = None, limit: int = 1000
             ) -> list[bytes]:
        return self.inner.keys(prefix, after=after, limit=limit)

    def items(self, prefix: bytes, *, after: bytes | None = None, limit: int = 1000
              ) -> list[tuple[bytes, bytes]]:
        return self.inner.items(prefix, after=after, limit=limit)

    def count(self, start: bytes = b"") -> int:
        return self.inner.count(start)

    def size_bytes(self) -> int:
        return self.inner.size_bytes()

    def close(self) -> None:
        self.closed = True


class Replies:
    """Callbacks that record what they were called with, by name, in call order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[str, Any]] = []

    def __call__(self, name: str) -> Callable[[Any], None]:
        def record(value: Any) -> None:
            with self._lock:
                self._calls.append((name, value))
        return record

    @property
    def calls(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self._calls)

    def of(self, name: str) -> list[Any]:
        return [value for called, value in self.calls if called == name]


def put(value: bytes) -> Callable[[bytes | None], bytes]:
    return lambda _current: value


def update(key: bytes, fn: Callable[[bytes | None], bytes | None], replies: Replies,
           name: str) -> Update:
    return Update(key, fn, replies(name), replies(name + "!"))


@pytest.fixture
def replies() -> Replies:
    return Replies()


@pytest.fixture
def gated() -> GatedEngine:
    return GatedEngine()


@pytest.fixture
def storage(gated: GatedEngine) -> pykka.ActorRef[Any]:
    return StorageActor.start(gated)


def hold_first_commit(storage: pykka.ActorRef[Any], gated: GatedEngine, replies: Replies,
                      eventually: Callable[..., Any]) -> None:
    """Start a commit of key ``first`` and leave it held at the gate."""
    storage.tell(update(b"first", put(b"0"), replies, "first"))
    eventually(lambda: gated.entered == 1)


def test_storage_updates_queued_during_a_commit_share_one_commit(
    storage: pykka.ActorRef[Any], gated: GatedEngine, replies: Replies,
    eventually: Callable[..., Any],
) -> None:
    hold_first_commit(storage, gated, replies, eventually)
    for i in range(100):
        storage.tell(update(b"k%03d" % i, put(b"v%d" % i), replies, f"k{i}"))
    gated.open_gate(2)
    eventually(lambda: len(replies.calls) == 101)
    stats = storage_stats(storage)
    assert (stats.writes, stats.commits, stats.fsyncs, stats.max_batch) == (101, 2, 2, 100)
    assert [len(batch) for batch in gated.committed] == [1, 100]
    assert replies.of("k99") == [b"v99"]


def test_storage_batch_is_cut_at_max_batch(gated: GatedEngine, replies: Replies,
                                           eventually: Callable[..., Any]) -> None:
    storage = StorageActor.start(gated, max_batch=10)
    hold_first_commit(storage, gated, replies, eventually)
    for i in range(25):
        storage.tell(update(b"k%03d" % i, put(b"v"), replies, f"k{i}"))
    gated.open_gate(4)
    eventually(lambda: len(replies.calls) == 26)
    assert [len(batch) for batch in gated.committed] == [1, 10, 10, 5]


def test_storage_lone_write_is_committed_without_waiting(replies: Replies,
                                                         eventually: Callable[..., Any]) -> None:
    engine = GatedEngine(gated=False)
    storage = StorageActor.start(engine)
    storage.tell(update(b"k", put(b"v"), replies, "k"))
    eventually(lambda: replies.of("k") == [b"v"])
    assert engine.committed == [[(b"k", b"v")]]


def test_storage_reply_comes_only_after_the_commit_returned(
    storage: pykka.ActorRef[Any], gated: GatedEngine, replies: Replies,
    eventually: Callable[..., Any],
) -> None:
    hold_first_commit(storage, gated, replies, eventually)
    # The actor is inside engine.commit: nothing may have been acknowledged.
    assert replies.calls == []
    assert gated.committed == []
    gated.open_gate()
    eventually(lambda: replies.calls == [("first", b"0")])
    assert gated.committed == [[(b"first", b"0")]]


def test_storage_read_of_pending_write_is_answered_after_its_commit(
    storage: pykka.ActorRef[Any], gated: GatedEngine, replies: Replies,
    eventually: Callable[..., Any],
) -> None:
    hold_first_commit(storage, gated, replies, eventually)
    storage.tell(update(b"y", put(b"2"), replies, "y"))
    storage.tell(Read(b"y", replies("read-y")))
    storage.tell(Read(b"z", replies("read-z")))  # not in the batch: answered at once
    gated.open_gate()
    eventually(lambda: gated.entered == 2)  # the batch holding y is being committed
    eventually(lambda: replies.of("read-z") == [None])
    assert replies.of("y") == [] and replies.of("read-y") == []
    gated.open_gate()
    eventually(lambda: replies.of("read-y") == [b"2"])
    assert replies.of("y") == [b"2"]


def test_storage_update_sees_earlier_update_of_the_same_batch(
    storage: pykka.ActorRef[Any], gated: GatedEngine, replies: Replies,
    eventually: Callable[..., Any],
) -> None:
    hold_first_commit(storage, gated, replies, eventually)
    storage.tell(update(b"k", lambda old: (old or b"") + b"a", replies, "a"))
    storage.tell(update(b"k", lambda old: (old or b"") + b"b", replies, "b"))
    gated.open_gate(2)
    eventually(lambda: replies.of("b") == [b"ab"])
    assert replies.of("a") == [b"a"]
    assert gated.committed[1] == [(b"k", b"ab")]  # one write of the key per batch


def test_storage_fn_raising_calls_on_error_and_writes_nothing(
    replies: Replies, eventually: Callable[..., Any],
) -> None:
    engine = GatedEngine(gated=False)
    storage = StorageActor.start(engine)

    def broken(_current: bytes | None) -> bytes:
        raise ValueError("cannot decode")

    storage.tell(update(b"k", broken, replies, "broken"))
    storage.tell(update(b"j", lambda _c: "text", replies, "text"))  # type: ignore[arg-type,return-value]
    storage.tell(update(b"ok", put(b"v"), replies, "ok"))  # the actor lives on
    eventually(lambda: replies.of("ok") == [b"v"])
    (error,) = replies.of("broken!")
    assert isinstance(error, ValueError) and str(error) == "cannot decode"
    assert isinstance(replies.of("text!")[0], TypeError)
    assert replies.of("broken") == [] and replies.of("text") == []
    assert engine.committed == [[(b"ok", b"v")]]
    stats = storage_stats(storage)
    assert (stats.fn_errors, stats.errors, stats.writes) == (2, 2, 1)


def test_storage_fn_returning_none_replies_current_and_writes_nothing(
    replies: Replies, eventually: Callable[..., Any],
) -> None:
    engine = GatedEngine(gated=False)
    engine.inner.commit([(b"k", b"old")])
    storage = StorageActor.start(engine)
    storage.tell(update(b"k", lambda _c: None, replies, "same"))
    storage.tell(update(b"missing", lambda _c: None, replies, "missing"))
    eventually(lambda: len(replies.calls) == 2)
    assert replies.of("same") == [b"old"] and replies.of("missing") == [None]
    assert engine.committed == []
    assert storage_stats(storage).commits == 0


def test_storage_failed_commit_errors_every_update_and_acks_nothing(
    storage: pykka.ActorRef[Any], gated: GatedEngine, replies: Replies,
    eventually: Callable[..., Any],
) -> None:
    hold_first_commit(storage, gated, replies, eventually)
    for i in range(5):
        storage.tell(update(b"k%d" % i, put(b"v"), replies, f"k{i}"))
    storage.tell(update(b"k0", lambda _c: None, replies, "saw-k0"))  # saw pending data
    storage.tell(Read(b"k1", replies("read-k1")))
    gated.open_gate()
    eventually(lambda: gated.entered == 2)
    gated.failing = True
    gated.open_gate()
    eventually(lambda: len(replies.of("read-k1")) == 1)
    for i in range(5):
        assert replies.of(f"k{i}") == []
        assert [type(e) for e in replies.of(f"k{i}!")] == [StorageError]
    assert replies.of("saw-k0") == [] and len(replies.of("saw-k0!")) == 1
    assert replies.of("read-k1") == [None]  # the committed value: the batch is gone
    gated.failing = False
    gated.gated = False
    storage.tell(Read(b"k2", replies("read-k2")))
    storage.tell(update(b"after", put(b"v"), replies, "after"))  # the actor lives on
    eventually(lambda: replies.of("after") == [b"v"])
    assert replies.of("read-k2") == [None]
    stats = storage_stats(storage)
    assert (stats.failed_commits, stats.commits, stats.writes) == (1, 2, 2)


def test_storage_delete_and_list_keys_see_the_batch_once_committed(
    storage: pykka.ActorRef[Any], gated: GatedEngine, replies: Replies,
    eventually: Callable[..., Any],
) -> None:
    gated.inner.commit([(b"b\x00old", b"v")])
    hold_first_commit(storage, gated, replies, eventually)
    storage.tell(update(b"b\x00new", put(b"v"), replies, "new"))
    storage.tell(Delete(b"b\x00old", replies("del"), replies("del!")))
    storage.tell(ListKeys(b"b\x00", replies("list")))
    gated.open_gate()
    eventually(lambda: gated.entered == 2)
    assert replies.of("list") == [] and replies.of("del") == []
    gated.open_gate()
    eventually(lambda: replies.of("list") == [[b"b\x00new"]])
    assert replies.of("del") == [None]


def test_storage_bad_key_and_raising_callback_do_not_stop_the_actor(
    replies: Replies, eventually: Callable[..., Any],
) -> None:
    storage = StorageActor.start(GatedEngine(gated=False))

    def explode(_value: Any) -> None:
        raise RuntimeError("caller bug")

    storage.tell(update(b"", put(b"v"), replies, "empty-key"))
    storage.tell(Update(b"k", put(b"v"), explode, replies("k!")))
    storage.tell("not a storage message")
    storage.tell(Read(b"k", replies("read")))
    eventually(lambda: replies.of("read") == [b"v"])
    assert isinstance(replies.of("empty-key!")[0], ValueError)
    assert storage_stats(storage).errors == 3
    assert replies.of("k!") == []


def test_storage_stats_by_reply_and_by_ask(replies: Replies,
                                          eventually: Callable[..., Any]) -> None:
    storage = StorageActor.start(GatedEngine(gated=False))
    storage.tell(update(b"k", put(b"v"), replies, "k"))
    storage.tell(GetStats(replies("stats")))
    eventually(lambda: len(replies.of("stats")) == 1)
    (told,) = replies.of("stats")
    asked = storage.ask(GetStats(), timeout=5)
    assert told == asked
    assert (asked.keys, asked.writes, asked.commits, asked.engine) == (1, 1, 1, "gated")


def test_storage_stop_commits_pending_and_closes_engine(tmp_path: Path, replies: Replies
                                                        ) -> None:
    storage = StorageActor.start(LmdbEngine(tmp_path))
    for i in range(50):
        storage.tell(update(b"k%02d" % i, put(b"v"), replies, f"k{i}"))
    storage.stop(timeout=10)
    assert len(replies.calls) == 50
    reopened = LmdbEngine(tmp_path)  # the actor released the dir's lock
    try:
        assert reopened.count() == 50
    finally:
        reopened.close()


def test_storage_memory_engine_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dynago.actors.storage"):
        storage = StorageActor.start(MemoryEngine())
        storage_stats(storage)
    warnings = [r for r in caplog.records if "not durable" in r.getMessage()]
    assert len(warnings) == 1


def test_storage_max_batch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        StorageActor(MemoryEngine(), max_batch=0)


def test_storage_index_records_commit_with_the_batch_or_not_at_all(
    replies: Replies, eventually: Callable[..., Any],
) -> None:
    gated = GatedEngine(gated=False)
    changes: list[list[Any]] = []
    storage = StorageActor.start(gated, indexer=AaeIndexer(8))
    key = ObjectKey("b", "k").storage_key()
    stored = version.encode(version.coordinate(version.EMPTY, None, "n", Content(b"v")))
    storage.tell(WatchIndex(changes.append))
    gated.failing = True
    storage.tell(update(key, put(stored), replies, "failed"))
    eventually(lambda: replies.of("failed!"))
    assert gated.inner.items(b"") == [] and changes == []  # neither object nor record
    gated.failing = False
    storage.tell(update(key, put(stored), replies, "ok"))
    eventually(lambda: replies.of("ok") == [stored])
    # One commit held both, and the listener heard of it once it had returned.
    where = AaeIndexer(8).locate(key)
    assert where is not None
    assert [sorted(k for k, _ in c) for c in gated.committed] == [
        sorted([key, aae_index.record_key(*where, key)])]
    assert [(c.key, c.old, c.new) for batch in changes for c in batch] == [
        (key, None, object_hash(stored))]
    storage.tell(ListItems((aae_index.RECORD_PREFIX, b"b\x00"), replies("items")))
    eventually(lambda: replies.of("items"))
    (items,) = replies.of("items")
    assert [k for k, _ in items][1:] == [key] and len(items) == 2
