"""Ownership handoff between in-process nodes (the ``kv_nodes`` fixture: MemoryNetwork,
admin API on 127.0.0.1:0): a join, a leave, and client reads and writes while a handoff
runs."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dynago.actors.kv_service import KvService
from dynago.actors.storage_messages import ListKeys
from dynago.kv.config import KvConfig
from dynago.kv.model import DEFAULT_BUCKET, ObjectKey
from dynago.launch import http_json
from dynago.node import Node

DEADLINE_S = 30.0


def eventually(check: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - not yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def service(node: Node) -> KvService:
    kv = node.services[0]
    assert isinstance(kv, KvService)
    return kv


def local_keys(node: Node) -> set[str]:
    """The keys of the default bucket in the node's own store, tombstones included."""
    kv = service(node)
    assert kv.storage is not None
    done = threading.Event()
    box: list[list[bytes]] = []

    def reply(keys: list[bytes]) -> None:
        box.append(keys)
        done.set()

    kv.storage.tell(ListKeys(ObjectKey(DEFAULT_BUCKET, "").storage_key(), reply=reply,
                             limit=100_000))
    assert done.wait(5)
    return {ObjectKey.from_storage_key(k).key for k in box[0]}


def owned(node: Node, keys: set[str]) -> set[str]:
    ring = service(node).ring
    assert ring is not None
    return {k for k in keys
            if node.name in ring.ring.preference_list_for(ObjectKey(DEFAULT_BUCKET, k))}


def ring_size(node: Node) -> int:
    ring = service(node).ring
    assert ring is not None
    return len(ring.ring.members)


def counters(node: Node) -> dict[str, int]:
    snap = service(node).handoff_snapshot()
    assert snap is not None
    return dict(snap.counters)


def put(node: Node, key: str, value: str) -> None:
    assert node.http_address is not None
    http_json(node.http_address, "/kvstore", method="POST", timeout_s=10,
              body={"Key": key, "Value": value})


def get(node: Node, key: str) -> str:
    assert node.http_address is not None
    return str(http_json(node.http_address, f"/kvstore/{key}", timeout_s=10)["value"])


def settled(nodes: list[Node], keys: set[str]) -> bool:
    """No handoff pending anywhere, and each node holds exactly the keys of its lists."""
    return all(counters(n)["kv_handoffs_pending"] == 0 for n in nodes) and all(
        local_keys(n) == owned(n, keys) for n in nodes)


def start_three(kv_nodes: Callable[..., Node], cfg: KvConfig) -> tuple[
        Callable[..., Node], list[Node]]:
    def start(name: str, seed: Node | None = None, config: KvConfig = cfg) -> Node:
        return kv_nodes(name, seed=seed, kv_config=config)

    a = start("a")
    nodes = [a, start("b", a), start("c", a)]
    eventually(lambda: all(ring_size(n) == 3 for n in nodes), "a ring of three")
    return start, nodes


@pytest.fixture
def three(kv_nodes: Callable[..., Node]) -> tuple[Callable[..., Node], list[Node]]:
    return start_three(kv_nodes, KvConfig(handoff_chunk_keys=20, handoff_ack_timeout_s=2.0))


def test_handoff_joiner_ends_up_with_exactly_its_partitions(
        three: tuple[Callable[..., Node], list[Node]]) -> None:
    start, nodes = three
    keys = {f"k{i}" for i in range(300)}
    for k in sorted(keys):
        put(nodes[0], k, "v-" + k)
    d = start("d", nodes[0])
    everyone = [*nodes, d]
    eventually(lambda: all(ring_size(n) == 4 for n in everyone), "a ring of four")
    eventually(lambda: settled(everyone, keys), "every handoff done")
    mine = local_keys(d)
    assert mine and mine == owned(d, keys)  # read from d's own store alone
    assert sum(counters(n).get("kv_handoff_keys_received", 0) for n in [d]) >= len(mine)
    # Pairing: each key d got crossed the network once, but for chunks sent again after
    # a retry (at most the window of 4 chunks of 20 keys, and a page's worth, each time).
    sent = sum(counters(n).get("kv_handoff_keys_sent", 0) for n in nodes)
    retries = sum(counters(n).get("kv_handoff_retries", 0) for n in nodes)
    assert len(mine) <= sent <= len(mine) + retries * 2 * 4 * 20
    assert all(get(d, k) == "v-" + k for k in sorted(keys)[:30])
    with urllib.request.urlopen(f"http://{d.http_address}/metrics", timeout=5) as answer:
        metrics = {f.name: f for f in text_string_to_metric_families(answer.read().decode())}
    assert metrics["dynago_kv_handoff_keys_received"].samples[0].value >= len(mine)
    assert metrics["dynago_kv_handoffs_pending"].samples[0].value == 0


def test_handoff_leaver_hands_its_data_off_before_it_exits(
        three: tuple[Callable[..., Node], list[Node]]) -> None:
    start, nodes = three
    d = start("d", nodes[0])
    everyone = [*nodes, d]
    eventually(lambda: all(ring_size(n) == 4 for n in everyone), "a ring of four")
    keys = {f"k{i}" for i in range(200)}
    for k in sorted(keys):
        put(d, k, "v-" + k)  # acknowledged before the leave
    eventually(lambda: all(counters(n)["kv_handoffs_pending"] == 0 for n in everyone),
               "the join's handoffs done")
    held = local_keys(d)
    assert held
    d.stop(leave=True)  # dynago leave and SIGTERM both end here
    eventually(lambda: all(ring_size(n) == 3 for n in nodes), "a ring of three again")
    # d's copies went to the nodes that replace it: each key is on its three nodes again.
    eventually(lambda: settled(nodes, keys), "the survivors hold every key")
    assert all(get(nodes[0], k) == "v-" + k for k in sorted(keys))


def test_handoff_reads_and_writes_during_a_handoff_succeed(
        kv_nodes: Callable[..., Node]) -> None:
    # The old holders send ~40 keys a second, 4 a chunk: the handoff lasts seconds.
    start, nodes = start_three(kv_nodes, KvConfig(handoff_chunk_keys=4,
                                                  handoff_max_keys_s=40.0))
    keys = {f"k{i}" for i in range(300)}
    for k in sorted(keys):
        put(nodes[0], k, "v-" + k)
    d = start("d", nodes[0])
    everyone = [*nodes, d]
    eventually(lambda: all(ring_size(n) == 4 for n in everyone), "a ring of four")
    eventually(lambda: sum(counters(n).get("kv_handoff_chunks_sent", 0) for n in nodes) > 0,
               "the handoff under way")
    written = {f"new{i}" for i in range(40)}
    for i, k in enumerate(sorted(written)):
        put(everyone[i % 4], k, "w-" + k)
        assert get(everyone[(i + 1) % 4], sorted(keys)[i]) == "v-" + sorted(keys)[i]
    assert sum(counters(n).get("kv_handoffs_pending", 0) for n in nodes) > 0, \
        "the handoff ended before the reads and writes: nothing was tested"
    eventually(lambda: settled(everyone, keys | written), "every handoff done",
               timeout_s=60)
    assert all(get(d, k) == "w-" + k for k in sorted(written))
    # d asked the nodes still handing a key's partition over when it was read there.
    assert service(d).stats().get("kv_handoff_proxied_reads", 0) > 0
