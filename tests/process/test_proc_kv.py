"""The key-value store in real ``dynago node`` processes: Dynago's ``/kvstore`` scenario
(keys written through every node read back alike everywhere, spread over the ring),
quorum reads and writes through a SIGKILL, Riak siblings and their resolution, and a
restart on the same data directory (sqlite and lmdb; SIGTERM and SIGKILL; a replica
of three serving its keys alone).

Bad input, a peer with another ring, ``dynago kv`` and deletes are in test_proc_kv_ops.py.
"""

from __future__ import annotations

import base64
import json
import signal
import urllib.error
import urllib.request
from collections.abc import Sequence
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from cluster_support import http_status

from dynago.kv.client import KvClient, parse_multipart
from dynago.launch import NodeProcess

pytestmark = pytest.mark.process

KEYS = [f"key-{i}" for i in range(8)]


# ------------------------------------------------------------------ helpers


def kvstore_post(node: NodeProcess, key: str, value: str) -> dict[str, Any]:
    """``POST /kvstore`` on ``node``; the decoded 200 answer (asserted)."""
    status, body = http_status(node.http, "/kvstore", method="POST",
                               headers={"Content-Type": "application/json"},
                               body=json.dumps({"Key": key, "Value": value}).encode(),
                               timeout_s=8.0)
    assert status == 200, f"POST /kvstore {key!r} on {node.name}: {status} {body!r}"
    answer: dict[str, Any] = json.loads(body)
    return answer


def kvstore_get(node: NodeProcess, key: str) -> tuple[int, Any]:
    """``GET /kvstore/KEY`` on ``node``: (status, decoded JSON)."""
    status, body = http_status(node.http, f"/kvstore/{key}", timeout_s=8.0)
    return status, json.loads(body or b"null")


def kv_stat(node: NodeProcess, name: str) -> int:
    """One counter of ``node``'s /v1/stats."""
    status, body = http_status(node.http, "/v1/stats", timeout_s=5.0)
    assert status == 200, f"/v1/stats of {node.name}: {status}"
    value: int = json.loads(body)[name]
    return value


def start_ring(cluster: Any, names: Sequence[str],
               extra_args: Sequence[str] = ()) -> list[NodeProcess]:
    """Nodes ``names``, all but the first seeded through the first; returns once every
    node lists all of them and every node's ring holds all of them (before that a key's
    preference list may differ from node to node)."""
    first = cluster(names[0], extra_args=extra_args)
    nodes = [first] + [cluster(name, seeds=[first.address], extra_args=extra_args)
                       for name in names[1:]]
    cluster.wait(lambda: cluster.all_list(nodes, [n.address for n in nodes]),
                 f"{len(nodes)} nodes to converge")
    cluster.wait(lambda: all(kv_stat(n, "kv_ring_members") == len(nodes) for n in nodes),
                 f"every ring to hold the {len(nodes)} nodes")
    return nodes


# ------------------------------------------------------------------ Dynago's scenario


@pytest.mark.parametrize("n_val", [3, 2])
def test_kvstore_keys_written_anywhere_read_back_everywhere(
        cluster: Any, monkeypatch: pytest.MonkeyPatch, n_val: int) -> None:
    """Three nodes (b and c seeded through a), 8 keys POSTed to /kvstore through a, b and
    c in turn: every key reads back from every node with the value written and the same
    ``node`` (its first preference-list node, as the POST said). Each key is stored on
    exactly ``n_val`` nodes: with N=3 every node holds all 8; with N=2 (DYNAGO_N_VAL) the
    keys are spread, no node holding every key, and at least 2 nodes holding some."""
    monkeypatch.setenv("DYNAGO_N_VAL", str(n_val))
    nodes = start_ring(cluster, ["a", "b", "c"])
    names = {n.name for n in nodes}

    firsts = {}
    for i, key in enumerate(KEYS):
        answer = kvstore_post(nodes[i % len(nodes)], key, f"value of {key}")
        assert answer["message"] == "Stored the key value"
        assert answer["node"] in names, answer
        firsts[key] = answer["node"]

    for key in KEYS:
        for node in nodes:
            status, got = kvstore_get(node, key)
            assert (status, got) == (200, {"key": key, "value": f"value of {key}",
                                           "node": firsts[key]}), cluster.report(
                f"GET /kvstore/{key} on {node.name}")

    # W=2 acknowledges before a third replica (N=3) has stored: poll for the counts.
    def counts() -> dict[str, int] | None:
        held = {n.name: kv_stat(n, "kv_store_keys") for n in nodes}
        return held if sum(held.values()) == n_val * len(KEYS) else None

    held = cluster.wait(counts, f"each key to be on {n_val} nodes")
    assert sum(1 for count in held.values() if count > 0) >= 2, held
    if n_val == 3:
        assert set(held.values()) == {len(KEYS)}, held
    else:
        assert min(held.values()) < len(KEYS), f"some node holds every key: {held}"
        assert max(held.values()) <= len(KEYS), held


# ------------------------------------------------------------------ a crash


