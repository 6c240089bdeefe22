"""SWIM failure detection in MembershipCore, one node at a time: probing, and the helper
and responder sides of a probe.

Rules are cited from SWIM (Das, Gupta, Motivala, DSN 2002) and Lifeguard (Dadgar,
Phillips, Currey, 2018) by section, and from the header of dynago/core/membership.py.
Related files: test_core_swim_hint_leave.py (the unreachable hint, answers to failed
members, leaving), test_core_swim_suspicion.py (suspicion timeouts, precedence),
test_core_swim_health.py (local health, reconnect, tombstones), test_core_swim_cluster.py
(whole-cluster scenarios).

Every core here is ticked on an unbroken tick grid from the time it was made: a gap
between ticks means "this node did not run" and moves its deadlines (membership.py).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from swim_support import (  # tests/core is on sys.path under pytest
    A_ADDR,
    EPS,
    LAN,
    LOCAL,
    TICK,
    addr,
    events,
    first_ping,
    held,
    make_core,
    peers,
    ping_of,
    sends,
    tick_range,
    tick_range_answering,
    ticks,
    with_peers,
)

from dynago.config import Config
from dynago.core import (
    EventKind,
    Gossip,
    Member,
    MembershipCore,
    Publish,
    Send,
    Status,
)
from dynago.core.messages import Ack, Nack, Ping, PingReq

# ====================================================================== probing


@pytest.mark.parametrize("config", [LOCAL, LAN], ids=["local", "lan"])
def test_probe_one_ping_per_protocol_period(config: Config) -> None:
    """SWIM §3.1, §4.3: each protocol period (probe_interval_s) the node probes exactly one
    member. Over 200 periods with every Ping acked, 200 Pings go out (±1 for where the
    window cuts the first and last period), one at a time."""
    core, members = with_peers(4, config=config)
    periods = 200
    out = tick_range_answering(core, 0.0, periods * config.probe_interval_s, members)
    pings = [(now, s) for now, s in out if isinstance(s, Send) and isinstance(s.message, Ping)]
    times = [now for now, _ in pings]
    gaps = Counter(round(b - a, 6) for a, b in zip(times, times[1:], strict=False))
    assert periods - 1 <= len(pings) <= periods + 1, (
        f"{len(pings)} Pings in {periods} periods of {config.probe_interval_s} s; "
        f"gaps between Pings (s: count): {dict(gaps)}"
    )
    assert len(set(times)) == len(times), "two Pings in one tick"


@pytest.mark.parametrize("config", [LOCAL, LAN], ids=["local", "lan"])
def test_probe_one_ping_per_protocol_period_with_jittered_ticks(config: Config) -> None:
    """SWIM §3.1, §4.3: the protocol period is probe_interval_s whatever the exact times
    of the ticks. Ticks come every tick_interval_s, each up to 2 ms late (as timers do):
    over 200 periods with every Ping acked, 200 Pings (±2) still go out — lateness must
    not add up from one period to the next."""
    core, members = with_peers(4, config=config)
    jitter = random.Random(0)
    periods = 200
    pings = 0
    for now in ticks(0.0, periods * config.probe_interval_s, config.tick_interval_s):
        late = now + jitter.uniform(0.0, 0.002)
        for send in sends(core.tick(late), Ping):
            pings += 1
            core.handle(send.to, Ack(ping_of(send).seq, members[send.to]), late)
    assert periods - 2 <= pings <= periods + 2, (
        f"{pings} Pings in {periods} periods of {config.probe_interval_s} s"
    )


def test_probe_schedule_independent_of_clock_offset() -> None:
    """membership.py (``now`` is seconds on the caller's monotonic clock; only differences
    matter): the same core, seed and inputs, with every ``now`` shifted by a constant
    (+3600 s), sends its Pings in the same ticks."""

    def ping_ticks(offset: float) -> list[int]:
        core = make_core(now=offset)
        members = {m.name: m for m in peers(4)}
        core.merge(members.values(), offset)
        out = []
        for k in range(400):
            now = offset + k * TICK
            for send in sends(core.tick(now), Ping):
                out.append(k)
                core.handle(send.to, Ack(ping_of(send).seq, members[send.to]), now)
        return out

    plain, shifted = ping_ticks(0.0), ping_ticks(3600.0)
    assert shifted == plain, f"{len(plain)} Pings at offset 0, {len(shifted)} at +3600 s"


def test_probe_round_robin_each_member_once_per_round() -> None:
    """SWIM §4.3 (round-robin probe target selection): the members are probed in rounds;
    within a round of N probes every one of the N members is probed exactly once, so none
    is probed twice before all were probed once. The order is reshuffled between rounds."""
    n = 7
    core, members = with_peers(n)
    out = tick_range_answering(core, 0.0, 6 * n * LOCAL.probe_interval_s, members)
    targets = [s.to for _, s in out if isinstance(s, Send) and isinstance(s.message, Ping)]
    rounds = [targets[i : i + n] for i in range(0, len(targets) - n + 1, n)]
    assert len(rounds) >= 4
    for round_ in rounds:
        assert sorted(round_) == sorted(members), round_
    assert len({tuple(r) for r in rounds}) > 1, "every round had the same order"


def test_probe_ping_carries_target_record_as_held() -> None:
    """Lifeguard §IV-C (buddy system) / core.messages.Ping: a Ping carries the target's
    record exactly as the prober holds it (incarnation, status, origin), so a suspect
    learns of its suspicion from the probe itself."""
    core = make_core()
    records = [
        Member("p0", addr(8000), 5, Status.ALIVE),
        Member("p1", addr(8001), 2, Status.SUSPECT, "zed"),
    ]
    core.merge(records, 0.0)
    seen: dict[str, Member] = {}
    for now in ticks(0.0, 4 * LOCAL.probe_interval_s):
        for send in sends(core.tick(now), Ping):
            seen.setdefault(send.to, ping_of(send).target)
            assert send.address == held(core, send.to).address
    assert seen == {m.name: m for m in records}


def test_probe_ack_from_target_ends_probe() -> None:
    """SWIM §3.1: an Ack carrying the probe's sequence number from the target ends the
    probe: no PingReq follows and the target is never suspected."""
    core, members = with_peers(4)
    start, send = first_ping(core)
    target = send.to
    assert core.probing(target)
    effects = core.handle(target, Ack(ping_of(send).seq, members[target]), start + 0.01)
    assert not core.probing(target)
    assert events(effects) == []
    # Tick through the rest of this protocol period, and the next one's probe timeout.
    out = tick_range_answering(
        core, start + TICK, start + LOCAL.probe_interval_s + TICK / 2,
        {n: m for n, m in members.items() if n != target},
    )
    assert [s for _, s in out if isinstance(s, Send) and isinstance(s.message, PingReq)] == []
    assert held(core, target) == members[target]
    assert core.counters.probes_failed == 0


def test_probe_ack_for_other_member_does_not_end_probe() -> None:
    """SWIM §3.1: only an ack from the target (its record in the Ack) answers the probe;
    an Ack with the right seq but another member's record leaves the probe running."""
    core, members = with_peers(4)
    start, send = first_ping(core)
    other = next(m for n, m in members.items() if n != send.to)
    core.handle(other.name, Ack(ping_of(send).seq, other), start + 0.01)
    assert core.probing(send.to)


