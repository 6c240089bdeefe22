"""SWIM in MembershipCore, one node at a time: the unreachable hint, answers to members
held failed (or left), and leaving.

Rules are cited from SWIM (Das, Gupta, Motivala, DSN 2002) and Lifeguard (Dadgar,
Phillips, Currey, 2018) by section, and from the header of dynago/core/membership.py.

Every core here is ticked on an unbroken tick grid from the time it was made: a gap
between ticks means "this node did not run" and moves its deadlines (membership.py).
"""

from __future__ import annotations

import pytest
from swim_support import (  # tests/core is on sys.path under pytest
    A_ADDR,
    TICK,
    addr,
    events,
    first_ping,
    held,
    make_core,
    ping_of,
    sends,
    tick_range,
    tick_range_answering,
    ticks,
    with_peers,
)

from dynago.core import (
    EventKind,
    Gossip,
    Member,
    MemberEvent,
    MembershipCore,
    Publish,
    Send,
    Status,
)
from dynago.core.messages import Ack, Ping, PingReq, StateSync

# ====================================================================== hint


def test_hint_peer_unreachable_probes_live_member_at_once() -> None:
    """membership.py (a lost stream is only a hint: probe that member now) / SWIM §3.1:
    peer_unreachable starts a probe of that live member at once, out of turn."""
    core, members = with_peers(5)
    effects = core.peer_unreachable("p3", 0.0)
    (ping,) = sends(effects, Ping)
    assert (ping.to, ping.address) == ("p3", members["p3"].address)
    assert ping_of(ping).target == members["p3"]
    assert core.probing("p3")
    assert effects == [ping]


def test_hint_while_probe_in_flight_sends_nothing() -> None:
    """membership.py: the hint starts a probe unless one of that member is in flight."""
    core, _ = with_peers(5)
    assert sends(core.peer_unreachable("p3", 0.0), Ping)
    assert core.peer_unreachable("p3", 0.01) == []
    assert core.counters.probes_sent == 1


def test_hint_for_suspect_member_probes_it() -> None:
    """membership.py / SWIM §4.2: a SUSPECT member is still a member; the hint probes it."""
    core = make_core()
    suspect = Member("b", addr(7002), 2, Status.SUSPECT, "c")
    core.merge([suspect, Member("c", addr(7003))], 0.0)
    (ping,) = sends(core.peer_unreachable("b", 0.5), Ping)
    assert ping_of(ping).target == suspect


@pytest.mark.parametrize(
    "name, record",
    [
        ("b", Member("b", addr(7002), 1, Status.FAILED, "c")),
        ("b", Member("b", addr(7002), 1, Status.LEFT)),
        ("nobody", None),
        ("a", None),
    ],
    ids=["failed", "left", "unknown", "self"],
)
def test_hint_dead_unknown_or_self_does_nothing(name: str, record: Member | None) -> None:
    """membership.py: the hint probes live members only; for a failed, left or unknown
    member (or the node itself) it does nothing."""
    core = make_core()
    core.merge([Member("c", addr(7003))], 0.0)
    if record is not None:
        core.merge([record], 0.0)
    before = core.records()
    assert core.peer_unreachable(name, 1.0) == []
    assert not core.probing(name)
    assert core.records() == before


def test_hint_never_suspects_by_itself() -> None:
    """membership.py (not a verdict) / SWIM §3.1: the hint itself changes no record; if
    the probe it starts is acked, the member stays ALIVE and nothing is published."""
    core, members = with_peers(3)
    effects = core.peer_unreachable("p1", 0.0)
    assert events(effects) == []
    assert held(core, "p1") == members["p1"]
    (ping,) = sends(effects, Ping)
    core.handle("p1", Ack(ping_of(ping).seq, members["p1"]), 0.01)
    out = tick_range_answering(core, 0.05, 3.0, members)
    assert [e for _, e in out if isinstance(e, Publish)] == []
    assert held(core, "p1") == members["p1"]


# ====================================================================== failed members talk


FAILED_B = Member("b", addr(7002), 0, Status.FAILED, "a")
LEFT_B = Member("b", addr(7002), 0, Status.LEFT)
MESSAGES_FROM_B = [
    Ping(5, Member("a", A_ADDR)),
    Gossip((Member("c", addr(7003)),)),
    PingReq(5, Member("c", addr(7003))),
    StateSync((Member("c", addr(7003)),), reply_wanted=False, last=False),
]
MESSAGE_IDS = ["ping", "gossip", "ping-req", "state-sync"]


def _holding_b(record: Member) -> MembershipCore:
    a = make_core()
    a.merge([Member("c", addr(7003)), Member("b", addr(7002))], 0.0)
    a.merge([record], 0.5)
    return a


@pytest.mark.parametrize("message", MESSAGES_FROM_B, ids=MESSAGE_IDS)
def test_failed_sender_answered_with_its_failed_record(message: object) -> None:
    """membership.py (a message from a member held failed is answered with that record)
    / SWIM §4.2: whatever the message, a sender held FAILED gets a Gossip carrying that
    FAILED record, so a paused or cut-off member learns of it and refutes. A Ping is
    still acked."""
    a = _holding_b(FAILED_B)
    effects = a.handle("b", message, 1.0)  # type: ignore[arg-type]
    assert Send("b", addr(7002), Gossip((FAILED_B,))) in effects
    if isinstance(message, Ping):
        assert Send("b", addr(7002), Ack(5, a.local_member)) in effects