def test_kv_quorum_survives_sigkill_of_one_node(cluster: Any) -> None:
    """Of three nodes (N=3), c is killed with SIGKILL. Through a and b, writes at W=2 and
    reads at R=2 of old and new keys succeed at once (c still held alive or suspect)
    and again once both have marked c failed; so do /kvstore writes and reads at its
    default quorum."""
    a, b, c = start_ring(cluster, ["a", "b", "c"])
    clients = [KvClient(a.http, timeout_s=8.0), KvClient(b.http, timeout_s=8.0)]
    try:
        for i, key in enumerate(KEYS):
            clients[i % 2].put(key, f"old {key}", bucket="crash", w=2)

        c.signal(signal.SIGKILL)
        assert c.proc.wait(5.0) == -signal.SIGKILL

        def round_trip(phase: str) -> None:
            for i, client in enumerate(clients):
                for key in KEYS:
                    got = client.get(key, bucket="crash", r=2)
                    assert got is not None and got.value == f"old {key}".encode(), (
                        cluster.report(f"{phase}: {key} through {'ab'[i]}: {got}"))
                new_key = f"{phase}-{i}"
                client.put(new_key, f"new {new_key}", bucket="crash", w=2)
                for reader in clients:
                    got = reader.get(new_key, bucket="crash", r=2)
                    assert got is not None and got.value == f"new {new_key}".encode(), (
                        cluster.report(f"{phase}: {new_key} written through {'ab'[i]}"))
            # Dynago's API, at its default R=W=2, through each survivor.
            for writer, reader in ((a, b), (b, a)):
                key = f"{phase}-{writer.name}"
                kvstore_post(writer, key, f"kv {key}")
                status, got = kvstore_get(reader, key)
                assert (status, got["value"]) == (200, f"kv {key}"), cluster.report(
                    f"{phase}: /kvstore {key} read through {reader.name}: {status} {got}")

        round_trip("unnoticed")
        # The first round must have run before the failure detector's verdict.
        held = {n.name: cluster.statuses(n).get("c") for n in (a, b)}
        assert "failed" not in held.values(), cluster.report(
            f"c was marked failed before the first round ended: {held}")
        cluster.wait(lambda: all(cluster.statuses(n).get("c") == "failed" for n in (a, b)),
                     "a and b to mark c failed", timeout_s=20.0)
        round_trip("failed")
    finally:
        for client in clients:
            client.close()


# ------------------------------------------------------------------ siblings


def riak_put(node: NodeProcess, path: str, value: bytes,
             vclock: str | None = None) -> int:
    headers = {"Content-Type": "text/plain"}
    if vclock is not None:
        headers["X-Riak-Vclock"] = vclock
    status, body = http_status(node.http, path, method="PUT", headers=headers, body=value,
                               timeout_s=8.0)
    assert status == 204, f"PUT {path} on {node.name}: {status} {body!r}"
    return status


def riak_get(node: NodeProcess, path: str) -> tuple[int, Message, bytes]:
    """GET with ``Accept: multipart/mixed``: (status, headers (names in any case), body)."""
    request = urllib.request.Request(f"http://{node.http}{path}",
                                     headers={"Accept": "multipart/mixed"})
    try:
        with urllib.request.urlopen(request, timeout=8.0) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def test_riak_concurrent_writes_make_siblings_a_context_write_resolves(cluster: Any) -> None:
    """Two PUTs of one Riak key without a vclock (through a and through b) leave two
    siblings: a multipart GET answers 300 with both values, from every node. A PUT that
    carries that answer's X-Riak-Vclock replaces both: every node then answers 200 with
    the one new value."""
    nodes = start_ring(cluster, ["a", "b", "c"])
    a, b, c = nodes
    path = "/buckets/carts/keys/alice"
    riak_put(a, path, b"apples")
    riak_put(b, path, b"pears")

    vclock = ""
    for node in nodes:
        status, headers, body = riak_get(node, path)
        assert status == 300, cluster.report(f"GET on {node.name}: {status} {body!r}")
        siblings = parse_multipart(headers["Content-Type"], body)
        assert sorted(s.value for s in siblings) == [b"apples", b"pears"], siblings
        assert len({s.vtag for s in siblings}) == 2, siblings
        vclock = headers["X-Riak-Vclock"]
        assert base64.b64decode(vclock), headers

    riak_put(c, path, b"apples and pears", vclock=vclock)
    for node in nodes:
        status, headers, body = riak_get(node, path)
        assert (status, body) == (200, b"apples and pears"), cluster.report(
            f"GET on {node.name} after the resolving write: {status} {body!r}")
        assert headers["Content-Type"].startswith("text/plain"), headers


# ------------------------------------------------------------------ restart


@pytest.mark.parametrize(("engine", "stop"), [("sqlite", "sigterm"), ("lmdb", "sigterm"),
                                             ("sqlite", "sigkill"), ("lmdb", "sigkill")])