@pytest.mark.parametrize("config", [LOCAL, LAN], ids=["local", "lan"])
def test_probe_no_ack_within_timeout_sends_indirect_checks_pingreqs(config: Config) -> None:
    """SWIM §3.1 (ping-req): no Ack within probe_timeout_s → PingReq(seq, target record)
    to exactly ``indirect_checks`` distinct live members other than the target, at the
    first tick at or after the timeout and not before."""
    core, _ = with_peers(6, config=config)
    start, send = first_ping(core)
    probe = ping_of(send)
    reqs: list[tuple[float, Send]] = []
    for now in ticks(start + config.tick_interval_s, start + config.probe_interval_s,
                     config.tick_interval_s):
        reqs.extend((now, s) for s in sends(core.tick(now), PingReq))
    assert len(reqs) == config.indirect_checks
    when = {now for now, _ in reqs}
    assert len(when) == 1
    (t,) = when
    assert start + config.probe_timeout_s - EPS <= t < start + config.probe_timeout_s + \
        config.tick_interval_s + EPS
    helpers = [s.to for _, s in reqs]
    assert len(set(helpers)) == len(helpers)
    assert send.to not in helpers and "a" not in helpers
    assert set(helpers) <= set(core.live_peer_names())
    for _, s in reqs:
        assert s.message == PingReq(probe.seq, probe.target)
        assert s.address == held(core, s.to).address
    assert core.counters.indirect_probes_sent == config.indirect_checks


def test_probe_no_ack_fewer_live_members_than_indirect_checks() -> None:
    """SWIM §3.1: PingReqs go to at most ``indirect_checks`` members other than the
    target; with only two other members, both are asked and nobody twice."""
    core, _ = with_peers(3)
    start, send = first_ping(core)
    out = tick_range(core, start + TICK, start + LOCAL.probe_interval_s)
    helpers = sorted(s.to for _, s in out if isinstance(s, Send) and isinstance(s.message, PingReq))
    assert helpers == sorted(n for n in core.live_peer_names() if n != send.to)


