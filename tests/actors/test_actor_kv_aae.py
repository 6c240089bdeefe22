"""Active anti-entropy across in-process nodes (real actors on a MemoryNetwork): a key
written into one replica's store alone reaches the others without any read; siblings
written apart converge to their merge; a tombstone every replica holds is reaped to its
marker; a malformed message is dropped and counted."""

from __future__ import annotations

import functools
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pykka
from prometheus_client.parser import text_string_to_metric_families
from test_actor_kv import Sent  # tests/actors is on sys.path under pytest
from test_actor_kv import eventually as _eventually

from dynago.actors.kv_aae import AntiEntropyActor
from dynago.actors.kv_aae_messages import GetAaeStats
from dynago.actors.kv_service import KvService
from dynago.actors.messages import PeerMessage
from dynago.actors.storage import StorageActor
from dynago.actors.storage_messages import Origin, Read, Update
from dynago.actors.timers import ManualScheduler
from dynago.clock import ManualClock
from dynago.kv import aae_messages as aae
from dynago.kv import version
from dynago.kv.aae_index import AaeIndexer
from dynago.kv.config import KvConfig
from dynago.kv.members import RingKeeper
from dynago.kv.model import Content, ObjectKey
from dynago.kv.reap import is_marker
from dynago.kv.ring import partition_of
from dynago.kv.tictac import TicTacTree, object_hash
from dynago.node import Node
from dynago.storage import MemoryEngine

WAIT_S = 30.0
eventually = functools.partial(_eventually, wait_s=WAIT_S)
"""These tests run whole in-process clusters: wait longer than the single-actor tests."""
NAMES = ("a1", "a2", "a3")


def _service(node: Node) -> KvService:
    service = node.services[0]
    assert isinstance(service, KvService)
    return service


def _cluster(kv_nodes: Callable[..., Node], **knobs: Any) -> dict[str, Node]:
    """Three nodes (every one a replica of every partition at N=3) exchanging often."""
    config = KvConfig(**{"aae_exchange_interval_s": 0.02, "request_timeout_s": 2.0,
                         "aae_max_keys_per_s": 10_000.0, **knobs})
    first = kv_nodes(NAMES[0], kv_config=config)
    nodes = [first] + [kv_nodes(n, seed=first, kv_config=config) for n in NAMES[1:]]
    services = {n: _service(node) for n, node in zip(NAMES, nodes, strict=True)}

    def settled() -> bool:
        return all(s.ring is not None and len(s.ring.ring.members) == len(NAMES)
                   and all(s.ring.status(n) == "alive" for n in NAMES)
                   for s in services.values())

    eventually(settled, "every node sees every node alive")
    return dict(zip(NAMES, nodes, strict=True))


def _services(nodes: dict[str, Node]) -> dict[str, KvService]:
    return {name: _service(node) for name, node in nodes.items()}


def _stored(service: KvService, key: bytes) -> bytes | None:
    results: list[bytes | None] = []
    assert service.storage is not None
    service.storage.tell(Read(key, reply=results.append))
    result: bytes | None = eventually(lambda: results, "a read", wait_s=5.0)[0]
    return result


def _write_behind(service: KvService, key: bytes, obj: version.Object) -> None:
    """Write ``obj`` into this one node's store, bypassing coordination."""
    data = version.encode(obj)
    done: list[object] = []
    assert service.storage is not None
    service.storage.tell(Update(key, lambda _current: data, reply=done.append,
                                on_error=done.append, origin=Origin("test")))
    eventually(lambda: done, "the direct write")


def _aae_stats(service: KvService) -> dict[str, int]:
    assert service.aae is not None
    result: dict[str, int] = service.aae.ask(GetAaeStats(), timeout=5)
    return result


def test_aae_key_in_one_store_reaches_every_replica(kv_nodes: Callable[..., Node]) -> None:
    nodes = _cluster(kv_nodes)
    services = _services(nodes)
    key = ObjectKey("b", "lonely").storage_key()
    obj = version.coordinate(version.EMPTY, None, "a1", Content(b"only here"))
    _write_behind(services["a1"], key, obj)

    eventually(lambda: all(_stored(s, key) == version.encode(obj) for s in services.values()),
          "the object on every replica, no read having asked for it")
    counts = [_aae_stats(s) for s in services.values()]
    assert sum(c["kv_aae_keys_sent"] for c in counts) >= 1
    assert sum(c["kv_aae_exchanges"] for c in counts) >= 1
    assert "kv_aae_exchanges" in services["a2"].stats()  # merged into /v1/stats


