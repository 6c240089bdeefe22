"""The key-value store in real ``dynago node`` processes, continued: bad input refused
with a 4xx and nothing stored, a peer with another ring refused, ``dynago kv`` against a
two-node cluster, and a delete seen from every node and by the key listing."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cluster_support import http_status, run_dynago
from test_proc_kv import kv_stat, kvstore_get, kvstore_post, riak_get, riak_put, start_ring

from dynago.kv.model import DEFAULT_BUCKET

pytestmark = pytest.mark.process

MIB = 1 << 20


# ------------------------------------------------------------------ bad input


def test_kv_bad_input_is_refused_and_stores_nothing(cluster: Any) -> None:
    """Malformed JSON to /kvstore → 400; a value over 1 MiB → 413 (on /kvstore and on
    Riak's PUT); a key over 1 KiB → 413 (both APIs); ``?w=9`` on a Riak PUT (N=3) → 400.
    Values of exactly 1 MiB and keys of exactly 1 KiB are taken. Afterwards none of the
    refused keys exists (404; 413 for a key no read may name) and the store holds only
    the keys written properly."""
    node = cluster("solo")
    kvstore_post(node, "good", "fine")
    assert kv_stat(node, "kv_store_keys") == 1

    json_headers = {"Content-Type": "application/json"}
    text_headers = {"Content-Type": "text/plain"}
    long_key = "k" * 1025
    refused = [
        ("/kvstore", json_headers, b'{"Key": "broken", "Value": ', 400),
        ("/kvstore", json_headers, b'{"Key": "broken", "Value": 7}', 400),
        ("/kvstore", json_headers,
         json.dumps({"Key": "big", "Value": "v" * (MIB + 1)}).encode(), 413),
        ("/kvstore", json_headers, json.dumps({"Key": long_key, "Value": "v"}).encode(), 413),
        ("/buckets/b/keys/big", text_headers, b"v" * (MIB + 1), 413),
        (f"/buckets/b/keys/{long_key}", text_headers, b"v", 413),
        ("/buckets/b/keys/wide?w=9", text_headers, b"v", 400),
    ]
    for path, headers, body, expected in refused:
        method = "POST" if path == "/kvstore" else "PUT"
        status, answer = http_status(node.http, path, method=method, headers=headers,
                                     body=body, timeout_s=8.0)
        assert status == expected, f"{method} {path[:40]}: {status} {answer[:200]!r}"
        assert answer, f"{method} {path[:40]}: {status} with no explanation"

    # Exactly 1 MiB is still taken: the limit is the documented one, not lower.
    status, answer = http_status(node.http, "/buckets/b/keys/just", method="PUT",
                                 headers=text_headers, body=b"v" * MIB, timeout_s=8.0)
    assert status == 204, answer[:200]

    # So is a key of exactly 1 KiB.
    edge_key = "k" * 1024
    kvstore_post(node, edge_key, "edge")
    assert kvstore_get(node, edge_key) == (200, {"key": edge_key, "value": "edge",
                                                 "node": "solo"})

    for key in ("broken", "big"):
        assert kvstore_get(node, key)[0] == 404, key
    for key in ("big", "wide"):
        assert riak_get(node, f"/buckets/b/keys/{key}")[0] == 404, key
    # A key over the limit cannot even be looked up: reads refuse it the same way.
    assert kvstore_get(node, long_key)[0] == 413
    assert riak_get(node, f"/buckets/b/keys/{long_key}")[0] == 413
    assert kv_stat(node, "kv_store_keys") == 3, cluster.report("a refused write was stored")


# ------------------------------------------------------------------ ring mismatch


def test_kv_peer_with_another_ring_is_refused(
        cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node with 128 ring partitions (DYNAGO_RING_PARTITIONS) seeded at a 64-partition
    node never joins it: a WARNING line names the ring mismatch, and while it goes on
    retrying neither node lists the other."""
    old = cluster("old")
    monkeypatch.setenv("DYNAGO_RING_PARTITIONS", "128")
    new = cluster("new", seeds=[old.address])

    def mismatch_logged() -> list[str]:
        # The refusing side names both rings; the refused side quotes its words.
        return [line for node in (old, new) for line in cluster.log_lines(
            node, "key-value ring differs: the peer has 128 partitions", "we have 64")]

    cluster.wait(mismatch_logged, "a WARNING line naming the ring mismatch")
    # Several retry periods of the seed dialler: the two stay apart all along.
    end = time.monotonic() + 2.0
    for _ in range(200):
        assert old.members() == [old.address], cluster.report("old lists the new node")
        assert new.members() == [new.address], cluster.report("new lists the old node")
        assert kv_stat(old, "kv_ring_members") == 1
        if time.monotonic() >= end:
            break
        time.sleep(0.05)  # the polling period of the observation
    assert kv_stat(new, "kv_ring_partitions_owned") == 128


# ------------------------------------------------------------------ the CLI


def test_dynago_kv_put_on_one_node_get_on_another(cluster: Any) -> None:
    """``dynago kv put cart alice --http A`` then ``dynago kv get cart --http B`` prints
    ``alice``; ``kv ls`` through B lists ``cart``; a second ``kv put cart bob --http A``
    makes a sibling, which ``kv get`` prints beside the first; ``kv get missing`` exits 1
    saying not found."""
    a, b = start_ring(cluster, ["a", "b"])
    put = run_dynago(["kv", "put", "cart", "alice", "--http", a.http])
    assert put.returncode == 0, put.stderr
    got = run_dynago(["kv", "get", "cart", "--http", b.http])
    assert (got.returncode, got.stdout) == (0, "alice\n"), got.stderr
    listed = run_dynago(["kv", "ls", "--http", b.http])
    assert (listed.returncode, listed.stdout) == (0, "cart\n"), listed.stderr
    # A second write without a context (the CLI sends none) is a sibling, not a
    # replacement: kv get prints both, "VTAG<TAB>VALUE" a line.
    second = run_dynago(["kv", "put", "cart", "bob", "--http", a.http])
    assert second.returncode == 0, second.stderr
    both = run_dynago(["kv", "get", "cart", "--http", b.http])
    assert both.returncode == 0, both.stderr
    lines = both.stdout.splitlines()
    assert sorted(line.split("\t")[1] for line in lines) == ["alice", "bob"], both.stdout
    assert all(line.split("\t")[0] for line in lines), both.stdout
    missing = run_dynago(["kv", "get", "missing", "--http", b.http])
    assert missing.returncode == 1, (missing.stdout, missing.stderr)
    assert missing.stdout == ""
    assert "not found" in missing.stderr, missing.stderr


# ------------------------------------------------------------------ delete


def test_kv_delete_with_context_is_seen_everywhere(cluster: Any) -> None:
    """A key is written and read (for its X-Riak-Vclock), then DELETEd with that vclock
    through another node: every node answers 404 for it, on Riak's API and /kvstore's
    bucket alike, and neither ``GET /buckets/B/keys?keys=true`` nor ``dynago kv ls`` lists
    it any more, while a key kept beside it is still listed and readable; ``dynago kv
    delete`` of it exits 1 (not found). A write carrying the tombstone's vclock brings it
    back as one value on every node."""
    nodes = start_ring(cluster, ["a", "b", "c"])
    a, b, c = nodes
    riak_put(a, "/buckets/carts/keys/gone", b"soon deleted")
    riak_put(a, "/buckets/carts/keys/kept", b"stays")
    kvstore_post(a, "basket", "also deleted")
    status, headers, body = riak_get(b, "/buckets/carts/keys/gone")
    assert (status, body) == (200, b"soon deleted")
    vclock = headers["X-Riak-Vclock"]
    assert base64.b64decode(vclock)

    status, answer = http_status(c.http, "/buckets/carts/keys/gone", method="DELETE",
                                 headers={"X-Riak-Vclock": vclock}, timeout_s=8.0)
    assert status == 204, answer
    status, headers, _ = riak_get(a, f"/buckets/{DEFAULT_BUCKET}/keys/basket")
    assert status == 200
    status, answer = http_status(b.http, f"/buckets/{DEFAULT_BUCKET}/keys/basket",
                                 method="DELETE",
                                 headers={"X-Riak-Vclock": headers["X-Riak-Vclock"]},
                                 timeout_s=8.0)
    assert status == 204, answer

    tombstone = ""
    for node in nodes:
        status, headers, body = riak_get(node, "/buckets/carts/keys/gone")
        assert status == 404, cluster.report(f"{node.name} answers {status} {body!r}")
        assert headers.get("X-Riak-Deleted") == "true", dict(headers)
        tombstone = headers["X-Riak-Vclock"]
        assert kvstore_get(node, "basket")[0] == 404, cluster.report(node.name)
        status, _, body = riak_get(node, "/buckets/carts/keys/kept")
        assert (status, body) == (200, b"stays"), cluster.report(node.name)
        status, listing = http_status(node.http, "/buckets/carts/keys?keys=true",
                                      timeout_s=8.0)
        assert status == 200, listing
        assert json.loads(listing)["keys"] == ["kept"], cluster.report(
            f"{node.name} lists {listing!r}")
    listed = run_dynago(["kv", "ls", "--bucket", "carts", "--http", a.http])
    assert (listed.returncode, listed.stdout) == (0, "kept\n"), listed.stderr
    again = run_dynago(["kv", "delete", "gone", "--bucket", "carts", "--http", b.http])
    assert again.returncode == 1, (again.stdout, again.stderr)

    # A write with the tombstone's context brings the key back as one value.
    riak_put(b, "/buckets/carts/keys/gone", b"back", vclock=tombstone)
    for node in nodes:
        status, _, body = riak_get(node, "/buckets/carts/keys/gone")
        assert (status, body) == (200, b"back"), cluster.report(
            f"{node.name} after the write over the tombstone: {status} {body!r}")
