"""Cluster key (``--cluster-key-file``): proof of a shared key in the handshake, over the
real wire. Nodes with the same key join; a node with another key, or with none, stays out;
keys rotate without downtime; an intruder can neither reflect the node's own proof back
nor replay a proof it saw."""

from __future__ import annotations

import os
from typing import Any

import pytest

from dynago.core.messages import StateSync
from dynago.transport import codec
from dynago.transport.handshake import Keyring

pytestmark = pytest.mark.process

ATTEMPTS = 3
"""Refused dials we wait for before judging a node that must stay out."""

NO_MATCH = "matches none of this node's cluster keys"
NO_KEY_HERE = "peer uses a cluster key and this node has none"
NO_PROOF = "peer sent no proof of the cluster key"


def _key() -> bytes:
    return os.urandom(32)


def test_cluster_key_same_key_joins_other_or_no_key_stays_out(
    cluster: Any, key_file: Any
) -> None:
    """``a`` and ``b`` share key K and form. ``x`` (key L) and ``u`` (no key) seed from
    ``a``: each refuses a's proof on every try (counted in its
    ``transport_streams_refused``, logged once), so neither ever becomes a member of the
    keyed cluster nor the other way round; a and b keep serving exactly a and b."""
    k, other = _key(), _key()
    a = cluster("a", extra_args=["--cluster-key-file", key_file("a", k)])
    b = cluster("b", seeds=[a.address], extra_args=["--cluster-key-file", key_file("b", k)])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]),
                 "a and b (same key) to form")

    x, u = cluster.start_many([
        ("x", [a.address], ["--cluster-key-file", key_file("x", other)]),
        ("u", [a.address], []),
    ])
    cluster.wait(lambda: all(cluster.stats(n)["transport_streams_refused"] >= ATTEMPTS
                             for n in (x, u)),
                 f"x (other key) and u (no key) to refuse a's proof {ATTEMPTS} times each")

    assert len(cluster.log_lines(x, "refused stream with 'a'", NO_MATCH)) == 1, \
        cluster.report("x did not log its refusal of a exactly once")
    assert len(cluster.log_lines(u, "refused stream with 'a'", NO_KEY_HERE)) == 1, \
        cluster.report("u did not log its refusal of a exactly once")
    for node in (a, b):
        cluster.assert_serves_exactly(node, [a, b])
        assert set(cluster.statuses(node)) == {"a", "b"}, cluster.report(
            f"{node.name} holds a record of x or u")
    cluster.assert_serves_exactly(x, [x])
    cluster.assert_serves_exactly(u, [u])


def test_cluster_key_mismatch_seen_by_the_node_knocked_at(cluster: Any, key_file: Any) -> None:
    """The node a wrong-key (or keyless) node knocks at should log and count the refusal,
    as it does for another cluster name: the grpc_transport docstring says refusals are
    logged on both sides."""
    a = cluster("a", extra_args=["--cluster-key-file", key_file("a", _key())])
    x, u = cluster.start_many([
        ("x", [a.address], ["--cluster-key-file", key_file("x", _key())]),
        ("u", [a.address], []),
    ])
    cluster.wait(lambda: all(cluster.stats(n)["transport_streams_refused"] >= ATTEMPTS
                             for n in (x, u)),
                 f"x and u to refuse a's proof {ATTEMPTS} times each")
    cluster.assert_serves_exactly(a, [a])

    # a hears of the last refusals a moment after x and u counted them: poll.
    cluster.wait(lambda: cluster.stats(a)["transport_streams_refused"] >= 2 * ATTEMPTS,
                 f"a to count {2 * ATTEMPTS} refusals", timeout_s=10.0)
    stats = cluster.stats(a)
    assert stats["transport_streams_refused"] >= 2 * ATTEMPTS, cluster.report(
        f"a counted {stats['transport_streams_refused']} refused streams for "
        f"{2 * ATTEMPTS} failed key handshakes")
    assert cluster.log_lines(a, "'x'") and cluster.log_lines(a, "'u'"), cluster.report(
        "a logged nothing about x or u")


