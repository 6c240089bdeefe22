"""A hostile or broken peer over the real wire: a raw gRPC client (tests/security/conftest
``RawPeer``) that completes the handshake of a keyless cluster and then sends what no
correct node sends: oversized messages, garbage, a flood of made-up members, records at
the maximum incarnation. Each test then checks that the node it attacked still runs and
serves /members correctly.

Made-up members are built with the generated protobuf classes directly (the same bytes
``codec.encode`` makes, without building a million ``Member`` objects in the test), with
the address 127.0.0.1:1, where nothing listens: dials to them fail at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dynago.config import Config
from dynago.core.member import MAX_INCARNATION, Member, Status
from dynago.core.messages import Gossip, StateSync
from dynago.proto import membership_pb2 as pb
from dynago.transport import codec
from dynago.transport.codec import MAX_MEMBERS_PER_MESSAGE, DecodeError

pytestmark = pytest.mark.process

DEFAULTS = Config.local()
"""The configuration of the nodes under test (``--preset local``)."""

LIMIT = DEFAULTS.max_message_bytes

FAKE_ADDRESS = "127.0.0.1:1"

FLOOD_MEMBERS = 1_000_000
FLOOD_BUDGET_S = 20.0
"""The flood stops after this long even if not all made-up members were sent."""
HEALTHZ_BOUND_S = 3.0
"""/healthz must answer within this long throughout a flood (see the flood test)."""

RSS_GROWTH_LIMIT_MB = 200.0

GARBAGE = b"\xff" * 64
"""Bytes that do not parse as an Envelope (a field with the invalid wire type 7)."""


def _made_up_batch(names: range | list[str], status: int = pb.MEMBER_STATUS_ALIVE,
                   prefix: str = "made-up-") -> bytes:
    envelope = pb.Envelope()
    updates = envelope.gossip.updates
    for name in names:
        updates.add(name=f"{prefix}{name}", address=FAKE_ADDRESS, incarnation=0, status=status)
    return envelope.SerializeToString()


def _gossip_of_size(size: int) -> bytes:
    """A well-formed Gossip envelope of exactly ``size`` bytes (one long address)."""
    pad = size
    for _attempt in range(8):
        envelope = pb.Envelope()
        envelope.gossip.updates.add(name="big", address="x" * pad, incarnation=0,
                                    status=pb.MEMBER_STATUS_ALIVE)
        data = envelope.SerializeToString()
        if len(data) == size:
            return data
        pad -= len(data) - size
    raise AssertionError(f"cannot build a {size}-byte envelope")


def _two_nodes(cluster: Any) -> tuple[Any, Any]:
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]), "a and b to form")
    return a, b


def _three_nodes(cluster: Any) -> tuple[Any, Any, Any]:
    a = cluster("a")
    b, c = cluster.start_many([("b", [a.address], []), ("c", [a.address], [])])
    nodes = [a, b, c]
    cluster.wait(lambda: cluster.all_list(nodes, [n.address for n in nodes]),
                 "a, b and c to form")
    return a, b, c


def _intruder(raw_peer: Any, node: Any, name: str = "intruder") -> Any:
    peer = raw_peer(node.address)
    first = peer.handshake(name)
    assert isinstance(first, StateSync), f"{node.name} answered the handshake with {first!r}"
    return peer


# ---------------------------------------------------------------------- oversized, garbage


def test_hostile_oversized_message_just_over_limit_closes_stream_and_is_counted(
    cluster: Any, raw_peer: Any
) -> None:
    """A well-formed Gossip of max_message_bytes + 1 bytes (under gRPC's own limit, which
    has 1 KiB of framing headroom): the codec refuses it, the stream closes,
    ``transport_malformed_messages`` counts it, a WARNING names the sender."""
    a, b = _two_nodes(cluster)
    intruder = _intruder(raw_peer, a)

    assert intruder.send(_gossip_of_size(LIMIT + 1))
    assert intruder.wait_closed(), "a kept the stream of an oversized message open"
    cluster.wait(lambda: cluster.stats(a)["transport_malformed_messages"] == 1,
                 "the oversized message to be counted")
    assert cluster.log_lines(a, "malformed message from intruder", "exceeds the limit"), \
        cluster.report("no warning about the oversized message")
    cluster.assert_serves_exactly(a, [a, b])


def test_hostile_oversized_message_twice_the_limit_is_counted(
    cluster: Any, raw_peer: Any
) -> None:
    """A Gossip of 2 * max_message_bytes: the stream closes and the node stays fine, and
    the refusal is counted and logged like any other oversized message (gRPC's own
    limit is 4 * max_message_bytes, so the codec sees and refuses it)."""
    a, b = _two_nodes(cluster)
    intruder = _intruder(raw_peer, a)

    assert intruder.send(_gossip_of_size(2 * LIMIT))
    assert intruder.wait_closed(), "a kept the stream of an oversized message open"
    cluster.assert_serves_exactly(a, [a, b])

    stats = cluster.stats(a)
    assert stats["transport_malformed_messages"] == 1, cluster.report(
        f"a {2 * LIMIT}-byte message was not counted: {stats}")
    assert cluster.log_lines(a, "intruder"), cluster.report("nothing logged about it")


def test_hostile_garbage_bytes_close_stream_and_are_counted(
    cluster: Any, raw_peer: Any
) -> None:
    """Garbage instead of a Hello, garbage after the handshake, a Gossip with an unknown
    member status (99), and a second Hello after the handshake: each closes its own
    stream and counts in ``transport_malformed_messages``; a keeps serving a and b."""
    with pytest.raises(DecodeError):
        codec.decode(GARBAGE, LIMIT)
    a, b = _two_nodes(cluster)

    before_hello = raw_peer(a.address)
    assert before_hello.send(GARBAGE)
    assert before_hello.wait_closed(), "a kept a stream that began with garbage"
    assert before_hello.recv(timeout_s=1.0) is None, "a answered garbage with a message"

    bad_status = pb.Envelope()
    bad_status.gossip.updates.add(name="m", address=FAKE_ADDRESS, incarnation=1, status=99)
    second_hello = codec.encode(codec.Hello("intruder", "127.0.0.1:9", "dynago", 1, 1,
                                            nonce=b"\x01" * 16))
    for payload in (GARBAGE, bad_status.SerializeToString(), second_hello):
        intruder = _intruder(raw_peer, a)
        assert intruder.send(payload)
        assert intruder.wait_closed(), f"a kept the stream open after {payload[:16]!r}"

    cluster.wait(lambda: cluster.stats(a)["transport_malformed_messages"] == 4,
                 "four malformed messages counted")
    assert "m" not in cluster.statuses(a), cluster.report("a took in a record of status 99")
    cluster.assert_serves_exactly(a, [a, b])
    cluster.assert_serves_exactly(b, [a, b])


# ---------------------------------------------------------------------- member flood


def _flood(intruder: Any, total: int, budget_s: float) -> int:
    """Send up to ``total`` made-up members in batches of MAX_MEMBERS_PER_MESSAGE, as fast
    as the stream takes them, for at most ``budget_s``; stop if the stream closes."""
    deadline = time.monotonic() + budget_s
    sent = 0
    while sent < total and time.monotonic() < deadline and not intruder.closed.is_set():
        batch = range(sent, min(sent + MAX_MEMBERS_PER_MESSAGE, total))
        remaining = max(0.0, deadline - time.monotonic())
        if not intruder.send(_made_up_batch(batch), timeout_s=remaining):
            break
        sent += len(batch)
    return sent


def _made_up_held(node: Any) -> dict[str, str]:
    return {m["name"]: m["status"] for m in node.members_v1()
            if m["name"].startswith("made-up-")}


def test_hostile_member_flood_stays_within_caps(cluster: Any, raw_peer: Any) -> None:
    """One intruder sends up to 1,000,000 made-up ALIVE members (4096 per Gossip, at most
    20 s); then four more intruder identities send 4096 new ones each, which fills the
    map. Every made-up record is accounted for (admitted, or refused and counted in
    ``members_refused_rate``/``members_refused_cap``); the map never holds more than
    ``max_members``; a's RSS grows by less than 200 MB; nothing raised in the membership
    actor; no real member was pushed out of any map. Finally the intruder marks its
    made-up members LEFT: a serves exactly a, b and c again, and every node holds all
    three alive (none lost for good)."""
    a, b, c = _three_nodes(cluster)
    rss_before = cluster.rss_mb(a)

    intruder = _intruder(raw_peer, a)
    started = time.monotonic()
    sent = _flood(intruder, FLOOD_MEMBERS, FLOOD_BUDGET_S)
    flood_s = time.monotonic() - started
    assert sent >= 100 * MAX_MEMBERS_PER_MESSAGE, (
        f"only {sent} made-up members went out in {flood_s:.1f} s "
        f"(stream end: {intruder.end or 'open'})")
    for k in range(4):
        extra = _intruder(raw_peer, a, f"intruder-{k + 2}")
        assert extra.send(_made_up_batch(range(MAX_MEMBERS_PER_MESSAGE),
                                         prefix=f"made-up-extra-{k}-"))
        sent += MAX_MEMBERS_PER_MESSAGE

    def accounted() -> dict[str, int] | None:
        stats = cluster.stats(a, timeout_s=1.0)
        admitted = len(_made_up_held(a))
        refused = stats["members_refused_rate"] + stats["members_refused_cap"]
        # >=: b and c relay made-up members they learnt from a, and a refuses (and
        # counts) those again.
        return stats if admitted + refused >= sent else None

    stats = cluster.wait(accounted, f"a to account for all {sent} made-up records",
                         timeout_s=60.0)
    rss_growth = cluster.rss_mb(a) - rss_before
    records = a.members_v1()
    assert len(records) <= DEFAULTS.max_members, f"a holds {len(records)} records"
    assert stats["members_refused_rate"] > 0, stats
    assert stats["members_refused_cap"] > 0, stats
    assert stats["handler_errors"] == 0, cluster.report(f"a: {stats}")
    assert rss_growth < RSS_GROWTH_LIMIT_MB, (
        f"a's RSS grew by {rss_growth:.0f} MB ({sent} made-up records in {flood_s:.1f} s)")
    for node in (a, b, c):
        # No real member is ever pushed out of a map. Their status is not judged here:
        # while a works through its backlog it answers probes late, and while thousands of
        # made-up members are live, gossip and probes go mostly to them, so a suspected
        # real member's refutation may not reach everyone before its suspicion times out.
        statuses = cluster.statuses(node)
        held = {n: statuses.get(n) for n in "abc"}
        assert all(status in ("alive", "suspect", "failed") for status in held.values()), \
            cluster.report(f"{node.name} holds {held}")
        assert cluster.stats(node)["handler_errors"] == 0, cluster.report(node.name)

    # The intruder takes its members back (LEFT beats any record of incarnation 0); the
    # names are held already, so no allowance applies. Then every real member must be
    # alive again everywhere: none is lost for good.
    names = sorted(_made_up_held(a))
    left = Gossip(tuple(Member(name, FAKE_ADDRESS, 0, Status.LEFT) for name in names))
    cleaner = _intruder(raw_peer, a, "intruder-cleanup")
    for i in range(0, len(names), MAX_MEMBERS_PER_MESSAGE):
        chunk = Gossip(left.updates[i : i + MAX_MEMBERS_PER_MESSAGE])
        assert cleaner.send(codec.encode(chunk))
    real = sorted(n.address for n in (a, b, c))

    def healed() -> bool:
        # All at once: a node that just worked through 10,000 changes may suspect another
        # for a moment (which then refutes); wait for a moment when nobody does.
        return a.members() == real and all(
            cluster.statuses(node).get(n) == "alive" for node in (a, b, c) for n in "abc")

    cluster.wait(healed, "a to list exactly a, b and c and every node to hold all three "
                 "alive, once the made-up members left", timeout_s=30.0)
    assert all(node.proc.poll() is None for node in (a, b, c)), cluster.report("a node exited")


def test_hostile_flood_from_several_streams_keeps_node_responsive(
    cluster: Any, raw_peer: Any
) -> None:
    """Eight intruder streams send 1,000,000 made-up members between them as fast as they
    can. The node should read no faster than it can work: /healthz should keep answering
    throughout (it answers in ~10 ms when idle; a node that does not is restarted by an
    orchestrator). The bound is 3 s: a node that queued the flood unread would answer
    only after working through it (tens of seconds), while a loaded 2-core machine can
    stretch a healthy answer past 1 s."""
    a, b = _two_nodes(cluster)
    streams = [_intruder(raw_peer, a, f"intruder-{k}") for k in range(8)]
    slowest: list[float] = []
    done = threading.Event()

    def watch() -> None:
        for _ in range(10_000):
            t0 = time.monotonic()
            try:
                cluster.http_status(a.http, "/healthz", timeout_s=10.0)
            except OSError:
                pass
            slowest.append(time.monotonic() - t0)
            if done.wait(0.1):
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rss_before = cluster.rss_mb(a)
    sent = 0
    deadline = time.monotonic() + FLOOD_BUDGET_S
    while sent < FLOOD_MEMBERS and time.monotonic() < deadline:
        batch = range(sent, min(sent + MAX_MEMBERS_PER_MESSAGE, FLOOD_MEMBERS))
        stream = streams[(sent // MAX_MEMBERS_PER_MESSAGE) % len(streams)]
        remaining = max(0.0, deadline - time.monotonic())
        if not stream.send(_made_up_batch(batch), timeout_s=remaining):
            break
        sent += len(batch)
    cluster.wait(lambda: cluster.stats(a, timeout_s=10.0), "a to answer again", timeout_s=60)
    done.set()
    watcher.join(15.0)
    rss_growth = cluster.rss_mb(a) - rss_before
    assert max(slowest) < HEALTHZ_BOUND_S, (
        f"/healthz took up to {max(slowest):.1f} s while {sent} made-up records arrived "
        f"on 8 streams (RSS +{rss_growth:.0f} MB)")
    # While thousands of made-up members are live, a real member may be suspected for a
    # moment (its refutation competes with them for gossip); it must come back by itself.
    def both_alive() -> bool:
        return all(cluster.statuses(node).get(m) == "alive" for node in (a, b)
                   for m in ("a", "b"))

    cluster.wait(both_alive, "a and b to hold each other alive again", timeout_s=20.0)


def test_hostile_made_up_members_dial_rate_stays_bounded(cluster: Any, raw_peer: Any) -> None:
    """After one intruder introduces 2048 unreachable members (within its allowance),
    the node's failed dials per second should stay near what the protocol itself sends
    them (gossip fanout / gossip interval + probes + indirect probes + one reconnect per
    interval, ~45/s in --preset local): at most 100/s over a window 4-6 s later."""
    a, b = _two_nodes(cluster)
    intruder = _intruder(raw_peer, a)
    assert intruder.send(_made_up_batch(range(DEFAULTS.new_members_burst)))
    started = time.monotonic()
    cluster.wait(lambda: len(_made_up_held(a)) >= DEFAULTS.new_members_burst - 64,
                 "a to take in the made-up members")

    def dials_at(offset_s: float) -> tuple[int, float]:
        cluster.wait(lambda: time.monotonic() >= started + offset_s, f"t+{offset_s} s",
                     timeout_s=offset_s + 5)
        return cluster.stats(a)["transport_dials_failed"], time.monotonic()

    first, t1 = dials_at(4.0)
    second, t2 = dials_at(6.0)
    rate = (second - first) / (t2 - t1)
    threads = cluster.proc_status(a.pid, "Threads")
    assert rate <= 100, (f"{rate:.0f} failed dials/s to made-up members 4-6 s after they "
                         f"arrived; a runs {threads} threads, "
                         f"{cluster.stats(a)['peer_actors']} peer actors")
    for node in (a, b):
        cluster.assert_holds_alive(node, [a, b])


# ---------------------------------------------------------------------- max incarnation


def test_hostile_max_incarnation_records_do_not_crash(cluster: Any, raw_peer: Any) -> None:
    """A record of a ITSELF at incarnation 2**64-1, FAILED: a cannot refute (it would
    need incarnation 2**64), counts ``unrefutable``, keeps its own record alive and
    unchanged, and serves exactly a, b, c. Then a record of b at 2**64-1, SUSPECT: a
    takes it in and gossips it to b, which cannot refute either (counted on b); no node
    crashes or logs a handler error, and a still holds a and c alive."""
    a, b, c = _three_nodes(cluster)
    own_before = next(m for m in a.members_v1() if m["name"] == "a")
    intruder = _intruder(raw_peer, a)

    assert intruder.send(codec.encode(Gossip((
        Member("a", a.address, MAX_INCARNATION, Status.FAILED, "intruder"),))))
    cluster.wait(lambda: cluster.stats(a)["unrefutable"] >= 1, "a to count it unrefutable")
    own_after = next(m for m in a.members_v1() if m["name"] == "a")
    assert (own_after["status"], own_after["incarnation"]) == (
        own_before["status"], own_before["incarnation"]), (own_before, own_after)
    for node in (a, b, c):
        cluster.assert_serves_exactly(node, [a, b, c])

    assert intruder.send(codec.encode(Gossip((
        Member("b", b.address, MAX_INCARNATION, Status.SUSPECT, "intruder"),))))
    cluster.wait(lambda: cluster.stats(b)["unrefutable"] >= 1,
                 "b to hear of its max-incarnation suspicion and count it unrefutable")
    held = next(m for m in a.members_v1() if m["name"] == "b")
    assert held["incarnation"] == MAX_INCARNATION, held
    for node in (a, b, c):
        assert node.proc.poll() is None, cluster.report(f"{node.name} exited")
        assert cluster.stats(node)["handler_errors"] == 0, cluster.report(node.name)
        assert not cluster.log_lines(node, level="ERROR"), cluster.report(node.name)
    statuses = cluster.statuses(a)
    assert (statuses["a"], statuses["c"]) == ("alive", "alive"), cluster.report(str(statuses))
    assert cluster.statuses(b)["b"] == "alive", cluster.report("b gave up its own record")