def test_kv_keys_survive_restart_on_the_data_dir(
        cluster: Any, tmp_path: Path, engine: str, stop: str) -> None:
    """A one-node store on ``--data-dir`` (``--storage-engine``) takes 8 /kvstore keys and
    a Riak object with metadata, is stopped with SIGTERM (exits 0) — or killed with
    SIGKILL: a write is acknowledged only once committed — and started again on the same
    data dir and gRPC port: every key reads back with its value, the Riak object with its
    content type and metadata, and the store counts the same keys."""
    args = ["--data-dir", str(tmp_path / "data"), "--storage-engine", engine]
    node = cluster("solo", extra_args=args)
    for key in KEYS:
        kvstore_post(node, key, f"kept {key}")
    status, body = http_status(node.http, "/buckets/b/keys/doc", method="PUT",
                               headers={"Content-Type": "application/json",
                                        "X-Riak-Meta-Owner": "alice"},
                               body=b'{"n": 1}')
    assert status == 204, body
    stored = kv_stat(node, "kv_store_keys")
    assert stored == len(KEYS) + 1

    if stop == "sigterm":
        assert cluster.stop(node) == 0, cluster.report("the node did not exit 0 on SIGTERM")
    else:
        node.signal(signal.SIGKILL)
        assert node.proc.wait(5.0) == -signal.SIGKILL
    again = cluster("solo", extra_args=args, bind=node.address)

    for key in KEYS:
        assert kvstore_get(again, key) == (200, {"key": key, "value": f"kept {key}",
                                                 "node": "solo"}), cluster.report(key)
    status, headers, body = riak_get(again, "/buckets/b/keys/doc")
    assert (status, body) == (200, b'{"n": 1}'), cluster.report(f"{status} {body!r}")
    assert headers["Content-Type"] == "application/json", headers
    assert headers.get("X-Riak-Meta-Owner") == "alice", headers
    assert kv_stat(again, "kv_store_keys") == stored


def test_kv_replica_restarted_on_its_data_dir_serves_its_keys_alone(
        cluster: Any, tmp_path: Path) -> None:
    """Three nodes on their own data dirs take 8 keys at W=all. c is stopped (SIGTERM)
    and started again on its data dir and gRPC port; once it is back in every ring, a
    and b are killed: c alone still answers every key at R=1 from what it stored."""
    args = {name: ["--data-dir", str(tmp_path / name)] for name in "abc"}
    a = cluster("a", extra_args=args["a"])
    b = cluster("b", seeds=[a.address], extra_args=args["b"])
    c = cluster("c", seeds=[a.address], extra_args=args["c"])
    nodes = [a, b, c]
    cluster.wait(lambda: all(kv_stat(n, "kv_ring_members") == 3 for n in nodes),
                 "every ring to hold the 3 nodes")
    with KvClient(a.http, timeout_s=8.0) as client:
        for key in KEYS:
            client.put(key, f"durable {key}", bucket="d", w="all")

    assert cluster.stop(c) == 0, cluster.report("c did not exit 0 on SIGTERM")
    c2 = cluster("c", seeds=[a.address], extra_args=args["c"], bind=c.address)
    cluster.wait(lambda: all(kv_stat(n, "kv_ring_members") == 3 for n in (a, b, c2))
                 and all(cluster.statuses(n).get("c") == "alive" for n in (a, b)),
                 "c to be back in every ring")
    assert kv_stat(c2, "kv_store_keys") == len(KEYS)
    for node in (a, b):
        node.kill()
    with KvClient(c2.http, timeout_s=8.0) as client:
        for key in KEYS:
            got = client.get(key, bucket="d", r=1)
            assert got is not None and got.value == f"durable {key}".encode(), (
                cluster.report(f"{key} from c alone: {got}"))


def test_kv_restarted_node_does_not_serve_alone_before_it_rejoins(
        cluster: Any, tmp_path: Path) -> None:
    """A node restarted on its data dir remembers its ring's members (they are taken as
    failed until membership says otherwise): with the others gone it refuses a write at
    the default W = 2 with 503 instead of acknowledging one copy, and it still knows the
    three members of its ring. (Without that memory it saw a ring of itself alone and
    answered at R = W = 1 until it rejoined.)"""
    args = {name: ["--data-dir", str(tmp_path / name)] for name in "abc"}
    a = cluster("a", extra_args=args["a"])
    b = cluster("b", seeds=[a.address], extra_args=args["b"])
    c = cluster("c", seeds=[a.address], extra_args=args["c"])
    cluster.wait(lambda: all(kv_stat(n, "kv_ring_members") == 3 for n in (a, b, c)),
                 "every ring to hold the 3 nodes")
    for node in (a, b, c):
        node.kill()
    c2 = cluster("c", seeds=[a.address], extra_args=args["c"], bind=c.address)
    assert kv_stat(c2, "kv_ring_members") == 3
    status, body = http_status(c2.http, "/buckets/d/keys/alone", method="PUT",
                               headers={"Content-Type": "text/plain"}, body=b"one copy",
                               timeout_s=8.0)
    assert status == 503, (status, body)
    assert kv_stat(c2, "kv_store_keys") == 0, "a refused write stored nothing"
