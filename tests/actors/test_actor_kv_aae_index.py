"""The AntiEntropyActor with its index on disk (real StorageActor, real SQLite store): a
store written before the index existed is indexed while writes go on, its trees then
hold every object exactly once; a restart reads the trees from the records without
rebuilding; the records are committed with the objects and a failed commit stores
neither."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pykka
from test_actor_kv import Sent  # tests/actors is on sys.path under pytest
from test_actor_kv import eventually as _eventually

from dynago.actors.kv_aae import AntiEntropyActor
from dynago.actors.kv_aae_messages import GetAaeStats
from dynago.actors.messages import PeerMessage
from dynago.actors.storage import StorageActor
from dynago.actors.storage_messages import Delete, ListItems, Update
from dynago.actors.timers import ManualScheduler
from dynago.clock import ManualClock
from dynago.kv import aae_index, version
from dynago.kv import aae_messages as aae
from dynago.kv.aae_index import AaeIndexer
from dynago.kv.config import KvConfig
from dynago.kv.members import RingKeeper
from dynago.kv.model import Content, ObjectKey
from dynago.kv.reap import is_tombstone
from dynago.kv.ring import partition_of
from dynago.kv.tictac import TicTacTree, object_hash
from dynago.storage import open_engine

PARTITIONS = 64
eventually = functools.partial(_eventually, wait_s=60.0)


def _object(text: str, deleted: bool = False) -> bytes:
    return version.encode(version.coordinate(version.EMPTY, None, "a",
                                             Content(text.encode(), deleted=deleted)))


def _key(i: int) -> bytes:
    return ObjectKey("b", f"key{i:05}").storage_key()


def _start(data_dir: Path) -> tuple[Any, Any, Sent]:
    clock = ManualClock()
    keeper = RingKeeper("a", partitions=PARTITIONS, n_val=3, grace_s=5.0)
    keeper.seen([("a", 1, "alive", ()), ("b", 1, "alive", ())], clock.monotonic())
    keeper.rebuild(clock.monotonic())
    storage = StorageActor.start(open_engine("sqlite", str(data_dir)),
                                 indexer=AaeIndexer(PARTITIONS))
    sent = Sent()
    actor = AntiEntropyActor.start(
        name="a", kv_config=KvConfig(aae_exchange_interval_s=3600.0), storage=storage,
        peers=sent, clock=clock, scheduler=ManualScheduler(clock), ring=keeper)
    return storage, actor, sent


def _ask(storage: Any, message_of: Any) -> Any:
    out: list[Any] = []
    storage.tell(message_of(out.append))
    return eventually(lambda: out, "the store's answer")[0]


def _roots(actor: Any, sent: Sent) -> dict[int, int]:
    """Every partition's root as the actor serves it to a peer."""
    before = len(sent.messages)
    for partition in range(PARTITIONS):
        actor.tell(PeerMessage("b", "", aae.AaeHashesAsk(partition + 1, partition, aae.ROOT)))
    answers = eventually(lambda: len(sent.messages) >= before + PARTITIONS and
                         sent.messages[before:], "every root served")
    return {m.partition: m.hashes[0] for _, m in answers if isinstance(m, aae.AaeHashes)}


def _expected_roots(storage: Any) -> tuple[dict[int, int], int, int]:
    """The roots of the objects the store holds, computed from the objects themselves,
    how many objects and how many tombstones."""
    items = _ask(storage, lambda reply: ListItems((b"b\x00",), reply=reply, limit=10**6))
    by_partition: dict[int, list[tuple[bytes, int]]] = {}
    for key, value in items:
        partition = partition_of(ObjectKey.from_storage_key(key), PARTITIONS)
        by_partition.setdefault(partition, []).append((key, object_hash(value)))
    roots = {p: TicTacTree.of(by_partition.get(p, ())).root for p in range(PARTITIONS)}
    tombstones = sum(is_tombstone(version.decode(value)) for _, value in items)
    return roots, len(items), tombstones


def test_aae_old_store_is_indexed_amid_writes_and_a_restart_reuses_the_index(
        tmp_path: Path) -> None:
    old = open_engine("sqlite", str(tmp_path))
    old.commit([(_key(i), _object(f"v{i}", deleted=i % 10 == 0)) for i in range(3000)])
    old.close()

    storage, actor, sent = _start(tmp_path)
    try:
        done: list[object] = []
        told = 0
        # Writes while the index is rebuilt and the trees are read (new keys,
        # overwrites, deletes), until the trees are built or 2,000 were told.
        for i in range(2000):
            if i % 20 == 0 and actor.ask(GetAaeStats())["kv_aae_ready"]:
                break
            key = _key((i * 7919) % 4000)
            if i % 3 == 0:
                storage.tell(Delete(key, reply=done.append, on_error=done.append))
            else:
                storage.tell(Update(key, lambda _c, i=i: _object(f"w{i}", deleted=i % 5 == 0),
                                    reply=done.append, on_error=done.append))
            told += 1
        eventually(lambda: actor.ask(GetAaeStats())["kv_aae_ready"] == 1, "trees built")
        eventually(lambda: len(done) == told, "every write acknowledged")
        assert all(not isinstance(d, Exception) for d in done)
        stats = actor.ask(GetAaeStats())
        assert stats["kv_aae_index_rebuilds"] == 1
        assert stats["kv_aae_records_dropped"] == 0
        expected, count, tombstones = _expected_roots(storage)
        assert tombstones > 0
        assert stats["kv_aae_keys"] == count
        assert stats["kv_aae_tombstones"] == tombstones  # the reap's candidates
        assert _roots(actor, sent) == expected
    finally:
        actor.stop()
        storage.stop()

    storage, actor, sent = _start(tmp_path)
    try:
        eventually(lambda: actor.ask(GetAaeStats())["kv_aae_ready"] == 1, "trees read")
        stats = actor.ask(GetAaeStats())
        assert stats["kv_aae_index_rebuilds"] == 0  # the records were complete
        assert stats["kv_aae_keys"] == count
        assert stats["kv_aae_tombstones"] == tombstones
        assert _roots(actor, sent) == expected
    finally:
        actor.stop()
        storage.stop()
        pykka.ActorRegistry.stop_all(timeout=5)


def test_aae_index_records_commit_with_their_objects(tmp_path: Path) -> None:
    storage = StorageActor.start(open_engine("sqlite", str(tmp_path)),
                                 indexer=AaeIndexer(PARTITIONS))
    try:
        key = _key(1)
        stored = _ask(storage, lambda reply: Update(key, lambda _c: _object("one"),
                                                    reply=reply, on_error=reply))
        records = _ask(storage, lambda reply: ListItems((aae_index.RECORD_PREFIX,),
                                                        reply=reply))
        assert [aae_index.decode(k, v).key for k, v in records] == [key]
        assert aae_index.decode(*records[0]).obj_hash == object_hash(stored)
        # An update whose fn raises writes nothing: the record stays as it was.
        failed = _ask(storage, lambda reply: Update(key, _raise, reply=reply,
                                                    on_error=reply))
        assert isinstance(failed, RuntimeError)
        assert _ask(storage, lambda reply: ListItems((aae_index.RECORD_PREFIX,),
                                                     reply=reply)) == records
        _ask(storage, lambda reply: Delete(key, reply=reply, on_error=reply))
        assert _ask(storage, lambda reply: ListItems((aae_index.RECORD_PREFIX,),
                                                     reply=reply)) == []
    finally:
        storage.stop()


def _raise(_current: bytes | None) -> bytes:
    raise RuntimeError("the fn failed")
