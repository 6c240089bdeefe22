"""Property tests of the merge laws stated in the header of dynago/core/member.py.

* ``merge_member`` keeps the greater record, so merging is commutative, associative and
  idempotent.
* Every node that has seen the same records holds the same view, whatever the order or
  repetition of messages.
"""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynago.config import Config
from dynago.core import Gossip, Member, MembershipCore, Status, merge_member, merge_views
from dynago.core.member import MAX_INCARNATION, view_of

NAMES = ("a", "b", "c", "d")
"""A small pool so that records of the same member collide often."""

SELF = "self"
"""Name of the cores under test; never drawn from NAMES."""

LAWS = settings(max_examples=200, deadline=None)

incarnations = st.one_of(
    st.integers(min_value=0, max_value=3),
    st.sampled_from([MAX_INCARNATION - 1, MAX_INCARNATION]),
    st.integers(min_value=0, max_value=MAX_INCARNATION),
)
addresses = st.sampled_from([7001, 7002, 7003]).map(lambda port: f"127.0.0.1:{port}")
statuses = st.sampled_from(list(Status))
tag_sets = st.dictionaries(
    st.sampled_from(["role", "zone"]), st.sampled_from(["a", "b"]), max_size=2
).map(lambda tags: tuple(sorted(tags.items())))
"""Canonical tags from a small pool, so that records differing only in tags collide."""


fields = st.tuples(addresses, incarnations, statuses, tag_sets)
"""(address, incarnation, status, tags) of one record; the name is drawn separately."""


def _record(name: str, field: tuple[str, int, Status, tuple[tuple[str, str], ...]]) -> Member:
    address, incarnation, status, tags = field
    return Member(name, address, incarnation, status, tags=tags)


members = st.builds(_record, st.sampled_from(NAMES), fields)
same_member_triples = st.builds(
    lambda name, x, y, z: (_record(name, x), _record(name, y), _record(name, z)),
    st.sampled_from(NAMES),
    fields,
    fields,
    fields,
)
views = st.dictionaries(st.sampled_from(NAMES), fields).map(
    lambda drawn: {name: _record(name, field) for name, field in drawn.items()}
)


# ---------------------------------------------------------------------- merge_member


@LAWS
@given(same_member_triples)
def test_merge_member_commutative(triple: tuple[Member, Member, Member]) -> None:
    """member.py law: merge_member is commutative (the greater record wins either way)."""
    a, b, _ = triple
    assert merge_member(a, b) == merge_member(b, a)


@LAWS
@given(same_member_triples)
def test_merge_member_associative(triple: tuple[Member, Member, Member]) -> None:
    """member.py law: merge_member is associative."""
    a, b, c = triple
    assert merge_member(merge_member(a, b), c) == merge_member(a, merge_member(b, c))


@LAWS
@given(members)
def test_merge_member_idempotent(a: Member) -> None:
    """member.py law: merge_member is idempotent."""
    assert merge_member(a, a) == a


@LAWS
@given(same_member_triples)
def test_merge_member_keeps_greater_record(triple: tuple[Member, Member, Member]) -> None:
    """member.py law: merge_member keeps the greater record by (incarnation, rank, address,
    origin, tags)."""
    a, b, _ = triple
    winner = merge_member(a, b)
    assert winner in (a, b)
    assert winner.precedence() == max(a.precedence(), b.precedence())
    assert not a.supersedes(winner) and not b.supersedes(winner)


def test_merge_member_different_names_rejected() -> None:
    """member.py: merge_member only merges records of the same member."""
    with pytest.raises(ValueError, match="different members"):
        merge_member(Member("a", "127.0.0.1:7001"), Member("b", "127.0.0.1:7001"))


# ---------------------------------------------------------------------- merge_views


@LAWS
@given(views, views)
def test_merge_views_commutative(a: dict[str, Member], b: dict[str, Member]) -> None:
    """member.py law: merge_views is commutative."""
    assert merge_views(a, b) == merge_views(b, a)