def test_cluster_key_rotation_without_downtime(cluster: Any, key_file: Any) -> None:
    """The documented rotation: ``a`` and ``b`` run with [old]; ``b`` restarts with
    [old, new] (proves with old, accepts both) and rejoins; ``a`` restarts with
    [new, old] and rejoins: [new, old] and [old, new] talk. A node with only [new] joins
    through ``a`` [new, old]. A stale node with only [old] is refused by the [new] node,
    and so is a raw client that proves with the old key (the [new] node logs and counts
    that one)."""
    old, new = _key(), _key()
    a = cluster("a", extra_args=["--cluster-key-file", key_file("a-old", old)])
    b = cluster("b", seeds=[a.address],
                extra_args=["--cluster-key-file", key_file("b-old", old)])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]), "a, b [old] to form")

    # Step 1: new key added last, on a restarted b. a ([old]) keeps talking to it.
    assert cluster.stop(b) == 0, cluster.report("b did not stop cleanly")
    b = cluster("b", seeds=[a.address], bind=b.address,
                extra_args=["--cluster-key-file", key_file("b-old-new", old, new)])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address])
                 and cluster.statuses(a).get("b") == "alive",
                 "a [old] and restarted b [old, new] to list each other")

    # Step 2: new key made first, on a restarted a: [new, old] <-> [old, new].
    assert cluster.stop(a) == 0, cluster.report("a did not stop cleanly")
    a = cluster("a", seeds=[b.address], bind=a.address,
                extra_args=["--cluster-key-file", key_file("a-new-old", new, old)])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address])
                 and cluster.statuses(b).get("a") == "alive",
                 "restarted a [new, old] and b [old, new] to list each other")

    # Step 3: a node with only [new] talks to a [new, old].
    n = cluster("n", seeds=[a.address], extra_args=["--cluster-key-file", key_file("n", new)])
    cluster.wait(lambda: cluster.statuses(a).get("n") == "alive"
                 and cluster.statuses(n).get("a") == "alive",
                 "n [new] and a [new, old] to list each other as alive")

    # A stale node with only [old] knocks at n [new]: it stays out.
    s = cluster("s", seeds=[n.address],
                extra_args=["--cluster-key-file", key_file("s-old", old)])
    cluster.wait(lambda: cluster.stats(s)["transport_streams_refused"] >= ATTEMPTS,
                 f"s [old] and n [new] to fail {ATTEMPTS} handshakes")
    assert cluster.log_lines(s, "refused stream with 'n'", NO_MATCH), cluster.report(
        "s did not log why it stays out")
    assert "s" not in cluster.statuses(n), cluster.report("n holds a record of s")
    cluster.assert_serves_exactly(s, [s])

    for node in (a, b):
        cluster.assert_serves_exactly(node, [a, b, n])
    assert n.proc.poll() is None and "n" in cluster.statuses(a)


def test_cluster_key_stale_key_proof_refused_by_new_key_node(
    cluster: Any, key_file: Any, raw_peer: Any
) -> None:
    """A raw client that completes the handshake with a proof made with the old key is
    refused by a node with only [new]: Refusal, stream closed, counted, logged once with
    the reason. The same client with the new key is accepted (the control)."""
    old, new = _key(), _key()
    n = cluster("n", extra_args=["--cluster-key-file", key_file("n", new)])

    accepted = raw_peer(n.address)
    first = accepted.handshake("holder-of-new", keyring=Keyring((new,)))
    assert isinstance(first, StateSync), f"valid proof answered with {first!r}"

    for _ in range(2):
        stale = raw_peer(n.address)
        answer = stale.handshake("holder-of-old", keyring=Keyring((old,)))
        assert isinstance(answer, codec.Refusal) and NO_MATCH in answer.reason, answer
        assert stale.wait_closed(), "n kept a stream with a stale-key proof open"

    assert cluster.stats(n)["transport_streams_refused"] == 2, cluster.report("not counted")
    assert len(cluster.log_lines(n, "'holder-of-old'", NO_MATCH)) == 1, cluster.report(
        "n did not log the stale-key refusal exactly once")
    cluster.assert_serves_exactly(n, [n])


def test_cluster_key_reflected_or_replayed_proof_refused(
    cluster: Any, key_file: Any, raw_peer: Any
) -> None:
    """An intruder without the key sends back, as its own Auth, the proof the node put in
    its Hello (reflection); a second one sends no proof at all; a third replays, with the
    same nonce and name, the Auth that a key holder sent on an earlier stream (replay: the
    node's nonce is fresh each time). All three are refused and counted; the key holder's
    original stream was accepted. The node serves exactly itself throughout."""
    k = _key()
    a = cluster("a", extra_args=["--cluster-key-file", key_file("a", k)])

    reflector = raw_peer(a.address)
    their_hello = reflector.hello("reflector")
    assert isinstance(their_hello, codec.Hello) and len(their_hello.proof) == 32
    reflector.send(codec.encode(codec.Auth(their_hello.proof)))
    answer = reflector.recv_message()
    assert isinstance(answer, codec.Refusal) and NO_MATCH in answer.reason, answer
    assert reflector.wait_closed()

    empty = raw_peer(a.address)
    answer = empty.handshake("no-proof")
    assert isinstance(answer, codec.Refusal) and NO_PROOF in answer.reason, answer

    holder = raw_peer(a.address)
    assert isinstance(holder.hello("holder"), codec.Hello)
    recorded_auth = codec.Auth(holder.dialler_proof(Keyring((k,)), "holder"))
    holder.send(codec.encode(recorded_auth))
    assert isinstance(holder.recv_message(), StateSync), "the key holder was not accepted"

    replayer = raw_peer(a.address)
    assert isinstance(replayer.hello("holder", nonce=holder.nonce), codec.Hello)
    replayer.send(codec.encode(recorded_auth))
    answer = replayer.recv_message()
    assert isinstance(answer, codec.Refusal) and NO_MATCH in answer.reason, answer
    assert replayer.wait_closed()

    assert cluster.stats(a)["transport_streams_refused"] == 3, cluster.report("not counted")
    cluster.assert_serves_exactly(a, [a])
