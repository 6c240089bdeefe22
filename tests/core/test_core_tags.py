"""Member tags in the pure core: bounds (core/tags.py), validation in Member.problem, and
the rule that only the member changes its tags, by raising its incarnation
(MembershipCore.set_tags); records the core derives from a held one keep its tags."""

from __future__ import annotations

import pytest
from swim_support import addr, events, held, make_core, sends, tick_range, tick_range_answering
from swim_support import with_peers as with_peer_list

from dynago.core import EventKind, Gossip, Member, Status
from dynago.core.member import MAX_INCARNATION
from dynago.core.messages import Ping
from dynago.core.tags import (
    MAX_TAG_KEY_BYTES,
    MAX_TAG_VALUE_BYTES,
    MAX_TAGS,
    MAX_TAGS_BYTES,
    TagError,
    apply_patch,
    make_tags,
    matches,
    parse_filter,
    parse_tag,
    tags_problem,
)

KV = (("role", "kv"), ("zone", "a"))


# ---------------------------------------------------------------------- bounds


def test_make_tags_sorts_a_mapping_or_pairs_into_canonical_form() -> None:
    assert make_tags({"zone": "a", "role": "kv"}) == KV
    assert make_tags([("zone", "a"), ("role", "kv")]) == KV
    assert make_tags({}) == ()


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"": "x"}, "may not be empty"),
        ({"a b": "x"}, "whitespace"),
        ({"a=b": "x"}, "'='"),
        ({"k": "line\nbreak"}, "unprintable"),
        ({"k" * (MAX_TAG_KEY_BYTES + 1): "x"}, f"longer than {MAX_TAG_KEY_BYTES}"),
        ({"k": "v" * (MAX_TAG_VALUE_BYTES + 1)}, f"longer than {MAX_TAG_VALUE_BYTES}"),
        ({"k": "é" * (MAX_TAG_VALUE_BYTES // 2 + 1)}, "longer than"),  # bytes, not chars
        ({f"k{i}": "" for i in range(MAX_TAGS + 1)}, f"more than {MAX_TAGS}"),
        ({f"k{i}": "v" * 200 for i in range(12)}, f"more than {MAX_TAGS_BYTES}"),
        ({"k": 5}, "not a string"),
    ],
)
def test_make_tags_refuses_what_breaks_a_bound(tags: dict[str, object], message: str) -> None:
    with pytest.raises(TagError, match=message):
        make_tags(tags)  # type: ignore[arg-type]


def test_make_tags_refuses_a_key_given_twice() -> None:
    with pytest.raises(TagError, match="more than once"):
        make_tags([("role", "a"), ("role", "b")])


def test_tags_problem_requires_canonical_order() -> None:
    assert tags_problem(KV) is None
    assert "not sorted" in (tags_problem((("zone", "a"), ("role", "kv"))) or "")
    assert "not sorted" in (tags_problem((("role", "a"), ("role", "b"))) or "")
    assert "tuple" in (tags_problem([("role", "kv")]) or "")


def test_parse_tag_and_filter() -> None:
    assert parse_tag("role=kv") == ("role", "kv")
    assert parse_tag("url=http://x/?a=b") == ("url", "http://x/?a=b")  # first '=' splits
    assert parse_tag("empty=") == ("empty", "")
    with pytest.raises(TagError, match="KEY=VALUE"):
        parse_tag("role")
    assert parse_filter("role") == ("role", None)
    assert parse_filter("role=kv") == ("role", "kv")
    with pytest.raises(TagError):
        parse_filter("a b")


def test_matches_needs_every_filter() -> None:
    assert matches(KV, [("role", "kv"), ("zone", None)])
    assert not matches(KV, [("role", "kv"), ("zone", "b")])
    assert not matches(KV, [("rack", None)])
    assert matches((), [])


def test_apply_patch_sets_and_removes() -> None:
    assert apply_patch(KV, {"zone": "b", "rack": "r1"}) == (
        ("rack", "r1"), ("role", "kv"), ("zone", "b"))
    assert apply_patch(KV, {"role": None, "absent": None}) == (("zone", "a"),)
    with pytest.raises(TagError, match="not a string"):
        apply_patch(KV, {"zone": 3})


def test_member_problem_checks_tags() -> None:
    """member.py: a record with invalid tags may not enter a member map."""
    assert Member("a", addr(7001), tags=KV).problem() is None
    assert "not sorted" in (Member("a", addr(7001), tags=KV[::-1]).problem() or "")
    assert "tuple" in (Member("a", addr(7001), tags=[("k", "v")]).problem() or "")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the core


def test_invalid_tags_from_a_peer_are_dropped_and_counted() -> None:
    a = make_core()
    bad = Member("b", addr(7002), tags=(("zone", "a"), ("role", "kv")))
    assert a.handle("x", Gossip((bad,)), 1.0) == []
    assert a.get("b") is None
    assert a.counters.invalid_records == 1


def test_tags_of_a_peer_spread_with_its_record() -> None:
    a = make_core()
    b = Member("b", addr(7002), tags=KV)
    a.handle("b", Gossip((b,)), 1.0)
    assert held(a, "b").tags == KV
    assert b in a.pending_broadcasts()


def test_set_tags_raises_the_incarnation_and_publishes_changed() -> None:
    """Only the member changes its tags, at a new incarnation (like a refutation), so the
    new record wins on every node; subscribers see CHANGED, brought by "local"."""
    a = make_core()
    effects = a.set_tags(KV, 1.0)
    me = a.local_member
    assert (me.incarnation, me.status, me.tags) == (1, Status.ALIVE, KV)
    (event,) = events(effects)
    assert (event.kind, event.member, event.reporter) == (EventKind.CHANGED, me, "local")
    assert event.previous == Member("a", addr(7001))
    assert me in a.pending_broadcasts()


def test_set_tags_with_the_same_tags_changes_nothing() -> None:
    a = make_core()
    a.set_tags(KV, 1.0)
    assert a.set_tags(KV, 2.0) == []
    assert a.local_member.incarnation == 1


def test_set_tags_invalid_raises_and_changes_nothing() -> None:
    a = make_core()
    with pytest.raises(ValueError, match="not sorted"):
        a.set_tags(KV[::-1], 1.0)
    assert a.local_member == Member("a", addr(7001))


def test_set_tags_while_leaving_raises() -> None:
    a = make_core()
    a.leave(1.0)
    with pytest.raises(ValueError, match="leaving"):
        a.set_tags(KV, 2.0)
    assert a.local_member.status is Status.LEFT


def test_set_tags_at_the_maximum_incarnation_raises() -> None:
    a = make_core()
    a.handle("x", Gossip((Member("a", addr(7001), MAX_INCARNATION - 1, Status.SUSPECT, "x"),)),
             1.0)
    assert a.local_member.incarnation == MAX_INCARNATION
    with pytest.raises(ValueError, match="out of range"):
        a.set_tags(KV, 2.0)


def test_a_new_tags_record_wins_over_the_old_one_on_other_nodes() -> None:
    a, b = make_core("a", 7001), make_core("b", 7002)
    b.handle("a", Gossip((a.local_member,)), 0.0)
    a.set_tags(KV, 1.0)
    (event,) = events(b.handle("a", Gossip((a.local_member,)), 1.0))
    assert (event.kind, event.member.tags, event.reporter) == (EventKind.CHANGED, KV, "a")
    assert held(b, "a").tags == KV


def test_records_derived_by_the_core_keep_the_members_tags() -> None:
    """Suspect and failed records this node makes, its refutations and its leave carry
    the tags on: a suspect member keeps showing its tags."""
    a, members = with_peer_list(1)
    tagged = Member("p0", members["p0"].address, 0, tags=KV)
    a.handle("p0", Gossip((tagged,)), 0.0)
    effects = [effect for _, effect in tick_range(a, 0.0, 30.0)]  # p0 never answers
    kinds = [event.kind for event in events(effects) if event.member.name == "p0"]
    assert kinds == [EventKind.SUSPECTED, EventKind.FAILED]
    assert held(a, "p0").tags == KV and held(a, "p0").status is Status.FAILED
    assert all(e.member.tags == KV for e in events(effects) if e.member.name == "p0")
    assert sends(effects, Ping)

    a.set_tags((("zone", "b"),), 31.0)
    a.handle("x", Gossip((Member("a", addr(7001), 1, Status.SUSPECT, "x"),)), 32.0)
    assert a.local_member.tags == (("zone", "b"),) and a.local_member.incarnation == 2
    a.leave(33.0)
    assert a.local_member.tags == (("zone", "b"),) and a.local_member.status is Status.LEFT


def test_self_suspicion_event_says_what_the_probe_saw() -> None:
    """The SUSPECTED event this node raises itself names itself as reporter and says why."""
    a, _ = with_peer_list(2)
    effects = [effect for _, effect in tick_range(a, 0.0, 5.0)]
    suspected = [e for e in events(effects) if e.kind is EventKind.SUSPECTED]
    assert suspected
    for event in suspected:
        assert event.reporter == "self"
        assert event.detail.startswith("our probe got no ack, direct or via 1 helper(s)")


def test_a_tag_only_difference_at_the_same_incarnation_is_a_change() -> None:
    """messages.py EventKind.CHANGED: a record that differs only in tags (a restarted
    member at the same incarnation) is news, not a repeat."""
    a = make_core()
    a.handle("x", Gossip((Member("b", addr(7002)),)), 0.0)
    (event,) = events(a.handle("x", Gossip((Member("b", addr(7002), tags=KV),)), 1.0))
    assert event.kind is EventKind.CHANGED


def test_set_tags_moves_the_next_deadline() -> None:
    """membership.py next_deadline (cached until an input changes the state): a tag change
    queues a broadcast, so the cached deadline is dropped."""
    a, members = with_peer_list(1)
    tick_range_answering(a, 0.0, 10.0, members)
    cached = a.next_deadline()
    a.set_tags(KV, 10.0)
    assert a.next_deadline() == a._compute_next_deadline()
    assert a.next_deadline() <= max(cached, 10.0 + a.config.gossip_interval_s)
