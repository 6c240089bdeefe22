"""SWIM probing through the real actors: a MembershipActor with its PeerActors, a
FakeTransport whose remote ends the test plays, and a ManualClock that moves only when
the test advances the ManualScheduler (one ``tick_interval_s`` at a time, and the actor
has handled each tick before the clock moves again). Plus two in-process clusters over a
MemoryNetwork on real time, for the rule that wall clocks take no part in membership.

Fixtures: conftest.py. Timings are those of ``Config.local()``: probe period 0.3 s,
probe timeout 0.1 s, suspicion timeout 1.2 s at the least (N < 10), 4.8 s at the most.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from dynago.actors import api
from dynago.actors.messages import MemberView, PeerMessage
from dynago.clock import SystemClock
from dynago.config import Config
from dynago.core import EventKind, Gossip, Member, Status
from dynago.core.messages import Ack, Ping
from dynago.core.suspicion import expected_confirmations, suspicion_bounds, suspicion_timeout
from dynago.node import Node
from dynago.transport.memory import MemoryNetwork

A = "127.0.0.1:7001"
B = "127.0.0.1:7002"
C = "127.0.0.1:7003"
TIMEOUT_S = 5.0
EPSILON_S = 1e-6


def view_of(ref: pykka.ActorRef[Any], name: str) -> MemberView:
    (view,) = [v for v in api.snapshot(ref, timeout_s=TIMEOUT_S) if v.name == name]
    return view


def stats(ref: pykka.ActorRef[Any]) -> dict[str, int]:
    return api.stats(ref, timeout_s=TIMEOUT_S)


def step(scheduler: Any, config: Config, ref: pykka.ActorRef[Any]) -> None:
    """One tick of manual time, then wait until the actor has handled it: the tick is told
    from this thread, so an ask from this thread is answered after it."""
    scheduler.advance(config.tick_interval_s)
    stats(ref)


# --------------------------------------------------------------------------- the hint


def test_probe_hint_stream_closed_by_the_peer_probes_it_at_once(
    membership, transport, scheduler, clock, config, events, eventually
):
    """SWIM hint (README: "A lost gRPC stream only makes a node probe that member at
    once"): when a's stream is closed by a's end, a Ping to a is started right away, with
    no time passing on the clock, and a stays alive (a hint, not a verdict). The Ping
    waits in a's PeerActor, goes out on the stream it redials after its backoff, and an
    Ack to it ends the probe: no suspicion follows."""
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    remote = transport.accept("a", A)  # a dialled us
    started_at = clock.monotonic()
    assert stats(membership)["probes_sent"] == 0

    remote.close()

    eventually(lambda: stats(membership)["probes_sent"] == 1)
    assert clock.monotonic() == started_at, "the probe must not wait for a protocol period"
    assert view_of(membership, "a").status == "alive"

    # a's PeerActor redials after its first backoff delay (at most the initial backoff).
    delay = eventually(lambda: scheduler.delays)[-1]
    assert delay <= config.reconnect_initial_backoff_s + EPSILON_S
    while clock.monotonic() - started_at < delay + EPSILON_S:
        step(scheduler, config, membership)
    # (A list: the index of the first dial is 0, which ``eventually`` would take as falsy.)
    (index,) = eventually(lambda: [transport.dial_index("a", A)])
    redialled = transport.connect(index, "a", A)

    (ping,) = eventually(lambda: redialled.received_of(Ping))
    assert ping.target == Member("a", A)
    redialled.send(Ack(ping.seq, Member("a", A)))
    eventually(lambda: stats(membership)["acks_received"] == 1)

    # Past the end of that probe's period: it was answered, so nothing failed.
    while clock.monotonic() - started_at < config.probe_interval_s:
        step(scheduler, config, membership)
    counters = stats(membership)
    assert (counters["probes_failed"], counters["suspicions_raised"]) == (0, 0)
    assert [e.kind for e in events.about("a")] == [EventKind.JOINED]


# --------------------------------------------------------------------------- no ack


@pytest.mark.parametrize("self_tick", [False, True], ids=["ticker", "self-tick"])
def test_probe_unanswered_peer_becomes_suspect_then_failed(
    membership, transport, scheduler, clock, config, events, eventually
):
    """SWIM + Lifeguard: a peer whose stream is up but which never acks is SUSPECT (origin:
    this node) once a probe period ends without an ack, within two periods of the start,
    and FAILED when the suspicion timeout runs out: 1.2 s later for N = 2 (no one else
    can confirm, and the minimum is the timeout). Events: JOINED, SUSPECTED, FAILED. The
    same timing whether ticks come every interval or the actor schedules its own (as in
    a Node)."""
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    remote = transport.accept("a", A)
    started_at = clock.monotonic()
    minimum, _maximum = suspicion_bounds(config.suspicion_mult,
                                         config.suspicion_max_timeout_mult,
                                         config.probe_interval_s, 2)
    suspect_at = failed_at = None
    limit = 2 * config.probe_interval_s + minimum + 1.0
    for _ in range(int(limit / config.tick_interval_s) + 1):
        step(scheduler, config, membership)
        status = view_of(membership, "a").status
        if status == "suspect" and suspect_at is None:
            suspect_at = clock.monotonic()
        if status == "failed":
            failed_at = clock.monotonic()
            break

    assert suspect_at is not None and failed_at is not None, f"a ended {status}"
    assert suspect_at - started_at <= 2 * config.probe_interval_s + config.tick_interval_s
    assert minimum - EPSILON_S <= failed_at - suspect_at <= minimum + config.tick_interval_s
    assert remote.received_of(Ping), "a was never pinged"
    assert [(e.kind, e.member.status, e.member.origin) for e in events.about("a")] == [
        (EventKind.JOINED, Status.ALIVE, ""),
        (EventKind.SUSPECTED, Status.SUSPECT, "me"),
        (EventKind.FAILED, Status.FAILED, "me"),
    ]
    counters = stats(membership)
    assert counters["acks_received"] == 0
    assert (counters["suspicions_raised"], counters["failures_declared"]) == (1, 1)


# --------------------------------------------------------------------------- acks


def test_probe_acked_every_time_stays_alive_for_50_periods(
    membership, transport, scheduler, clock, config, events, eventually
):
    """SWIM: a peer that answers every Ping with an Ack carrying its own record is never
    suspected: over 50 protocol periods it is probed about once per period (one member
    to probe, round-robin), every probe is acked, and its record stays alive at
    incarnation 0; the node's local health score stays 0 (Lifeguard)."""
    a = Member("a", A)
    api.add(membership, a, timeout_s=TIMEOUT_S)
    remote = transport.accept("a", A)
    started_at = clock.monotonic()
    answered = 0
    periods = 50

    def pings_on_the_stream(count: int) -> list[Ping]:
        pings = remote.received_of(Ping)
        assert len(pings) == count, f"{len(pings)} pings on the stream, {count} sent"
        return pings

    for _ in range(int(periods * config.probe_interval_s / config.tick_interval_s) + 10):
        step(scheduler, config, membership)
        sent = stats(membership)["probes_sent"]
        if sent == answered:
            continue
        # The Ping goes out through a's PeerActor, on its own thread: wait until it is out.
        pings = eventually(lambda sent=sent: pings_on_the_stream(sent))
        for ping in pings[answered:]:
            assert ping.target == a
            remote.send(Ack(ping.seq, a))
            answered += 1
        eventually(lambda answered=answered: stats(membership)["acks_received"] == answered)
        if answered >= periods:
            break

    elapsed = clock.monotonic() - started_at
    assert answered >= periods, f"only {answered} probes in {elapsed:.2f} s"
    assert elapsed <= (periods + 1) * config.probe_interval_s + EPSILON_S
    counters = stats(membership)
    assert counters["probes_failed"] == counters["suspicions_raised"] == 0
    assert counters["local_health_score"] == 0
    view = view_of(membership, "a")
    assert (view.status, view.incarnation) == ("alive", 0)
    assert [e.kind for e in events.about("a")] == [EventKind.JOINED]


# --------------------------------------------------------------------------- confirmations


def test_probe_failing_on_a_suspect_confirms_the_suspicion(
    membership, transport, scheduler, clock, config, events, eventually
):
    """Lifeguard §IV-B as memberlist implements it (suspectNode: "This allows for multiple
    independent confirmations to flow even when a node probes a node that's already
    suspect"): b gossips that a is suspect; this node's own probe of a then goes
    unanswered. That failed probe is an independent confirmation (origin: this node), so
    with N = 4 (K = 2 confirmations expected) the suspicion times out after
    max - (max - min) * log(2) / log(3) = 2.53 s, not after the 4.8 s maximum."""
    api.merge(membership, [Member("a", A), Member("b", B), Member("c", C)],
              timeout_s=TIMEOUT_S)
    remote = transport.accept("a", A)
    minimum, maximum = suspicion_bounds(config.suspicion_mult,
                                        config.suspicion_max_timeout_mult,
                                        config.probe_interval_s, 4)
    confirmed = suspicion_timeout(minimum, maximum,
                                  expected_confirmations(config.suspicion_mult, 4), 1)

    # t0: b's suspicion of a arrives, then a's stream drops, so this node probes a now
    # (before any protocol period started a probe of its own).
    suspected_at = clock.monotonic()
    membership.tell(PeerMessage("b", B, Gossip((Member("a", A, 0, Status.SUSPECT, "b"),))))
    assert view_of(membership, "a").status == "suspect"
    remote.close()
    eventually(lambda: stats(membership)["probes_sent"] == 1)

    failed_at = None
    for _ in range(int((maximum + 1.0) / config.tick_interval_s)):
        step(scheduler, config, membership)
        if view_of(membership, "a").status == "failed":
            failed_at = clock.monotonic()
            break
    assert failed_at is not None
    assert stats(membership)["probes_failed"] >= 1  # this node's probe of a did fail
    took = failed_at - suspected_at
    assert took <= confirmed + config.tick_interval_s + EPSILON_S, (
        f"a failed {took:.2f} s after the suspicion; with this node's own failed probe "
        f"as a confirmation it is due after {confirmed:.2f} s (maximum {maximum:.2f} s)")


# --------------------------------------------------------------------------- wall clocks


SIZE = 3
CONVERGE_S = 10.0
HOUR_S = 3600.0


@pytest.fixture
def memory_clusters() -> Iterator[Callable[[str, int, dict[int, SystemClock]], list[Node]]]:
    """Start clusters of ``SIZE`` in-process Nodes, each on its own MemoryNetwork, node 1
    the seed of the others; ``clocks`` gives some nodes their own clock. Every node is
    stopped at teardown."""
    started: list[Node] = []

    def start(prefix: str, base_port: int, clocks: dict[int, SystemClock]) -> list[Node]:
        network = MemoryNetwork()
        nodes = []
        for i in range(1, SIZE + 1):
            node = Node(
                bind=f"127.0.0.1:{base_port + i}",
                name=f"{prefix}{i}",
                seeds=() if i == 1 else (f"127.0.0.1:{base_port + 1}",),
                config=Config.local(),
                transport=network.transport(),
                clock=clocks.get(i),
                seed=i,
            )
            started.append(node)
            nodes.append(node.start())
        return nodes

    yield start
    for node in started:
        node.stop(leave=False)


def test_wall_clock_offset_changes_only_the_displayed_since(memory_clusters, eventually):
    """No cross-node clocks (README): two 3-node clusters, one of them with a node whose
    wall clock is an hour ahead, behave alike: both converge to all members alive at
    incarnation 0 and keep probing each other with every probe acked, no suspicion and
    no refutation. Only the offset node's ``since`` values (its display time) are about
    3600 s ahead of the others'."""
    plain = memory_clusters("p", 17100, {})
    skewed = memory_clusters("s", 17200, {2: SystemClock(wall_offset_s=HOUR_S)})

    def settled(nodes: list[Node]) -> bool:
        names = {node.name for node in nodes}
        for node in nodes:
            views = node.members()
            assert {v.name for v in views} == names
            assert all((v.status, v.incarnation) == ("alive", 0) for v in views), views
            counters = api.stats(node.membership, timeout_s=TIMEOUT_S)
            # A few probe periods ran: every probe acked, nobody suspected or refuted.
            assert counters["acks_received"] >= 3, counters
        return True

    eventually(lambda: settled(plain) and settled(skewed), CONVERGE_S, interval_s=0.05)

    for node in (*plain, *skewed):
        counters = api.stats(node.membership, timeout_s=TIMEOUT_S)
        assert counters["suspicions_raised"] == counters["refutations"] == 0, node.name
        assert counters["probes_failed"] == 0, node.name
        offset = HOUR_S if node.name == "s2" else 0.0
        now = time.time()
        for view in node.members():
            shown_age = now + offset - view.since
            assert -1.0 <= shown_age <= CONVERGE_S + 5.0, (node.name, view, offset)
    # Same records on every node of both clusters, whatever their wall clocks.
    records = {(v.name[1:], v.status, v.incarnation) for n in plain for v in n.members()}
    assert records == {(v.name[1:], v.status, v.incarnation) for n in skewed for v in n.members()}
