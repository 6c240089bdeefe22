"""Hinted handoff across in-process nodes (real actors on a MemoryNetwork, durable
engines in a temp dir): a node cut off by fault injection, writes at W=N through a
fallback, reads at R=N from its hint, and the hand-back once the node is back."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from test_actor_kv import eventually as _eventually  # tests/actors is on sys.path

from dynago.actors.kv_hints import GetHintStats
from dynago.actors.kv_messages import ClientGet, ClientPut
from dynago.actors.kv_service import KvService
from dynago.actors.storage_messages import History, Read
from dynago.config import Config
from dynago.kv.config import KvConfig
from dynago.kv.fallback import for_partition, hint_key
from dynago.kv.model import Content, GetReply, ObjectKey, PutReply, Quorum
from dynago.kv.ring import partition_of
from dynago.node import Node
from dynago.transport.faults import Faults
from dynago.transport.memory import MemoryNetwork

_PORTS = itertools.count(18700)
WAIT_S = 30.0
eventually = functools.partial(_eventually, wait_s=WAIT_S)
"""These tests run whole in-process clusters: wait longer than the single-actor tests."""


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.network = MemoryNetwork()
        self.nodes: dict[str, Node] = {}
        self.kv: dict[str, KvService] = {}
        self.faults: dict[str, Faults] = {}

    def start(self, name: str) -> Node:
        faults = Faults(seed=1)
        service = KvService(KvConfig(data_dir=str(self.root / name), request_timeout_s=2.0,
                                     hint_retry_s=0.5, hint_check_interval_s=0.2))
        seed = next(iter(self.nodes.values()), None)
        node = Node(bind=f"127.0.0.1:{next(_PORTS)}", name=name, config=Config.local(),
                    seeds=(seed.address,) if seed else (),
                    transport=self.network.transport(faults), faults=faults,
                    services=[service])
        self.nodes[name], self.kv[name], self.faults[name] = node, service, faults
        return node.start()

    def ring_settled(self) -> None:
        eventually(lambda: all(s.ring is not None and len(s.ring.ring.members) == len(self.nodes)
                          and all(s.ring.status(n) == "alive" for n in self.nodes)
                          for s in self.kv.values()), "every node sees every node alive")

    def isolate(self, name: str) -> None:
        for other, faults in self.faults.items():
            if other != name:
                faults.cut(name)
                self.faults[name].cut(other)

    def heal(self) -> None:
        for faults in self.faults.values():
            faults.heal()

    def status(self, viewer: str, name: str) -> str:
        keeper = self.kv[viewer].ring
        assert keeper is not None
        return keeper.status(name)

    def call(self, name: str, message: Callable[[Callable[[Any], None]], Any]) -> Any:
        results: list[Any] = []
        kv = self.kv[name].kv
        assert kv is not None
        kv.tell(message(results.append))
        return eventually(lambda: results, "a reply")[0]

    def stored(self, name: str, key: bytes) -> bytes | None:
        results: list[bytes | None] = []
        storage = self.kv[name].storage
        assert storage is not None
        storage.tell(Read(key, reply=results.append))
        result: bytes | None = eventually(lambda: results, "a read", wait_s=5.0)[0]
        return result

    def hint_stats(self, name: str) -> dict[str, int]:
        hints = self.kv[name].hints
        assert hints is not None
        result: dict[str, int] = hints.ask(GetHintStats(), timeout=5)
        return result

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop(leave=False)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path)
    try:
        yield started
    finally:
        started.stop()
        pykka.ActorRegistry.stop_all(timeout=10)


def _key(c: Cluster, coordinator: str, owner: str) -> tuple[ObjectKey, tuple[str, ...]]:
    keeper = c.kv[coordinator].ring
    assert keeper is not None
    for i in range(10_000):
        key = ObjectKey("b", f"k{i}")
        pref = keeper.ring.preference_list_for(key)
        if pref[0] == coordinator and owner in pref:
            return key, pref
    raise AssertionError("no such key")


def _put(c: Cluster, node: str, key: ObjectKey, value: bytes, quorum: Quorum) -> Any:
    return c.call(node, lambda reply: ClientPut(key, Content(value), None, quorum, False,
                                                False, reply))


def _value(c: Cluster, name: str, key: bytes) -> bytes | None:
    from dynago.kv import version

    data = c.stored(name, key)
    if data is None:
        return None
    return version.siblings(version.decode(data))[0].content.value


def test_hint_cluster_write_at_w_n_through_a_fallback_then_handed_back(
        cluster: Cluster) -> None:
    for name in ("a", "b", "c", "d", "e"):
        cluster.start(name)
    cluster.ring_settled()
    key, pref = _key(cluster, "a", "e")
    keeper = cluster.kv["a"].ring
    assert keeper is not None
    ring = keeper.ring
    fallback = next(r.node for r in for_partition(
        ring, partition_of(key, ring.partitions), lambda n: n != "e").replicas
        if r.hint_for == "e")
    cluster.isolate("e")
    # Membership's suspicion, not a request timeout, moves the copy to the fallback.
    eventually(lambda: cluster.status("a", "e") != "alive", "a suspects e")
    started = time.monotonic()
    answer = _put(cluster, "a", key, b"v1", Quorum(w=3))
    assert isinstance(answer, PutReply), answer
    assert time.monotonic() - started < 1.5  # no timeout waited for
    hint = hint_key("e", key.storage_key())
    assert _value(cluster, fallback, hint) == b"v1"
    assert cluster.hint_stats(fallback)["kv_hints_held"] == 1
    got = cluster.call("a", lambda reply: ClientGet(key, Quorum(r=3), False, reply))
    assert isinstance(got, GetReply) and got.siblings[0].content.value == b"v1"
    # PW counts primaries only: e is one of the three.
    refused = _put(cluster, "a", key, b"v2", Quorum(w=3, pw=3))
    assert getattr(refused, "status", None) == 503
    cluster.heal()
    eventually(lambda: _value(cluster, "e", key.storage_key()) == b"v1", "e caught up", wait_s=60.0)
    eventually(lambda: cluster.stored(fallback, hint) is None, "the hint gone")
    assert cluster.hint_stats(fallback)["kv_hints_handed_back"] >= 1
    assert cluster.hint_stats(fallback)["kv_hints_held"] == 0
    # The counters reach /v1/stats and /metrics.
    flat = cluster.kv[fallback].stats()
    assert flat["kv_hints_stored"] >= 1 and flat["kv_hints_handed_back"] >= 1
    metrics = {f.name: f for f in cluster.kv[fallback].metric_families()}
    assert metrics["dynago_kv_hints_held"].type == "gauge"
    assert metrics["dynago_kv_hints_held"].samples[0].value == 0
    assert metrics["dynago_kv_hints_handed_back"].samples[0].value >= 1
    assert metrics["dynago_kv_hint_handback_failures"].type == "counter"
    records: list[Any] = []
    storage = cluster.kv["e"].storage
    assert storage is not None
    storage.tell(History(key.storage_key(), reply=records.append))
    hows = [(r.how, r.peer) for r in eventually(lambda: records, "history")[0]]
    assert ("hint handed back", fallback) in hows


def test_hint_cluster_of_three_coordinator_keeps_the_hint(cluster: Cluster) -> None:
    for name in ("a", "b", "c"):
        cluster.start(name)
    cluster.ring_settled()
    key, pref = _key(cluster, "a", "c")
    cluster.isolate("c")
    eventually(lambda: cluster.status("a", "c") != "alive", "a suspects c")
    answer = _put(cluster, "a", key, b"v1", Quorum(w=2))
    assert isinstance(answer, PutReply), answer
    hint = hint_key("c", key.storage_key())
    eventually(lambda: cluster.stored("a", hint) is not None, "the coordinator's own hint")
    assert _value(cluster, "c", key.storage_key()) is None
    cluster.heal()
    eventually(lambda: _value(cluster, "c", key.storage_key()) == b"v1", "c caught up", wait_s=60.0)
    eventually(lambda: cluster.stored("a", hint) is None, "the hint gone")
