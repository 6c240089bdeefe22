"""The laws of dynago.kv.tictac (its module docstring) and of dynago.kv.reap, checked with
Hypothesis: trees built in any order, trees of two differing key sets, canonical object
hashes, and tombstone markers that nothing stale can undo."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kv_version_support import objects_of_one_key  # tests/kv is on sys.path under pytest

from dynago.kv import version
from dynago.kv.model import Content
from dynago.kv.reap import is_marker, is_tombstone, marker_of, may_reap, reap_update
from dynago.kv.tictac import (
    BRANCH_WIDTH,
    BRANCHES,
    SEGMENTS,
    PartitionTree,
    TicTacTree,
    TokenBucket,
    compare_keys,
    differing,
    differing_branches,
    object_hash,
    segment_of,
)

LAWS = settings(max_examples=200, deadline=None)
OBJECTS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.binary(min_size=1, max_size=12).map(lambda k: b"b\x00" + k)
key_maps = st.dictionaries(keys, st.integers(0, 2**64 - 1), max_size=60)


def exchange(a: TicTacTree, b: TicTacTree) -> list[int]:
    """The segments an exchange finds, walking root → branches → segments."""
    if a.root == b.root and a.branches == b.branches:
        return []
    branches = differing_branches(a.branches, b.branches)
    return differing(a.segment_hashes(branches), b.segment_hashes(branches))


@LAWS
@given(key_maps, st.lists(st.tuples(keys, st.integers(0, 2**64 - 1) | st.none()),
                          max_size=40), st.randoms())
def test_tictac_incremental_in_any_order_equals_from_scratch(
        final: dict[bytes, int], noise: list[tuple[bytes, int | None]],
        rnd: random.Random) -> None:
    index = PartitionTree()
    held: dict[bytes, int] = {}

    def put(key: bytes, obj: int | None) -> None:  # what a commit's IndexChange carries
        index.update(key, held.get(key), obj)
        if obj is None:
            held.pop(key, None)
        else:
            held[key] = obj

    # Writes that are later overwritten, then the final values, shuffled per key order.
    steps = [*noise, *final.items(), *((k, None) for k, _ in noise if k not in final)]
    for key, obj in steps:
        put(key, obj)
    for key, obj in final.items():  # the final state, whatever came before
        put(key, obj)
    items = list(final.items())
    rnd.shuffle(items)
    assert index.tree == TicTacTree.of(items)
    assert index.tree.root == TicTacTree.of(final.items()).root
    assert len(index) == len(final)
    per_segment = [0] * SEGMENTS
    for key in final:
        per_segment[segment_of(key)] += 1
    assert index.counts == per_segment


@LAWS
@given(key_maps, key_maps)
def test_tictac_trees_differ_exactly_in_segments_of_differing_keys(
        a: dict[bytes, int], b: dict[bytes, int]) -> None:
    ta, tb = TicTacTree.of(a.items()), TicTacTree.of(b.items())
    differ = {segment_of(k) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert set(exchange(ta, tb)) == differ
    assert (ta == tb) == (not differ)
    if differ:
        assert set(differing_branches(ta.branches, tb.branches)) == {
            s // BRANCH_WIDTH for s in differ}


@LAWS
@given(key_maps, key_maps)
def test_tictac_key_comparison_repairs_both_ways_to_the_union(
        a: dict[bytes, int], b: dict[bytes, int]) -> None:
    diff = compare_keys(a, b)
    assert set(diff.send) == {k for k in a if b.get(k) != a[k]}
    assert set(diff.fetch) == {k for k in b if a.get(k) != b[k]}
    # After the repair, every key either side held is on both sides.
    assert set(a) | set(diff.fetch) == set(b) | set(diff.send) == set(a) | set(b)


@OBJECTS
@given(objects_of_one_key(2))
def test_tictac_object_hash_equal_exactly_for_equal_objects(pair: list[version.Object]) -> None:
    a, b = pair
    assert (object_hash(version.encode(a)) == object_hash(version.encode(b))) == (a == b)
    # Two replicas that merged each other's objects, in either order, hash equal.
    assert object_hash(version.encode(version.merge(a, b))) == object_hash(
        version.encode(version.merge(b, a)))
    # Stored bytes are canonical: re-encoding what decode read gives the same bytes.
    data = version.encode(a)
    assert version.encode(version.decode(data)) == data


def test_tictac_branch_hashes_come_whole() -> None:
    with pytest.raises(ValueError):
        differing_branches([0] * BRANCHES, [0])
    with pytest.raises(ValueError):
        TicTacTree().segment_hashes([BRANCHES])


def test_tictac_token_bucket_bounds_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    taken = sum(bucket.take(1, 0.0) for _ in range(20))
    assert taken == 5  # the burst
    assert not bucket.take(1, 0.05)
    assert bucket.take(1, 0.1)  # 10 per second refill
    assert sum(bucket.take(1, t / 100) for t in range(11, 111)) == 10  # one more second
    big = TokenBucket(rate=1, burst=2, now=0.0)
    assert big.take(10, 0.0)  # over the burst: passes when full, leaves a debt
    assert not big.take(1, 5.0)
    assert big.take(1, 10.0)


# ------------------------------------------------------------------ reaping (kv.reap)

TOMB = Content(b"", deleted=True)


def _deleted_after(value: bytes) -> tuple[version.Object, version.Object]:
    """(the live object, its tombstone written with the context of a read of it)."""
    live = version.coordinate(version.EMPTY, None, "a", Content(value))
    return live, version.coordinate(live, version.context_of(live), "b", TOMB)


def test_reap_marker_never_lets_a_stale_value_back() -> None:
    live, tomb = _deleted_after(b"old")
    marker = marker_of(tomb)
    assert is_tombstone(tomb) and is_marker(marker) and not is_tombstone(marker)
    assert version.merge(marker, live) == marker
    assert version.merge(live, marker) == marker
    assert version.merge(tomb, marker) == marker  # the marker spreads by merge
    assert version.is_deleted(marker)


def test_reap_marker_keeps_a_write_the_delete_never_saw() -> None:
    live, tomb = _deleted_after(b"old")
    concurrent = version.coordinate(live, version.context_of(live), "c", Content(b"new"))
    merged = version.merge(marker_of(tomb), concurrent)
    assert [v.content.value for v in merged.versions] == [b"new"]


def test_reap_write_on_a_marker_continues_the_counters() -> None:
    live, tomb = _deleted_after(b"old")
    again = version.coordinate(marker_of(tomb), None, "a", Content(b"again"))
    # A stale replica still holding ``live`` cannot cover the new write's dot.
    assert [v.content.value for v in version.merge(live, again).versions] == [b"again"]
    assert [v.content.value for v in version.merge(again, live).versions] == [b"again"]


def test_reap_needs_every_replica_to_confirm_the_same_tombstone() -> None:
    _, tomb = _deleted_after(b"old")
    h = object_hash(version.encode(tomb))
    assert may_reap(("a", "b", "c"), {"a": h, "b": h, "c": h}, h)
    assert not may_reap(("a", "b", "c"), {"a": h, "b": h}, h)
    assert not may_reap(("a", "b", "c"), {"a": h, "b": h, "c": h + 1}, h)
    assert not may_reap(("a", "b", "c"), {"a": h, "b": h, "c": None}, h)
    assert not may_reap((), {}, h)


def test_reap_update_reaps_only_the_confirmed_tombstone() -> None:
    live, tomb = _deleted_after(b"old")
    data = version.encode(tomb)
    reaped = reap_update(object_hash(data))(data)
    assert reaped is not None and version.decode(reaped) == marker_of(tomb)
    rewritten = version.encode(version.coordinate(tomb, None, "a", Content(b"x")))
    assert reap_update(object_hash(data))(rewritten) is None
    assert reap_update(object_hash(data))(None) is None
    live_data = version.encode(live)
    assert reap_update(object_hash(live_data))(live_data) is None  # not a tombstone
    with pytest.raises(ValueError):
        marker_of(live)


def test_kv_config_aae_knobs_are_checked() -> None:
    from dynago.config import ConfigError
    from dynago.kv.config import KvConfig

    assert KvConfig().aae_enabled
    KvConfig(aae_exchange_interval_s=0.05, aae_max_keys_per_s=5).validate(4 << 20)
    for bad in ({"aae_exchange_interval_s": 0}, {"aae_max_keys_per_s": -1},
                {"aae_max_bytes_per_s": 0}, {"aae_pause_queue_depth": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            KvConfig(**bad).validate(4 << 20)  # type: ignore[arg-type]
