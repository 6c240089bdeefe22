"""Lifeguard suspicion in MembershipCore: the timeout formulas, suspect → failed, the
shrinking by independent confirmations, refutation, and record precedence.

Rules are cited from SWIM (Das, Gupta, Motivala, DSN 2002) and Lifeguard (Dadgar,
Phillips, Currey, 2018) by section, and from the headers of dynago/core/membership.py,
core/member.py and core/suspicion.py.

Every core here is ticked on an unbroken tick grid from the time it was made: a gap
between ticks means "this node did not run" and moves its deadlines (membership.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest
from swim_driver import (  # tests/core is on sys.path under pytest
    EPS,
    LAN,
    LOCAL,
    TICK,
    Driver,
    addr,
    events,
    held,
    make_core,
    with_peers,
)

from dynago.config import Config
from dynago.core import (
    EventKind,
    Gossip,
    Member,
    MemberEvent,
    Publish,
    Status,
)
from dynago.core.messages import Ack, Effect, StateSync
from dynago.core.suspicion import expected_confirmations, suspicion_bounds, suspicion_timeout


def suspect_of(member: Member, origin: str) -> Member:
    return Member(member.name, member.address, member.incarnation, Status.SUSPECT, origin)


def published(out: Iterable[tuple[float, Effect]]) -> list[tuple[float, MemberEvent]]:
    return [(now, e.event) for now, e in out if isinstance(e, Publish)]


# ====================================================================== formulas


@pytest.mark.parametrize(
    "mult, max_mult, interval, n, expected_min",
    [
        (4, 4, 0.2, 1, 0.8),
        (4, 4, 0.2, 5, 0.8),
        (4, 4, 0.2, 10, 0.8),
        (4, 4, 0.2, 100, 1.6),
        (4, 4, 0.2, 50, 4 * math.log10(50) * 0.2),
        (3, 4, 0.5, 1000, 4.5),
        (3, 6, 0.5, 9, 1.5),
    ],
)
def test_suspicion_bounds_formula(
    mult: int, max_mult: int, interval: float, n: int, expected_min: float
) -> None:
    """Lifeguard §IV-B: min = suspicion_mult · max(1, log10 N) · probe_interval and
    max = suspicion_max_timeout_mult · min."""
    minimum, maximum = suspicion_bounds(mult, max_mult, interval, n)
    assert minimum == pytest.approx(expected_min)
    assert maximum == pytest.approx(max_mult * expected_min)


@pytest.mark.parametrize(
    "mult, n, k",
    [(4, 1, 0), (4, 2, 0), (4, 3, 1), (4, 4, 2), (4, 5, 2), (4, 100, 2), (3, 50, 1),
     (6, 5, 3), (6, 50, 4), (1, 50, 0), (2, 50, 0)],
)
def test_expected_confirmations_formula(mult: int, n: int, k: int) -> None:
    """Lifeguard §IV-B: K = max(0, min(suspicion_mult − 2, N − 2)) independent
    confirmations bring a suspicion down to its minimum (the suspector and the suspect
    themselves cannot confirm)."""
    assert expected_confirmations(mult, n) == k


def test_suspicion_timeout_formula_values() -> None:
    """Lifeguard §IV-B: timeout(C) = max(min, max − (max − min)·log(C+1)/log(K+1)):
    the maximum with no confirmation, the minimum at K and beyond, in between on the
    log curve; with K = 0 the minimum at once."""
    lo, hi = 1.0, 4.0
    assert suspicion_timeout(lo, hi, 0, 0) == lo
    assert suspicion_timeout(lo, hi, 0, 5) == lo
    assert suspicion_timeout(lo, hi, 3, 0) == hi
    assert suspicion_timeout(lo, hi, 3, 1) == pytest.approx(
        hi - (hi - lo) * math.log(2) / math.log(4)
    )
    assert suspicion_timeout(lo, hi, 3, 1) == pytest.approx(2.5)
    assert suspicion_timeout(lo, hi, 3, 3) == pytest.approx(lo)
    assert suspicion_timeout(lo, hi, 3, 10) == lo
    values = [suspicion_timeout(lo, hi, 5, c) for c in range(10)]
    assert values == sorted(values, reverse=True)
    assert all(v >= lo for v in values)


# ====================================================================== suspicion in the core


def _suspected_by_own_probe(
    count: int = 4, config: Config = LOCAL
) -> tuple[Driver, dict[str, Member], str, float]:
    """a probes its peers (all answer but one); returns when that one turned SUSPECT."""
    core, members = with_peers(count, config=config)
    driver = Driver(core, members)
    _, ping = driver.next_ping(answer=False)
    target = ping.to
    del driver.responders[target]
    out = driver.run_until(driver.now + 2 * config.probe_interval_s)
    (when, event), = published(out)
    assert event.kind is EventKind.SUSPECTED and event.member.name == target
    return driver, members, target, when


def test_suspect_becomes_failed_after_maximum_timeout_without_confirmations() -> None:
    """SWIM §4.2 / Lifeguard §IV-B: a SUSPECT member that does not refute is declared
    FAILED (origin: this node, a FAILED event) when its timeout runs out; suspected by
    this node alone, with no confirmation, the timeout is the maximum."""
    driver, members, target, when = _suspected_by_own_probe()
    core = driver.core
    minimum, maximum = suspicion_bounds(LOCAL.suspicion_mult, LOCAL.suspicion_max_timeout_mult,
                                        LOCAL.probe_interval_s, len(members) + 1)
    deadline = core.suspicion_deadline(target)
    assert deadline is not None
    assert deadline == pytest.approx(when + maximum)
    before = driver.run_until(deadline - EPS)
    assert published(before) == []
    assert held(core, target).status is Status.SUSPECT
    out = driver.run_until(deadline + 2 * TICK)
    failed = Member(target, members[target].address, 0, Status.FAILED, "a")
    assert [(ev.kind, ev.member) for _, ev in published(out)] == [(EventKind.FAILED, failed)]
    assert published(out)[0][0] <= deadline + TICK + EPS
    assert held(core, target) == failed
    assert core.suspicion_deadline(target) is None
    assert target not in core.live_peer_names()
    assert failed in core.pending_broadcasts()
    assert core.counters.failures_declared == 1


def test_suspect_learnt_by_gossip_also_times_out() -> None:
    """SWIM §4.2: a member that hears a suspicion by gossip starts its own timer, and
    declares the member FAILED (origin: itself) when it runs out."""
    core, members = with_peers(4)
    driver = Driver(core, members)
    driver.run_until(1.0)
    del driver.responders["p0"]  # from now on p0 is silent (and never refutes)
    core.handle("p1", Gossip((suspect_of(members["p0"], "p1"),)), driver.now)
    deadline = core.suspicion_deadline("p0")
    assert deadline is not None
    out = driver.run_until(deadline + 2 * TICK)
    assert [(ev.kind, ev.member) for _, ev in published(out)] == [
        (EventKind.FAILED, Member("p0", members["p0"].address, 0, Status.FAILED, "a"))
    ]


@pytest.mark.parametrize("config", [LOCAL, LAN, Config.local(suspicion_mult=6)],
                         ids=["local", "lan", "local-mult6"])
def test_suspicion_confirmations_shrink_deadline_to_minimum(config: Config) -> None:
    """Lifeguard §IV-B: each independent confirmation (a SUSPECT record for the same
    incarnation from a new origin, by gossip) moves the deadline earlier, down to
    started + minimum after K confirmations, and never below it."""
    n_peers = 9
    core, members = with_peers(n_peers, config=config)
    driver = Driver(core, members)
    driver.run_until(1.0)
    del driver.responders["p0"]  # from now on p0 is silent (and never refutes)
    started = driver.now
    core.handle("p1", Gossip((suspect_of(members["p0"], "p1"),)), started)
    minimum, maximum = suspicion_bounds(config.suspicion_mult, config.suspicion_max_timeout_mult,
                                        config.probe_interval_s, n_peers + 1)
    k = expected_confirmations(config.suspicion_mult, n_peers + 1)
    assert k >= 1
    first = core.suspicion_deadline("p0")
    assert first is not None
    deadlines = [first]
    assert deadlines[0] == pytest.approx(started + maximum)
    for i, origin in enumerate(["p2", "p3", "p4", "p5", "p6", "p7", "p8"], start=1):
        driver.run_until(driver.now + TICK * 1.5)
        core.handle(origin, Gossip((suspect_of(members["p0"], origin),)), driver.now)
        deadline = core.suspicion_deadline("p0")
        assert deadline is not None
        expected = started + suspicion_timeout(minimum, maximum, k, i)
        assert deadline == pytest.approx(expected), i
        deadlines.append(deadline)
    assert all(b <= a for a, b in zip(deadlines, deadlines[1:], strict=False))
    assert all(b < a for a, b in zip(deadlines[: k + 1], deadlines[1 : k + 1], strict=False))
    assert deadlines[k] == pytest.approx(started + minimum)
    assert min(deadlines) >= started + minimum - EPS
    out = driver.run_until(started + minimum + 2 * TICK)
    assert [ev.kind for _, ev in published(out)] == [EventKind.FAILED]
    assert published(out)[0][0] >= started + minimum - EPS


def test_suspicion_repeated_confirmation_same_origin_does_not_shrink() -> None:
    """Lifeguard §IV-B: only *independent* confirmations count: the same origin again
    (or the suspector's own record again) leaves the deadline where it was."""
    core, members = with_peers(6)
    driver = Driver(core, members)
    driver.run_until(1.0)
    del driver.responders["p0"]  # from now on p0 is silent (and never refutes)
    core.handle("p1", Gossip((suspect_of(members["p0"], "p1"),)), driver.now)
    core.handle("p2", Gossip((suspect_of(members["p0"], "p2"),)), driver.now)
    deadline = core.suspicion_deadline("p0")
    for sender, origin in [("p2", "p2"), ("p3", "p2"), ("p1", "p1"), ("p4", "p1")]:
        core.handle(sender, Gossip((suspect_of(members["p0"], origin),)), driver.now)
        core.handle(sender, StateSync((suspect_of(members["p0"], origin),), False, True),
                    driver.now)
        assert core.suspicion_deadline("p0") == deadline


def test_suspicion_other_incarnation_is_not_a_confirmation() -> None:
    """Lifeguard §IV-B: confirmations are suspicions of the same incarnation; a suspicion
    of an older incarnation does not shrink the deadline."""
    core = make_core()
    members = {"p0": Member("p0", addr(8000), 3), **{f"p{i}": Member(f"p{i}", addr(8000 + i))
                                                      for i in range(1, 5)}}
    core.merge(members.values(), 0.0)
    core.handle("p1", Gossip((suspect_of(members["p0"], "p1"),)), 0.0)
    deadline = core.suspicion_deadline("p0")
    old = Member("p0", addr(8000), 2, Status.SUSPECT, "p2")
    core.handle("p2", Gossip((old,)), 0.0)
    assert core.suspicion_deadline("p0") == deadline


@pytest.mark.parametrize("via", ["gossip", "ack"])
def test_suspicion_refuted_before_deadline_never_fails(via: str) -> None:
    """SWIM §4.2: an ALIVE record at a higher incarnation (the suspect's refutation),
    arriving before the deadline by gossip or in an Ack, cancels the suspicion: the
    member never turns FAILED."""
    driver, members, target, when = _suspected_by_own_probe()
    core = driver.core
    deadline = core.suspicion_deadline(target)
    assert deadline is not None
    driver.run_until((when + deadline) / 2)
    alive = Member(target, members[target].address, 1, Status.ALIVE)
    if via == "gossip":
        effects = core.handle("p9", Gossip((alive,)), driver.now)
    else:
        effects = core.handle(target, Ack(12345, alive), driver.now)
    assert [(e.kind, e.member) for e in events(effects)] == [(EventKind.CHANGED, alive)]
    assert core.suspicion_deadline(target) is None
    driver.responders[target] = alive
    out = driver.run_until(deadline + 5.0)
    assert published(out) == []
    assert held(core, target) == alive
    assert core.counters.failures_declared == 0


def test_suspicion_timeout_scales_with_log_of_cluster_size() -> None:
    """Lifeguard §IV-B: the suspicion timeout grows with log10(N): with 50 members it is
    log10(50) times the timeout with 5 members (both with no confirmation)."""
    spans = {}
    for n in (5, 50):
        core, members = with_peers(n - 1)
        first = next(iter(members.values()))
        core.handle("x", Gossip((suspect_of(first, "x"),)), 0.0)
        deadline = core.suspicion_deadline(first.name)
        assert deadline is not None
        spans[n] = deadline
    assert spans[5] == pytest.approx(LOCAL.suspicion_max_timeout_mult * LOCAL.suspicion_mult
                                     * LOCAL.probe_interval_s)
    assert spans[50] / spans[5] == pytest.approx(math.log10(50))


# ====================================================================== precedence


def _rec(incarnation: int, status: Status) -> Member:
    origin = "x" if status in (Status.SUSPECT, Status.FAILED) else ""
    return Member("m", addr(8100), incarnation, status, origin)


@pytest.mark.parametrize(
    "held_record, incoming, wins",
    [
        (_rec(3, Status.ALIVE), _rec(3, Status.SUSPECT), True),
        (_rec(3, Status.SUSPECT), _rec(3, Status.FAILED), True),
        (_rec(3, Status.ALIVE), _rec(3, Status.FAILED), True),
        (_rec(3, Status.SUSPECT), _rec(3, Status.ALIVE), False),
        (_rec(3, Status.FAILED), _rec(3, Status.SUSPECT), False),
        (_rec(3, Status.FAILED), _rec(3, Status.ALIVE), False),
        (_rec(3, Status.SUSPECT), _rec(4, Status.ALIVE), True),
        (_rec(3, Status.FAILED), _rec(4, Status.ALIVE), True),
        (_rec(3, Status.FAILED), _rec(9, Status.ALIVE), True),
        (_rec(4, Status.ALIVE), _rec(3, Status.SUSPECT), False),
        (_rec(4, Status.ALIVE), _rec(3, Status.FAILED), False),
        (_rec(3, Status.LEFT), _rec(3, Status.ALIVE), False),
        (_rec(3, Status.LEFT), _rec(3, Status.SUSPECT), False),
        (_rec(3, Status.LEFT), _rec(3, Status.FAILED), False),
        (_rec(3, Status.ALIVE), _rec(3, Status.LEFT), True),
        (_rec(3, Status.FAILED), _rec(3, Status.LEFT), True),
        (_rec(3, Status.LEFT), _rec(4, Status.ALIVE), True),
    ],
    ids=lambda v: v.status.name + str(v.incarnation) if isinstance(v, Member) else str(v),
)
def test_precedence_merge_in_core(held_record: Member, incoming: Member, wins: bool) -> None:
    """SWIM §4.2 (suspicion subprotocol): at the same incarnation SUSPECT overrides ALIVE
    and FAILED overrides SUSPECT (and ALIVE); an ALIVE at a higher incarnation overrides
    SUSPECT and FAILED; LEFT is final for its incarnation (member.py), undone only by a
    higher one."""
    core = make_core()
    core.merge([held_record], 0.0)
    core.handle("z", Gossip((incoming,)), 1.0)
    assert held(core, "m") == (incoming if wins else held_record)


def test_precedence_failed_member_not_revived_by_stale_alive() -> None:
    """SWIM §4.2: once FAILED at incarnation i, ALIVE messages of incarnation ≤ i (late
    acks, stale gossip) do not bring the member back, and it stays out of probing."""
    core, members = with_peers(2)
    core.remove("p0", 0.0)
    core.handle("p0", Ack(1, members["p0"]), 0.5)
    core.handle("p1", Gossip((members["p0"],)), 0.5)
    assert held(core, "p0").status is Status.FAILED
    assert "p0" not in core.live_peer_names()


# ====================================================================== stale verdicts


def test_failed_in_full_state_about_live_member_is_only_a_suspicion() -> None:
    """membership.py (memberlist's push-pull rule): a FAILED record in a peer's full list
    about a member held ALIVE at the same incarnation starts a suspicion from the node
    that declared it, rather than failing the member at once."""
    core = make_core()
    core.merge([_rec(3, Status.ALIVE)], 0.0)
    effects = core.handle("z", StateSync((_rec(3, Status.FAILED),), False, True), 1.0)
    assert held(core, "m") == Member("m", addr(8100), 3, Status.SUSPECT, "x")
    assert [e.kind for e in events(effects)] == [EventKind.SUSPECTED]
    assert core.suspicion_deadline("m") is not None


def test_failed_in_gossip_or_from_operator_applies_at_once() -> None:
    """membership.py: a gossiped verdict is fresh and applies as it is; a verdict with no
    origin (an operator's removal) applies even in a full list."""
    gossiped = make_core()
    gossiped.merge([_rec(3, Status.ALIVE)], 0.0)
    gossiped.handle("z", Gossip((_rec(3, Status.FAILED),)), 1.0)
    assert held(gossiped, "m").status is Status.FAILED
    removal = Member("m", addr(8100), 3, Status.FAILED)
    synced = make_core()
    synced.merge([_rec(3, Status.ALIVE)], 0.0)
    synced.handle("z", StateSync((removal,), False, True), 1.0)
    assert held(synced, "m") == removal


@pytest.mark.parametrize("x_back", [True, False], ids=["origin-just-back", "origin-failed"])
def test_gossiped_verdict_from_a_node_that_was_cut_off_is_only_a_suspicion(
    x_back: bool,
) -> None:
    """membership.py: a node that was cut off still has its verdicts on everyone queued
    for gossip when it reconnects. While its origin is held failed, or came back from
    failed only lately, a gossiped FAILED about a member held live is a suspicion from
    that origin: the member refutes it and is never failed (a chaos run caught this as a
    false failure right after a heal)."""
    core = make_core()
    core.merge([_rec(3, Status.ALIVE), Member("x", addr(8200), 0, Status.ALIVE)], 0.0)
    core.handle("p", Gossip((Member("x", addr(8200), 0, Status.FAILED, "a"),)), 1.0)
    if x_back:
        core.handle("x", Gossip((Member("x", addr(8200), 1, Status.ALIVE),)), 2.0)
    effects = core.handle("x", Gossip((_rec(3, Status.FAILED),)), 2.1)
    assert held(core, "m") == Member("m", addr(8100), 3, Status.SUSPECT, "x")
    assert [e.kind for e in events(effects)] == [EventKind.SUSPECTED]
    core.handle("m", Gossip((Member("m", addr(8100), 4, Status.ALIVE),)), 2.2)
    assert held(core, "m").status is Status.ALIVE


def test_gossiped_verdict_from_a_node_back_for_a_while_applies_at_once() -> None:
    """membership.py: once the node that came back has had time to send all it queued
    (twice retransmit rounds x gossip interval), its verdicts apply as they are."""
    core = make_core()
    core.merge([_rec(3, Status.ALIVE), Member("x", addr(8200), 0, Status.ALIVE)], 0.0)
    core.handle("p", Gossip((Member("x", addr(8200), 0, Status.FAILED, "a"),)), 1.0)
    core.handle("x", Gossip((Member("x", addr(8200), 1, Status.ALIVE),)), 2.0)
    window = 2 * LOCAL.gossip_interval_s * LOCAL.retransmit_mult  # log10(3) rounds up to 1
    core.handle("x", Gossip((_rec(3, Status.FAILED),)), 2.0 + window + 0.01)
    assert held(core, "m").status is Status.FAILED


def test_node_alone_lets_its_gossip_queue_expire() -> None:
    """membership.py: with no live member to gossip to, rounds still count, so what a
    cut-off node queued is not pushed out when it reconnects."""
    core, members = with_peers(2)
    for name in members:
        core.remove(name, 0.0)
    assert core.pending_broadcasts()
    now = 0.0
    for _ in range(200):
        now = core.next_deadline()
        core.tick(now)
        if not core.pending_broadcasts():
            break
    assert core.pending_broadcasts() == ()
    assert now < 5.0