def test_aae_counters_on_metrics(kv_nodes: Callable[..., Node]) -> None:
    nodes = _cluster(kv_nodes)
    services = _services(nodes)
    eventually(lambda: _aae_stats(services["a1"])["kv_aae_exchanges"] >= 1, "an exchange")
    http = nodes["a1"].http_address
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = {f.name: f for f in text_string_to_metric_families(text)}
    assert found["dynago_kv_aae_exchanges"].type == "counter"
    assert found["dynago_kv_aae_exchanges"].samples[0].value >= 1
    assert found["dynago_kv_aae_lag_seconds"].type == "gauge"
    for name in ("dynago_kv_aae_keys_sent", "dynago_kv_aae_keys_received",
                 "dynago_kv_aae_segments_differing", "dynago_kv_aae_tombstones_reaped",
                 "dynago_kv_aae_messages_dropped"):
        assert found[name].type == "counter", name


def test_aae_divergent_siblings_converge_to_the_merge(kv_nodes: Callable[..., Node]) -> None:
    nodes = _cluster(kv_nodes)
    services = _services(nodes)
    key = ObjectKey("b", "split").storage_key()
    left = version.coordinate(version.EMPTY, None, "a1", Content(b"left"))
    right = version.coordinate(version.EMPTY, None, "a2", Content(b"right"))
    _write_behind(services["a1"], key, left)
    _write_behind(services["a2"], key, right)
    merged = version.encode(version.merge(left, right))

    eventually(lambda: all(_stored(s, key) == merged for s in services.values()),
          "both siblings on every replica")
    assert len(version.decode(merged).versions) == 2


def test_aae_tombstone_on_every_replica_is_reaped(kv_nodes: Callable[..., Node]) -> None:
    nodes = _cluster(kv_nodes)
    services = _services(nodes)
    key = ObjectKey("b", "gone").storage_key()
    live = version.coordinate(version.EMPTY, None, "a1", Content(b"v"))
    tomb = version.coordinate(live, live.clock, "a1", Content(b"", deleted=True))
    _write_behind(services["a1"], key, tomb)

    def reaped_everywhere() -> bool:
        held = [_stored(s, key) for s in services.values()]
        return all(h is not None and is_marker(version.decode(h)) for h in held)

    eventually(reaped_everywhere, "the tombstone's marker on every replica")
    marker = version.decode(_stored(services["a3"], key) or b"")
    assert marker.clock == tomb.clock  # the clock stays: no dot is ever reused
    assert sum(_aae_stats(s)["kv_aae_tombstones_reaped"] for s in services.values()) >= 1


def test_aae_malformed_messages_are_dropped_and_counted(
        kv_nodes: Callable[..., Node]) -> None:
    nodes = _cluster(kv_nodes, aae_enabled=False)
    services = _services(nodes)
    actor = services["a1"].aae
    assert actor is not None
    eventually(lambda: _aae_stats(services["a1"])["kv_aae_ready"] == 1, "the trees built")
    before = _aae_stats(services["a1"])["kv_aae_messages_dropped"]
    bad = (aae.AaeHashesAsk(1, 10**6, aae.ROOT),             # no such partition
           aae.AaeHashesAsk(2, 0, aae.SEGMENTS, (99,)),       # no such branch
           aae.AaeHashesAsk(3, 0, 7),                         # no such level
           aae.AaeHashes(4, 0, aae.ROOT, (0,), (1,)),         # answers no exchange
           aae.AaeKeys(5, 0, (b"b\x00k",), (1,)),            # answers no exchange
           "not an anti-entropy message")
    done: list[None] = []
    for message in bad:
        actor.tell(PeerMessage("a2", "", message, lambda: done.append(None)))  # type: ignore[arg-type]

    eventually(lambda: len(done) == len(bad), "every message handled (its stream released)")
    assert _aae_stats(services["a1"])["kv_aae_messages_dropped"] - before == len(bad)
    assert actor.is_alive()
    # ...and it still serves: a good ask is answered (no drop, the actor lives on).
    assert _aae_stats(services["a1"])["kv_aae_internal_errors"] == 0


def test_aae_stalled_exchange_is_abandoned_and_the_next_one_starts() -> None:
    clock = ManualClock()
    scheduler = ManualScheduler(clock)
    sent = Sent()  # a peer that never answers
    keeper = RingKeeper("a", partitions=64, n_val=3, grace_s=5.0)
    keeper.seen([("a", 1, "alive", ()), ("b", 1, "alive", ())], clock.monotonic())
    keeper.rebuild(clock.monotonic())
    storage = StorageActor.start(MemoryEngine(), indexer=AaeIndexer(64))
    actor = AntiEntropyActor.start(
        name="a", kv_config=KvConfig(aae_exchange_interval_s=1.0, request_timeout_s=5.0),
        storage=storage, peers=sent, clock=clock, scheduler=scheduler, ring=keeper)
    try:
        eventually(lambda: actor.ask(GetAaeStats())["kv_aae_ready"] == 1, "trees built")

        def asks() -> list[aae.AaeHashesAsk]:
            return [m for _, m in list(sent.messages) if isinstance(m, aae.AaeHashesAsk)]

        scheduler.advance(1.6)  # past the longest jittered interval
        first = eventually(asks, "an exchange started")[0]
        assert first.level == aae.ROOT
        scheduler.advance(1.0)  # another tick, before the timeout: none starts (one at a time)
        actor.ask(GetAaeStats())
        assert len(asks()) == 1
        scheduler.advance(5.0)  # past the timeout (the first started by 1.5 s): abandoned
        eventually(lambda: actor.ask(GetAaeStats())["kv_aae_exchanges_failed"] == 1,
                   "the stalled exchange abandoned")
        scheduler.advance(1.6)
        later = eventually(lambda: asks()[1:], "the next exchange started")[0]
        assert later.exchange_id != first.exchange_id
        # An answer to the abandoned exchange comes too late: dropped and counted.
        actor.tell(PeerMessage("b", "", aae.AaeHashes(first.exchange_id, first.partition,
                                                      aae.ROOT, (0,), (1,))))
        eventually(lambda: actor.ask(GetAaeStats())["kv_aae_messages_dropped"] == 1,
                   "the late answer dropped")
    finally:
        actor.stop()
        storage.stop()
        pykka.ActorRegistry.stop_all(timeout=5)