@pytest.mark.parametrize("message", MESSAGES_FROM_B, ids=MESSAGE_IDS)
def test_left_sender_not_answered_with_its_left_record(message: object) -> None:
    """membership.py (not for left: a member that left says so itself, and a new life of
    it learns by joining): a sender held LEFT gets no Gossip of its record; a Ping from it
    is still acked."""
    a = _holding_b(LEFT_B)
    effects = a.handle("b", message, 1.0)  # type: ignore[arg-type]
    assert [s for s in sends(effects, Gossip) if s.to == "b"] == []
    if isinstance(message, Ping):
        assert Send("b", addr(7002), Ack(5, a.local_member)) in effects


def test_live_sender_not_answered_with_its_record() -> None:
    """membership.py: only senders held failed get their record back; a live sender of a
    Gossip gets no answer."""
    a = make_core()
    a.merge([Member("b", addr(7002))], 0.0)
    assert a.handle("b", Gossip((Member("c", addr(7003)),)), 1.0) == [
        Publish(MemberEvent(EventKind.JOINED, Member("c", addr(7003)), None, reporter="b"))
    ]


def test_failed_sender_refutes_on_its_failed_record() -> None:
    """SWIM §4.2: the member that hears it is held FAILED at its incarnation refutes:
    ALIVE at incarnation+1; the node holding it failed takes that back by gossip and the
    member is a member again (JOINED)."""
    a = _holding_b(FAILED_B)
    b = make_core("b", 7002, seed=2, now=1.0)
    b.merge([Member("a", A_ADDR)], 1.0)
    (gossip,) = sends(a.handle("b", Ping(5, Member("a", A_ADDR)), 1.0), Gossip)
    b.handle("a", gossip.message, 1.0)
    alive = Member("b", addr(7002), 1, Status.ALIVE)
    assert b.local_member == alive
    assert b.counters.refutations == 1
    # b's next gossip round carries the refutation to a.
    round_ = [s for now in ticks(1.0, 1.3) for s in sends(b.tick(now), Gossip) if s.to == "a"]
    assert round_, "b gossips to its only peer"
    effects = a.handle("b", round_[0].message, 1.3)
    assert held(a, "b") == alive
    assert [(e.kind, e.member) for e in events(effects)] == [(EventKind.JOINED, alive)]
    assert "b" in a.live_peer_names()


def test_left_record_of_a_new_life_refuted() -> None:
    """SWIM §4.2 / member.py: a node that hears itself LEFT at its incarnation (its own
    previous life, e.g. from a full-state exchange when it joins) refutes: ALIVE at
    incarnation+1."""
    b = make_core("b", 7002)
    b.handle("a", StateSync((LEFT_B, Member("a", A_ADDR)), reply_wanted=False, last=True), 1.0)
    assert b.local_member == Member("b", addr(7002), 1, Status.ALIVE)


def test_failed_sender_mutual_failed_exchange_settles() -> None:
    """membership.py (a message from a member held failed is answered with that record,
    so that it can refute) / SWIM §4.2: two nodes that each hold the other FAILED (the
    two sides of a healed partition). One message from c to a starts a bounded exchange:
    both refute, and the answers stop — not an endless echo of Gossips, each a message
    from a member held failed that is answered again."""
    a = make_core("a", 7001)
    c = make_core("c", 7003, seed=2)
    a.merge([Member("c", addr(7003), 0, Status.FAILED, "a")], 0.0)
    c.merge([Member("a", A_ADDR, 0, Status.FAILED, "c")], 0.0)
    cores = {"a": a, "c": c}
    queue: list[tuple[str, Send]] = [("c", Send("a", A_ADDR, Gossip((Member("x", addr(7009)),))))]
    delivered: list[tuple[str, str, object]] = []
    while queue and len(delivered) < 50:
        source, send = queue.pop(0)
        delivered.append((source, send.to, send.message))
        out = cores[send.to].handle(source, send.message, 0.5)
        queue.extend((send.to, s) for s in sends(out))
    assert a.local_member.incarnation == 1 and c.local_member.incarnation == 1
    assert not queue, (
        f"still echoing after {len(delivered)} messages; last: {delivered[-2:]}"
    )


# ====================================================================== leaving


def test_leaving_node_sends_no_pings_or_pingreqs() -> None:
    """membership.py / SWIM §3.1: a node that left no longer takes part in failure
    detection: no Ping, no PingReq, no suspicion — even of a probe in flight at leave."""
    core, members = with_peers(4)
    start, _ = first_ping(core)  # a probe is in flight, never acked
    core.leave(start + 0.01)
    out = tick_range(core, start + TICK, start + 10.0)
    assert [s for _, s in out if isinstance(s, Send)
            and isinstance(s.message, Ping | PingReq)] == []
    assert [e for _, e in out if isinstance(e, Publish)] == []
    assert all(held(core, n) == m for n, m in members.items())


def test_leaving_node_acks_ping_with_left_record() -> None:
    """SWIM §3.1 / membership.py: a leaving node still answers Pings, with an Ack that
    carries its LEFT record; the prober applies it (LEFT event, probe over)."""
    a = make_core()
    b = make_core("b", 7002, seed=2)
    a.merge([Member("b", addr(7002))], 0.0)
    b.merge([Member("a", A_ADDR)], 0.0)
    b.leave(0.5)
    left = Member("b", addr(7002), 0, Status.LEFT)
    (ping,) = sends(a.peer_unreachable("b", 1.0), Ping)
    answer = b.handle("a", ping.message, 1.0)
    assert answer == [Send("a", A_ADDR, Ack(ping_of(ping).seq, left))]
    effects = a.handle("b", answer[0].message, 1.01)  # type: ignore[union-attr]
    assert not a.probing("b")
    assert held(a, "b") == left
    assert [(e.kind, e.member) for e in events(effects)] == [(EventKind.LEFT, left)]
    assert b.local_member == left