@LAWS
@given(views, views, views)
def test_merge_views_associative(
    a: dict[str, Member], b: dict[str, Member], c: dict[str, Member]
) -> None:
    """member.py law: merge_views is associative."""
    assert merge_views(merge_views(a, b), c) == merge_views(a, merge_views(b, c))


@LAWS
@given(views)
def test_merge_views_idempotent(a: dict[str, Member]) -> None:
    """member.py law: merge_views is idempotent, and the empty view is its identity."""
    assert merge_views(a, a) == a
    assert merge_views(a, {}) == a
    assert merge_views({}, a) == a


@LAWS
@given(views, views)
def test_merge_views_least_upper_bound(a: dict[str, Member], b: dict[str, Member]) -> None:
    """member.py: merge_views is the least view holding both (pointwise greater record)."""
    merged = merge_views(a, b)
    assert set(merged) == set(a) | set(b)
    for name, member in merged.items():
        candidates = [view[name] for view in (a, b) if name in view]
        assert member in candidates
        assert member.precedence() == max(c.precedence() for c in candidates)


@LAWS
@given(views, views)
def test_merge_views_does_not_mutate_inputs(a: dict[str, Member], b: dict[str, Member]) -> None:
    """member.py: merge_views returns a new view and leaves its inputs alone."""
    a_before, b_before = dict(a), dict(b)
    merge_views(a, b)
    assert a == a_before and b == b_before


# ---------------------------------------------------------------------- view_of


@LAWS
@given(st.lists(members, max_size=12), st.data())
def test_view_of_order_and_repetition_independent(
    records: list[Member], data: st.DataObject
) -> None:
    """member.py law: the view does not depend on order or repetition of records."""
    expected = view_of(records)
    shuffled = data.draw(st.permutations(records), label="shuffled")
    repeats_strategy = st.lists(st.sampled_from(records), max_size=12) if records else st.just([])
    repeats = data.draw(repeats_strategy, label="repeats")
    mixed = data.draw(st.permutations(shuffled + repeats), label="mixed")
    assert view_of(shuffled) == expected
    assert view_of(mixed) == expected


@LAWS
@given(st.lists(members, max_size=12))
def test_view_of_equals_fold_of_merge_views(records: list[Member]) -> None:
    """member.py: folding records one by one equals merging their singleton views."""
    empty: dict[str, Member] = {}
    folded = functools.reduce(merge_views, ({m.name: m} for m in records), empty)
    assert view_of(records) == folded


# ---------------------------------------------------------------------- MembershipCore


def _feed(records: list[Member], chunk_sizes: list[int], seed: int) -> MembershipCore:
    core = MembershipCore(SELF, "127.0.0.1:9000", Config.local(), random.Random(seed), 0.0)
    now = 0.0
    position = 0
    sizes = iter(chunk_sizes)
    while position < len(records):
        size = max(1, next(sizes, 1))
        chunk = tuple(records[position : position + size])
        sender = chunk[0].name
        now += 0.01
        core.handle(sender, Gossip(chunk), now)
        position += size
    return core


@LAWS
@given(
    st.lists(members, min_size=1, max_size=12),
    st.data(),
)
def test_core_gossip_order_and_repetition_independent(
    records: list[Member], data: st.DataObject
) -> None:
    """member.py law: every node that has seen the same records holds the same view,
    whatever the order or repetition of messages (records about other members)."""
    first_order = data.draw(st.permutations(records), label="first order")
    extra = data.draw(st.lists(st.sampled_from(records), max_size=8), label="repeats")
    second_order = data.draw(st.permutations(records + extra), label="second order")
    chunks_1 = data.draw(st.lists(st.integers(1, 4), max_size=12), label="chunks 1")
    chunks_2 = data.draw(st.lists(st.integers(1, 4), max_size=12), label="chunks 2")

    one = _feed(first_order, chunks_1, seed=1)
    two = _feed(second_order, chunks_2, seed=2)

    got_one = [record.member for record in one.records()]
    got_two = [record.member for record in two.records()]
    assert got_one == got_two
    expected = view_of(records)
    expected[SELF] = Member(SELF, "127.0.0.1:9000")
    assert got_one == [expected[name] for name in sorted(expected)]