def test_probe_no_ack_by_period_end_suspects_target() -> None:
    """SWIM §3.1, §4.2: no Ack (direct or relayed) by the end of the protocol period → the
    target is SUSPECT with origin = this node, a SUSPECTED event is published and the
    suspicion is queued for gossip (dissemination component, §4.1)."""
    core, members = with_peers(4)
    start, send = first_ping(core)
    target = send.to
    others = {n: m for n, m in members.items() if n != target}
    out = tick_range_answering(core, start + TICK, start + LOCAL.probe_interval_s + 2 * TICK,
                               others)
    suspect = Member(target, members[target].address, 0, Status.SUSPECT, "a")
    published = [(now, e.event) for now, e in out if isinstance(e, Publish)]
    assert [(ev.kind, ev.member, ev.previous) for _, ev in published] == [
        (EventKind.SUSPECTED, suspect, members[target])
    ]
    when = published[0][0]
    assert start + LOCAL.probe_interval_s - EPS <= when <= start + LOCAL.probe_interval_s + \
        TICK + EPS
    assert held(core, target) == suspect
    assert suspect in core.pending_broadcasts()
    assert core.suspicion_deadline(target) is not None
    assert core.counters.probes_failed == 1
    assert core.counters.suspicions_raised == 1


def test_probe_ack_relayed_by_helper_ends_probe() -> None:
    """SWIM §3.1: the helper relays the target's ack to the prober (Ack with the original
    seq, the target's record, sent by the helper); it ends the probe like a direct one."""
    core, members = with_peers(4)
    start, send = first_ping(core)
    target, seq = send.to, ping_of(send).seq
    reqs: list[Send] = []
    now = start
    while not reqs:
        now += TICK
        reqs = sends(core.tick(now), PingReq)
    helper = reqs[0].to
    effects = core.handle(helper, Ack(seq, members[target]), now + 0.01)
    assert events(effects) == []
    assert not core.probing(target)
    out = tick_range_answering(core, now + TICK, start + LOCAL.probe_interval_s + 2 * TICK,
                               {n: m for n, m in members.items() if n != target})
    assert [e for _, e in out if isinstance(e, Publish)] == []
    assert held(core, target) == members[target]
    assert core.counters.probes_failed == 0


# ====================================================================== helper side


def _helper_with_requester() -> MembershipCore:
    """Node "h", started at 1.0, that knows requester "a" and target "t"."""
    h = make_core("h", 7010, now=1.0)
    h.merge([Member("a", A_ADDR), Member("t", addr(7020))], 1.0)
    return h


def test_helper_pingreq_pings_target_with_new_seq() -> None:
    """SWIM §3.1 (ping-req): a node asked to probe a target sends it a Ping of its own
    (a sequence number of its own, the target's record as it holds it)."""
    h = _helper_with_requester()
    h.merge([Member("b", addr(7002))], 1.0)
    effects = h.handle("a", PingReq(41, Member("t", addr(7020))), 1.0)
    (ping,) = sends(effects, Ping)
    assert effects == [ping]
    assert (ping.to, ping.address) == ("t", addr(7020))
    assert ping_of(ping).target == Member("t", addr(7020))
    assert not h.probing("t"), "a relay is not a probe of the helper's own"
    # The same seq from another requester gets another Ping seq: seqs are the helper's.
    (again,) = sends(h.handle("b", PingReq(41, Member("t", addr(7020))), 1.0), Ping)
    assert ping_of(again).seq != ping_of(ping).seq


def test_helper_relays_target_ack_with_original_seq() -> None:
    """SWIM §3.1 (ping-req): when the target acks the helper's Ping, the helper sends
    Ack(original seq, target's record) to the requester, and no Nack later."""
    h = _helper_with_requester()
    (ping,) = sends(h.handle("a", PingReq(41, Member("t", addr(7020))), 1.0), Ping)
    t_record = Member("t", addr(7020), 3, Status.ALIVE)
    effects = h.handle("t", Ack(ping_of(ping).seq, t_record), 1.02)
    assert Send("a", A_ADDR, Ack(41, t_record)) in effects
    later = tick_range(h, 1.0, 1.0 + 2 * LOCAL.probe_interval_s)
    assert [s for _, s in later if isinstance(s, Send) and isinstance(s.message, Nack)] == []
    assert held(h, "t") == t_record


