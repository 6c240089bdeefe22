"""``GET /v1/kv/explain``'s per-node copies and ``dynago kv explain`` (dynago.kv.explain,
dynago.actors.kv_explain) on three in-process nodes (MemoryNetwork, admin API on
127.0.0.1:0): after a put every replica holds the version with how it got there; a
replica made to lack it is shown behind, and after a read repair shows "read repair"."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from dynago.actors.kv_service import KvService
from dynago.actors.messages import PeerMessage
from dynago.actors.storage_messages import Delete
from dynago.kv.client import KvClient
from dynago.kv.explain import KvExplainReply
from dynago.kv.model import ObjectKey
from dynago.launch import http_json, wait_until
from dynago.node import Node

TIMEOUT_S = 15.0


def http(node: Node) -> str:
    assert node.http_address is not None
    return node.http_address


def kv_service(node: Node) -> KvService:
    service = next(s for s in node.services if isinstance(s, KvService))
    return service


@pytest.fixture
def cluster(kv_nodes: Callable[..., Node]) -> list[Node]:
    a = kv_nodes("a")
    nodes = [a, kv_nodes("b", seed=a), kv_nodes("c", seed=a)]
    for node in nodes:
        wait_until(lambda n=node: len(http_json(http(n), "/v1/ring")["members"]) == 3,
                   timeout_s=TIMEOUT_S, what=f"{node.name}'s ring to hold 3 members")
    return nodes


def explain(node: Node, key: str) -> dict[str, Any]:
    return KvClient(http(node), timeout_s=20.0).explain(key, bucket="b")


def rows(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["node"]: row for row in answer["nodes"]}


def test_kv_explain_after_a_put_every_replica_holds_the_version(cluster: list[Node]) -> None:
    a = cluster[0]
    written = KvClient(http(a)).put("k", "hello", bucket="b", w="all")
    assert written is not None

    answer = explain(cluster[1], "k")

    assert sorted(answer["preference_list"]) == ["a", "b", "c"]
    by_node = rows(answer)
    assert sorted(by_node) == ["a", "b", "c"]
    merged = answer["merged"]
    assert [s["value"] for s in merged["siblings"]] == ["hello"]
    dot = merged["siblings"][0]["dot"]
    for name, row in by_node.items():
        assert row["status"] == "holds" and row["primary"] and row["behind"] is False
        assert [s["dot"] for s in row["object"]["siblings"]] == [dot]
        hows = [entry["how"] for entry in row["history"]]
        coordinator = dot[0]
        assert hows == (["coordinated"] if name == coordinator else ["replica"]), name
        if name != coordinator:
            assert row["history"][0]["peer"] == coordinator
    assert answer["read"]["found"] is True


def test_kv_explain_shows_a_replica_behind_then_its_read_repair(cluster: list[Node]) -> None:
    a, _b, c = cluster
    KvClient(http(a)).put("k", "v1", bucket="b", w="all")
    coordinator = explain(a, "k")["merged"]["siblings"][0]["dot"][0]
    victim = next(n for n in cluster if n.name != coordinator)
    storage = kv_service(victim).storage
    assert storage is not None
    removed = threading.Event()
    storage.tell(Delete(ObjectKey("b", "k").storage_key(), reply=lambda _: removed.set(),
                        on_error=lambda _e: None))
    assert removed.wait(TIMEOUT_S)

    # The explain route asks every node before its own quorum read: the copy is missing.
    before = rows(explain(c if victim is not c else a, "k"))[victim.name]
    assert before["status"] == "not found" and before["behind"] is True

    # A read of every replica repairs the one that lacked the version.
    assert KvClient(http(a)).get("k", bucket="b", r="all") is not None
    wait_until(lambda: rows(explain(a, "k"))[victim.name]["status"] == "holds",
               timeout_s=TIMEOUT_S, what=f"{victim.name}'s copy to be repaired")
    after = rows(explain(a, "k"))[victim.name]
    assert after["behind"] is False
    assert after["history"][-1]["how"] == "read repair"


def test_kv_explain_a_key_never_written_is_held_nowhere(cluster: list[Node]) -> None:
    answer = explain(cluster[0], "nothing")
    assert answer["merged"] is None
    assert {row["status"] for row in answer["nodes"]} == {"not found"}
    assert all(row["behind"] is False and row["history"] == [] for row in answer["nodes"])


def test_kv_explain_cli_prints_each_node_and_its_history(
        cluster: list[Node], cli_main: Callable[..., tuple[int, str, str]]) -> None:
    KvClient(http(cluster[0])).put("k", "hello", bucket="b", w="all")

    code, out, err = cli_main("kv", "explain", "k", "--bucket", "b", "--http",
                              http(cluster[0]))

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("b/k  partition ")
    assert lines[1].startswith("merged: 1 sibling  clock ")
    assert lines[2].split() == ["NODE", "ROLE", "STATUS", "BEHIND", "SIBLINGS"]
    table = [line.split()[:4] for line in lines[3:] if not line.startswith(" ")]
    assert sorted(table[:3]) == [[n, "primary", "holds", "no"] for n in ("a", "b", "c")]
    assert sum("coordinated" in line for line in lines) == 1
    assert sum(" replica from " in line for line in lines) == 2
    code, out, _ = cli_main("kv", "explain", "k", "--bucket", "b", "--json", "--http",
                            http(cluster[0]))
    assert code == 0 and '"nodes"' in out


def test_kv_explain_a_reply_nobody_asked_for_is_dropped_and_counted(
        cluster: list[Node]) -> None:
    service = kv_service(cluster[0])
    assert service.explainer is not None
    service.explainer.tell(PeerMessage("b", "", KvExplainReply(999, None)))
    wait_until(lambda: service.stats().get("kv_explain_dropped") == 1, timeout_s=TIMEOUT_S,
               what="the stray reply to be counted")
    assert explain(cluster[0], "k")["nodes"]  # the actor still serves


def test_kv_explain_a_stopped_replica_is_shown_without_a_copy(cluster: list[Node]) -> None:
    a, _b, c = cluster
    KvClient(http(a)).put("k", "v", bucket="b", w="all")
    c.stop(leave=False)

    row = rows(explain(a, "k"))["c"]

    assert row["status"] in ("unreachable", "no answer")
    assert row["behind"] is None and row["object"] is None
