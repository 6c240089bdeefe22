"""Rules that keep a node's cost per call flat as the cluster grows (core/broadcast.py,
core/probe.py, core/view.py, MembershipCore.next_deadline and the reconnect rule)."""

from __future__ import annotations

import pytest
from swim_support import LOCAL, addr, make_core, peers, with_peers

from dynago.config import Config
from dynago.core import Member, Status
from dynago.core.broadcast import BroadcastQueue, anti_entropy_scale
from dynago.core.messages import DialSeed, Ping, Send, StateSync
from dynago.core.view import ConvergedView


def m(name: str, incarnation: int = 0) -> Member:
    return Member(name, addr(9000), incarnation)


# ---------------------------------------------------------------- gossip queue


def test_queue_sends_fewest_sent_first_and_drops_after_retransmits() -> None:
    queue = BroadcastQueue()
    for name in "abc":
        queue.enqueue(m(name))
    assert [x.name for x in queue.take(2, retransmits=3)] == ["a", "b"]
    # c has been sent in no round yet, a and b in one: c first, then the oldest.
    assert [x.name for x in queue.take(2, retransmits=3)] == ["c", "a"]
    assert [x.name for x in queue.take(3, retransmits=3)] == ["b", "c", "a"]
    # a reached 3 rounds and is gone; b and c follow.
    assert [x.name for x in queue.take(3, retransmits=3)] == ["b", "c"]
    assert queue.take(3, retransmits=3) == ()
    assert len(queue) == 0


def test_queue_newer_record_replaces_and_restarts_count() -> None:
    queue = BroadcastQueue()
    queue.enqueue(m("a"))
    queue.enqueue(m("b"))
    queue.take(2, retransmits=2)
    queue.enqueue(m("a", 5))
    assert set(queue.pending()) == {m("a", 5), m("b")}
    # b goes out in its second and last round; the new a starts again at zero.
    assert [x for x in queue.take(1, retransmits=2)] == [m("a", 5)]
    assert set(queue.take(2, retransmits=2)) == {m("a", 5), m("b")}
    assert queue.take(2, retransmits=2) == ()


# ---------------------------------------------------------------- anti-entropy period


@pytest.mark.parametrize(("n", "scale"), [(1, 1), (32, 1), (33, 2), (64, 2), (65, 3),
                                          (1000, 6), (10000, 10)])
def test_anti_entropy_scale_is_memberlists(n: int, scale: int) -> None:
    assert anti_entropy_scale(n) == scale


def test_large_cluster_exchanges_full_state_less_often() -> None:
    """With 100 peers (N = 101, scale 3) full exchanges start 30 s apart, not 10 s."""
    config = Config.local(anti_entropy_interval_s=10.0, reconnect_interval_s=1e9,
                          probe_interval_s=1e9)  # no probes: all 100 stay alive
    core, _ = with_peers(100, config=config)
    starts = []
    now = 0.0
    while now < 200.0:
        now = core.next_deadline()
        for effect in core.tick(now):
            if (isinstance(effect, Send) and isinstance(effect.message, StateSync)
                    and effect.message.reply_wanted):
                starts.append(now)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) >= 4
    assert all(gap == pytest.approx(30.0, abs=config.tick_interval_s) for gap in gaps)


# ---------------------------------------------------------------- reconnect rule


def test_failed_member_tried_with_probability_failed_over_live() -> None:
    """Serf's rule: one failed member among 40 live ones is tried in about 1 of 40
    periods by each node, not in every period."""
    config = Config.local(probe_interval_s=1e9, anti_entropy_interval_s=1e9,
                          tombstone_retention_s=1e9)
    core, _ = with_peers(40, config=config)
    core.merge([Member("dead", addr(9999), 0, Status.FAILED, "x")], 0.0)
    periods = 400
    tries = 0
    for i in range(1, periods + 1):
        for effect in core.tick(i * config.reconnect_interval_s):
            if isinstance(effect, Send) and effect.to == "dead":
                tries += 1
    assert 2 <= tries <= 25  # Binomial(400, 1/40): mean 10


# ---------------------------------------------------------------- event-driven ticks


