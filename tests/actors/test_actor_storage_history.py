"""The StorageActor's write history (how each key got its value here) and its commit
listeners (what anti-entropy's hash trees are kept up to date from)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pykka
import pytest

from dynago.actors.storage import StorageActor
from dynago.actors.storage_messages import Delete, History, Origin, Update, WatchCommits
from dynago.storage import MemoryEngine, StorageError, Write
from dynago.storage.history import WriteHistory, WriteRecord


class FlakyEngine(MemoryEngine):
    """A MemoryEngine whose commits fail while ``failing`` is set."""

    failing = False

    def commit(self, writes: Sequence[Write]) -> None:
        if self.failing:
            raise StorageError("disk on fire")
        super().commit(writes)


@pytest.fixture
def engine() -> FlakyEngine:
    return FlakyEngine()


@pytest.fixture
def storage(engine: FlakyEngine) -> Any:
    ref = StorageActor.start(engine, wall=lambda: 1000.0)
    yield ref
    ref.stop()


def ask_history(storage: pykka.ActorRef[Any], key: bytes) -> tuple[WriteRecord, ...]:
    done = threading.Event()
    got: list[tuple[WriteRecord, ...]] = []

    def reply(records: tuple[WriteRecord, ...]) -> None:
        got.append(records)
        done.set()

    storage.tell(History(key, reply))
    assert done.wait(10), "the StorageActor never answered History"
    return got[0]


def write(storage: pykka.ActorRef[Any], key: bytes, value: bytes,
          origin: Origin | None) -> list[Any]:
    """Update ``key`` to ``value`` and wait for the reply or the error."""
    done = threading.Event()
    out: list[Any] = []

    def finish(result: Any) -> None:
        out.append(result)
        done.set()

    storage.tell(Update(key, lambda _c: value, finish, finish, origin=origin))
    assert done.wait(10), "the StorageActor never answered the update"
    return out


def test_storage_history_records_each_committed_write_with_its_origin(
        storage: pykka.ActorRef[Any]) -> None:
    write(storage, b"b\x00k", b"one", Origin("coordinated"))
    write(storage, b"b\x00k", b"three", Origin("replica", "n2"))
    write(storage, b"b\x00other", b"x", None)  # no origin: not recorded

    assert ask_history(storage, b"b\x00k") == (
        WriteRecord(1000.0, "coordinated", "", 3), WriteRecord(1000.0, "replica", "n2", 5))
    assert ask_history(storage, b"b\x00other") == ()


def test_storage_history_records_a_delete_with_size_zero(storage: pykka.ActorRef[Any]) -> None:
    write(storage, b"b\x00k", b"one", Origin("coordinated"))
    done = threading.Event()
    storage.tell(Delete(b"b\x00k", lambda _n: done.set(), lambda _e: done.set(),
                        origin=Origin("reaped")))
    assert done.wait(10)
    assert ask_history(storage, b"b\x00k")[-1] == WriteRecord(1000.0, "reaped", "", 0)


def test_storage_history_skips_a_write_whose_commit_failed(
        storage: pykka.ActorRef[Any], engine: FlakyEngine) -> None:
    engine.failing = True
    [error] = write(storage, b"b\x00k", b"one", Origin("coordinated"))
    assert isinstance(error, StorageError)
    assert ask_history(storage, b"b\x00k") == ()


def test_storage_commit_listener_sees_each_committed_batch_and_not_a_failed_one(
        storage: pykka.ActorRef[Any], engine: FlakyEngine) -> None:
    seen: list[list[Write]] = []
    storage.tell(WatchCommits(lambda writes: seen.append(list(writes))))
    write(storage, b"b\x00k", b"one", None)
    engine.failing = True
    write(storage, b"b\x00j", b"two", None)
    engine.failing = False
    done = threading.Event()
    storage.tell(Delete(b"b\x00k", lambda _n: done.set(), lambda _e: done.set()))
    assert done.wait(10)
    assert seen == [[(b"b\x00k", b"one")], [(b"b\x00k", None)]]


def test_storage_commit_listener_that_raises_does_not_stop_the_storage(
        storage: pykka.ActorRef[Any]) -> None:
    def broken(_writes: Sequence[Write]) -> None:
        raise RuntimeError("listener bug")

    storage.tell(WatchCommits(broken))
    assert write(storage, b"b\x00k", b"one", None) == [b"one"]
    assert write(storage, b"b\x00k", b"two", None) == [b"two"]


def test_write_history_forgets_the_least_recently_written_keys_first() -> None:
    history = WriteHistory(max_keys=2, per_key=2)
    record: Callable[[str], WriteRecord] = lambda how: WriteRecord(0.0, how, "", 1)  # noqa: E731
    history.note(b"a", record("1"))
    history.note(b"b", record("2"))
    history.note(b"a", record("3"))
    history.note(b"a", record("4"))  # a keeps its last 2
    history.note(b"c", record("5"))  # b is the least recently written: forgotten
    assert [r.how for r in history.of(b"a")] == ["3", "4"]
    assert history.of(b"b") == ()
    assert len(history) == 2
    with pytest.raises(ValueError):
        WriteHistory(max_keys=0)