@pytest.mark.parametrize("config", [LOCAL, LAN], ids=["local", "lan"])
def test_helper_no_ack_sends_nack_after_probe_timeout(config: Config) -> None:
    """SWIM §3.1 (ping-req) / Lifeguard §IV-A (nack): if the target does not ack the
    helper within probe_timeout_s, the helper sends Nack(original seq) to the requester —
    once, at the first tick at or after the timeout."""
    h = make_core("h", 7010, config=config, now=1.0)
    h.merge([Member("a", A_ADDR), Member("t", addr(7020))], 1.0)
    # Keep h's own probes of a and t out of the way: they are acked.
    members = {"a": Member("a", A_ADDR), "t": Member("t", addr(7020))}
    h.handle("a", PingReq(41, members["t"]), 1.0)
    out = tick_range_answering(h, 1.0, 1.0 + 3 * config.probe_interval_s, {"a": members["a"]})
    nacks = [(now, s) for now, s in out if isinstance(s, Send) and isinstance(s.message, Nack)]
    assert [s for _, s in nacks] == [Send("a", A_ADDR, Nack(41))]
    when = nacks[0][0]
    assert 1.0 + config.probe_timeout_s - EPS <= when <= 1.0 + config.probe_timeout_s + \
        config.tick_interval_s + EPS
    assert h.counters.nacks_sent == 1


def test_helper_ignores_pingreq_about_itself() -> None:
    """SWIM §3.1: a ping-req asks a *third* member to probe the target; a PingReq whose
    target is the receiver itself is ignored (no Ping to itself, no Nack later)."""
    h = _helper_with_requester()
    assert h.handle("a", PingReq(41, Member("h", addr(7010))), 1.0) == []
    out = tick_range_answering(h, 1.0, 2.0, {"a": Member("a", A_ADDR),
                                             "t": Member("t", addr(7020))})
    assert [s for _, s in out if isinstance(s, Send) and isinstance(s.message, Nack)] == []


# ====================================================================== responder side


def test_responder_ping_answered_with_ack_of_own_record() -> None:
    """SWIM §3.1: a member that receives a Ping answers Ack(seq) at once; the Ack carries
    its own current record."""
    b = make_core("b", 7002)
    b.merge([Member("a", A_ADDR)], 0.0)
    effects = b.handle("a", Ping(9, Member("b", addr(7002))), 1.0)
    assert effects == [Send("a", A_ADDR, Ack(9, b.local_member))]


@pytest.mark.parametrize("incarnation", [0, 4])
def test_responder_suspect_ping_refutes_before_acking(incarnation: int) -> None:
    """Lifeguard §IV-C (buddy system: the suspect learns from the probe) / SWIM §4.2
    (refute with a higher incarnation): a Ping whose target record says this node is
    SUSPECT at its incarnation makes it refute first (incarnation+1, ALIVE), and the Ack
    carries the refuted record."""
    b = make_core("b", 7002)
    b.merge([Member("a", A_ADDR)], 0.0)
    if incarnation:
        b.handle("x", Gossip((Member("b", addr(7002), incarnation - 1, Status.SUSPECT, "x"),)),
                 0.5)
    assert b.local_member.incarnation == incarnation
    suspect = Member("b", addr(7002), incarnation, Status.SUSPECT, "a")
    effects = b.handle("a", Ping(9, suspect), 1.0)
    refuted = Member("b", addr(7002), incarnation + 1, Status.ALIVE)
    assert b.local_member == refuted
    assert sends(effects) == [Send("a", A_ADDR, Ack(9, refuted))]
    assert refuted in b.pending_broadcasts()


def test_responder_refuting_ack_clears_prober_suspicion() -> None:
    """SWIM §4.2 / Lifeguard §IV-C: the prober that applies the refuting Ack (ALIVE at a
    higher incarnation) ends its suspicion: no deadline any more, record ALIVE at inc+1,
    a CHANGED event."""
    a = make_core(now=1.0)
    b = make_core("b", 7002, seed=2, now=1.0)
    a.merge([Member("b", addr(7002)), Member("c", addr(7003))], 1.0)
    b.merge([Member("a", A_ADDR)], 1.0)
    suspect = Member("b", addr(7002), 0, Status.SUSPECT, "c")
    a.handle("c", Gossip((suspect,)), 1.0)
    assert a.suspicion_deadline("b") is not None
    (ping,) = sends(a.peer_unreachable("b", 1.0), Ping)
    assert ping_of(ping).target == suspect
    (ack,) = sends(b.handle("a", ping.message, 1.01), Ack)
    effects = a.handle("b", ack.message, 1.02)
    alive = Member("b", addr(7002), 1, Status.ALIVE)
    assert held(a, "b") == alive
    assert a.suspicion_deadline("b") is None
    assert not a.probing("b")
    assert [(e.kind, e.member, e.previous) for e in events(effects)] == [
        (EventKind.CHANGED, alive, suspect)
    ]
    # And it never turns FAILED later.
    out = tick_range_answering(a, 1.0, 10.0, {"b": alive, "c": Member("c", addr(7003))})
    assert [e for _, e in out if isinstance(e, Publish)] == []