def test_nothing_happens_before_next_deadline_and_time_moves_on_at_it() -> None:
    """A driver that ticks only at next_deadline() misses nothing: a tick just before it
    does nothing, the tick at it moves the deadline on, and probing goes round."""
    core, members = with_peers(5)
    probed: set[str] = set()
    for _ in range(50):
        due = core.next_deadline()
        assert core.tick(due - 1e-6) == []
        for effect in core.tick(due):
            if isinstance(effect, Send) and isinstance(effect.message, Ping):
                probed.add(effect.to)
        assert core.next_deadline() > due
    assert probed == set(members)


def test_probe_round_covers_every_live_member_once() -> None:
    """Round-robin over a lazily shuffled order: in any round of N probes, each of the N
    live members is probed exactly once (no acks, so probes run to their end)."""
    config = Config.local(anti_entropy_interval_s=1e9, reconnect_interval_s=1e9,
                          suspicion_mult=1000)
    core, members = with_peers(7, config=config)
    targets: list[str] = []
    now = 0.0
    while len(targets) < 14:
        now = core.next_deadline()
        for effect in core.tick(now):
            if isinstance(effect, Send) and isinstance(effect.message, Ping):
                targets.append(effect.to)
    assert sorted(targets[:7]) == sorted(members)
    assert sorted(targets[7:14]) == sorted(members)


# ---------------------------------------------------------------- converged views


def test_adopted_view_is_held_without_events_or_gossip() -> None:
    core = make_core("a", 7001)
    members = [core.local_member, *peers(4)]
    view = ConvergedView(members, 0.0)
    core.adopt_view(view, 0.0)
    assert [r.member for r in core.records()] == sorted(members, key=lambda x: x.name)
    assert sorted(core.live_peer_names()) == ["p0", "p1", "p2", "p3"]
    assert core.synced and core.pending_broadcasts() == ()
    # The view is copied: another core adopting it is unaffected by this one's changes.
    other = make_core("p0", 8000)
    other.adopt_view(view, 0.0)
    core.remove("p1", 1.0)
    held = other.get("p1")
    assert held is not None and held.member.status is Status.ALIVE


def test_view_without_one_member_is_the_copy_with_that_name_discarded() -> None:
    """view.py live_without: the same names in the same order as copy() then discard()
    (the order decides which member a seeded core probes and gossips to)."""
    members = [*peers(6), Member("gone", addr(9100), 0, Status.FAILED, "p0")]
    view = ConvergedView(members, 0.0)
    for name in ["p0", "p3", "p5", "gone", "stranger"]:
        expected = view.live.copy()
        expected.discard(name)
        assert view.live_without(name).names() == expected.names(), name
    assert view.live.names() == [f"p{i}" for i in range(6)]  # the view is untouched


@pytest.mark.parametrize("case", ["missing self", "other self", "not fresh", "duplicate"])
def test_adopt_view_refuses_what_does_not_fit(case: str) -> None:
    core = make_core("a", 7001)
    members = [core.local_member, *peers(2)]
    if case == "missing self":
        members = members[1:]
    elif case == "other self":
        members[0] = Member("a", addr(7001), 3)
    elif case == "not fresh":
        core.merge(peers(1), 0.0)
    elif case == "duplicate":
        members.append(members[1])
    with pytest.raises(ValueError):
        core.adopt_view(ConvergedView(members, 0.0), 0.0)


def test_seed_held_by_adopted_view_is_not_redialled() -> None:
    """A node whose seed is a live member of the adopted view has nothing to redial."""
    core = make_core("a", 7001, seeds=[addr(8000)],
                     config=Config.local(probe_interval_s=1e9, anti_entropy_interval_s=1e9))
    core.adopt_view(ConvergedView([core.local_member, *peers(3)], 0.0), 0.0)
    effects = [e for i in range(1, 6) for e in core.tick(i * LOCAL.reconnect_interval_s)]
    assert not [e for e in effects if isinstance(e, DialSeed)]