def test_aae_repairs_keep_to_the_keys_budget(kv_nodes: Callable[..., Node]) -> None:
    rate = 10.0
    nodes = _cluster(kv_nodes, aae_max_keys_per_s=rate)
    # Nothing to repair so far, and a bucket never holds more than its burst (= rate):
    # from now on a1 sends at most rate + rate × elapsed.
    started = time.monotonic()
    services = _services(nodes)
    keys = [ObjectKey("b", f"budget{i}").storage_key() for i in range(30)]
    for key in keys:
        _write_behind(services["a1"], key, version.coordinate(version.EMPTY, None, "a1",
                                                              Content(b"v")))

    def check_budget() -> bool:
        sent = _aae_stats(services["a1"])["kv_aae_keys_sent"]
        assert sent <= rate + rate * (time.monotonic() - started), sent
        return all(_stored(services[n], k) is not None for n in ("a2", "a3") for k in keys)

    eventually(check_budget, "every key on every replica, within the budget")


def test_aae_tombstone_is_reaped_only_once_every_replica_confirmed() -> None:
    clock = ManualClock()
    scheduler = ManualScheduler(clock)
    sent = Sent()
    keeper = RingKeeper("a", partitions=64, n_val=3, grace_s=5.0)
    keeper.seen([(n, 1, "alive", ()) for n in ("a", "b", "c")], clock.monotonic())
    keeper.rebuild(clock.monotonic())
    storage = StorageActor.start(MemoryEngine(), indexer=AaeIndexer(64))
    key = ObjectKey("b", "dead")
    live = version.coordinate(version.EMPTY, None, "a", Content(b"v"))
    tomb = version.encode(version.coordinate(live, live.clock, "a",
                                             Content(b"", deleted=True)))
    done: list[object] = []
    storage.tell(Update(key.storage_key(), lambda _c: tomb, reply=done.append,
                        on_error=done.append))
    eventually(lambda: done, "the tombstone stored")
    target = partition_of(key, 64)
    tree = TicTacTree.of([(key.storage_key(), object_hash(tomb))])
    actor = AntiEntropyActor.start(
        name="a", kv_config=KvConfig(aae_exchange_interval_s=1.0, request_timeout_s=5.0),
        storage=storage, peers=sent, clock=clock, scheduler=scheduler, ring=keeper)
    try:
        eventually(lambda: actor.ask(GetAaeStats())["kv_aae_ready"] == 1, "trees built")
        confirmed: set[str] = set()
        seen = 0
        deadline = time.monotonic() + WAIT_S
        while confirmed != {"b", "c"}:
            assert time.monotonic() < deadline, "both peers never asked"
            # Not reaped while a replica has not confirmed.
            assert _stored_in(storage, key.storage_key()) == tomb
            scheduler.advance(1.6)
            eventually(lambda n=seen: len(sent.messages) > n, "an exchange started")
            peer, ask = sent.messages[seen]
            seen = len(sent.messages)
            assert isinstance(ask, aae.AaeHashesAsk)
            if ask.partition != target:
                answer: object = aae.AaeRefused(ask.exchange_id, "not in this test")
            else:
                answer = aae.AaeHashes(ask.exchange_id, target, aae.ROOT, (0,),
                                       (tree.root,))
                confirmed.add(peer)
            actor.tell(PeerMessage(peer, "", answer))  # type: ignore[arg-type]
            actor.ask(GetAaeStats())  # handled before the next tick
        eventually(lambda: is_marker(version.decode(
            _stored_in(storage, key.storage_key()) or b"")), "reaped to its marker")
        assert actor.ask(GetAaeStats())["kv_aae_tombstones_reaped"] == 1
    finally:
        pykka.ActorRegistry.stop_all(timeout=5)


def _stored_in(storage: Any, key: bytes) -> bytes | None:
    results: list[bytes | None] = []
    storage.tell(Read(key, reply=results.append))
    result: bytes | None = eventually(lambda: results, "a read", wait_s=5.0)[0]
    return result