def test_joiner_does_not_regossip_the_list_it_joined_with() -> None:
    """membership.py: what a node that has not joined yet learns from a seed's full list
    is news to it alone; it gossips its own record, not the cluster's N records."""
    joiner = make_core("j", 7100, seeds=[addr(8000)])
    joiner.stream_opened("p0", addr(8000), 0.0, via_seed=True)
    cluster = peers(50)
    joiner.handle("p0", StateSync(tuple(cluster), reply_wanted=False, last=True), 0.1)
    assert joiner.synced
    assert len(joiner.live_peer_names()) == 50
    assert joiner.pending_broadcasts() == (joiner.local_member,)
    # Once joined, news from a full list is gossiped as usual.
    newcomer = Member("q", addr(9100))
    joiner.handle("p0", StateSync((newcomer,), reply_wanted=False, last=True), 0.2)
    assert newcomer in joiner.pending_broadcasts()


def test_joiner_takes_whole_list_from_its_seed_but_others_only_their_allowance() -> None:
    """membership.py (_admit_new): a node that has not joined yet takes all of its seed's
    list (the operator named the seed); any other peer introduces new members only at its
    allowance (new_members_burst, then new_members_per_peer_per_s)."""
    config = Config.local(new_members_burst=10, new_members_per_peer_per_s=1.0)
    joiner = make_core("j", 7100, seeds=[addr(8000)], config=config)
    joiner.stream_opened("p0", addr(8000), 0.0, via_seed=True)
    joiner.handle("p0", StateSync(tuple(peers(60)), reply_wanted=False, last=True), 0.1)
    assert len(joiner.live_peer_names()) == 60
    strangers = [Member(f"s{i}", addr(9500 + i)) for i in range(30)]
    joiner.handle("p1", StateSync(tuple(strangers), reply_wanted=False, last=True), 0.2)
    assert len(joiner.live_peer_names()) == 70
    assert joiner.counters.members_refused_rate == 20


def _reference_take(
    pending: dict[str, tuple[Member, int]], limit: int, retransmits: int
) -> tuple[Member, ...]:
    """broadcast.py's rule in its plainest form: fewest-sent first, oldest first."""
    order = sorted(pending, key=lambda name: pending[name][1])  # stable: oldest first
    out = []
    for name in order[:limit]:
        member, sent = pending[name]
        out.append(member)
        if sent + 1 >= retransmits:
            del pending[name]
        else:
            del pending[name]  # re-inserted: now the newest of its bucket
            pending[name] = (member, sent + 1)
    return tuple(out)


def test_queue_take_matches_the_plain_rule_over_random_rounds() -> None:
    """The bucketed queue picks exactly what sorting the whole queue would, round after
    round, with records replaced meanwhile and limits that vary."""
    import random

    rng = random.Random(5)
    for _ in range(200):
        queue = BroadcastQueue()
        model: dict[str, tuple[Member, int]] = {}
        for _step in range(60):
            if rng.random() < 0.5:
                for _ in range(rng.randrange(1, 6)):
                    record = m(f"x{rng.randrange(30)}", rng.randrange(5))
                    queue.enqueue(record)
                    model.pop(record.name, None)
                    model[record.name] = (record, 0)
            limit, retransmits = rng.randrange(0, 8), rng.randrange(1, 6)
            assert queue.take(limit, retransmits) == _reference_take(model, limit, retransmits)
            assert set(queue.pending()) == {record for record, _ in model.values()}


def test_fast_draws_are_randranges_draws() -> None:
    """nameset.py below(): the same numbers as random.Random.randrange from the same
    seed, so a seeded simulation replays exactly what it did with randrange."""
    import random

    from dynago.core.nameset import below

    ours, theirs = random.Random(11), random.Random(11)
    for n in [*range(1, 600), 2**31 - 1, 2**40 + 7, 10**6]:
        for _ in range(3):
            assert below(ours, n) == theirs.randrange(n)


def test_whitespace_pattern_is_str_isspace() -> None:
    """member.py and address.py test names and hosts for whitespace with a regular
    expression: it must accept exactly what str.isspace() does, for every code point."""
    import sys

    from dynago.core.member import _WHITESPACE

    assert [c for c in map(chr, range(sys.maxunicode + 1))
            if bool(_WHITESPACE.search(c)) != c.isspace()] == []
