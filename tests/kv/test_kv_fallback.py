"""The sloppy preference list (dynago.kv.fallback): property and table tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynago.kv.fallback import (
    Replica,
    for_partition,
    healthy_status,
    hint_key,
    hint_targets,
    parse_hint_key,
    sloppy_list,
)
from dynago.kv.ring import Ring, RingMember

NAMES = [f"n{i}" for i in range(8)]


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[str], list[str], frozenset[str]]:
    nodes = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=8, unique=True))
    n = draw(st.integers(1, min(5, len(nodes))))
    clockwise = draw(st.permutations(nodes))
    primaries = clockwise[:n]
    down = draw(st.frozensets(st.sampled_from(nodes)))
    return primaries, clockwise, down


@settings(max_examples=100)
@given(cases())
def test_fallback_never_names_a_node_twice(case: tuple[list[str], list[str],
                                                       frozenset[str]]) -> None:
    primaries, clockwise, down = case
    result = sloppy_list(primaries, clockwise, lambda n: n not in down)
    assert len(set(result.nodes)) == len(result.nodes)
    assert not set(result.nodes) & down  # only healthy nodes hold copies


@settings(max_examples=100)
@given(cases())
def test_fallback_only_for_unhealthy_primaries(case: tuple[list[str], list[str],
                                                           frozenset[str]]) -> None:
    primaries, clockwise, down = case
    result = sloppy_list(primaries, clockwise, lambda n: n not in down)
    stood_in = [r.hint_for for r in result.replicas if r.hint_for]
    assert set(stood_in) | set(result.uncovered) == set(primaries) & down
    assert not set(stood_in) & set(result.uncovered)
    assert result.primaries == frozenset(primaries) - down
    for r in result.replicas:
        if r.hint_for:
            assert r.node not in primaries
    # Every unhealthy primary is covered when enough healthy spares exist.
    spares = [n for n in clockwise if n not in primaries and n not in down]
    assert len(stood_in) == min(len(set(primaries) & down), len(spares))


@settings(max_examples=100)
@given(cases())
def test_fallback_same_input_same_output(case: tuple[list[str], list[str],
                                                     frozenset[str]]) -> None:
    primaries, clockwise, down = case
    first = sloppy_list(primaries, clockwise, lambda n: n not in down)
    again = sloppy_list(list(primaries), list(clockwise), lambda n: n not in set(down))
    assert first == again


def test_fallback_takes_the_next_healthy_node_clockwise() -> None:
    result = sloppy_list(["a", "b", "c"], ["a", "b", "c", "d", "e"],
                         lambda n: n not in {"b", "d"})
    assert result.replicas == (Replica("a"), Replica("e", "b"), Replica("c"))
    assert result.uncovered == ()


def test_fallback_none_left_means_uncovered() -> None:
    result = sloppy_list(["a", "b", "c"], ["a", "b", "c"], lambda n: n != "c")
    assert result.replicas == (Replica("a"), Replica("b"))
    assert result.uncovered == ("c",)


def test_fallback_all_healthy_is_the_preference_list() -> None:
    ring = Ring.build([RingMember(n) for n in NAMES[:5]], partitions=16, n_val=3)
    for p in range(16):
        result = for_partition(ring, p, lambda _n: True)
        assert result.nodes == ring.preference_list(p)
        assert result.uncovered == ()


def test_fallback_on_a_ring_walks_clockwise_past_the_list() -> None:
    ring = Ring.build([RingMember(n) for n in NAMES[:5]], partitions=16, n_val=3)
    for p in range(16):
        down = ring.preference_list(p)[1]
        result = for_partition(ring, p, lambda n, d=down: n != d)  # type: ignore[misc]
        spare = next(ring.owner((p + s) % 16) for s in range(16)
                     if ring.owner((p + s) % 16) not in ring.preference_list(p))
        assert result.replicas[1] == Replica(spare, down)


def test_fallback_suspect_is_unhealthy_unless_local_health_is_degraded() -> None:
    assert healthy_status("alive")
    assert not healthy_status("suspect")
    assert healthy_status("suspect", trust_suspicion=False)
    for status in ("failed", "left", "unknown"):
        assert not healthy_status(status, trust_suspicion=False)


def test_fallback_rejects_a_list_naming_a_node_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        sloppy_list(["a", "a"], ["a"], lambda _n: True)


@given(st.text(min_size=1).filter(lambda s: "\x00" not in s),
       st.binary(min_size=1))
def test_fallback_hint_key_reads_back(owner: str, storage_key: bytes) -> None:
    assert parse_hint_key(hint_key(owner, storage_key)) == (owner, storage_key)


@pytest.mark.parametrize("owner", ["", "a\x00b"])
def test_fallback_hint_key_rejects_bad_owner(owner: str) -> None:
    with pytest.raises(ValueError):
        hint_key(owner, b"b\x00k")


@pytest.mark.parametrize("raw", [b"b\x00k", b"\x00h\x00", b"\x00h\x00owner", b"\x00h\x00\x00k"])
def test_fallback_parse_hint_key_rejects_non_hints(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_hint_key(raw)


def test_fallback_token_bucket_limits_the_rate() -> None:
    from dynago.kv.fallback import TokenBucket

    bucket = TokenBucket(rate=10.0, burst=2.0, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.wait_s(0.0) == pytest.approx(0.1)
    assert not bucket.take(0.05)
    assert bucket.take(0.1)
    taken = sum(bucket.take(t / 100) for t in range(11, 211))  # 2 s more
    assert 19 <= taken <= 22


def test_fallback_hint_targets_owner_while_in_ring_else_the_new_preference_list() -> None:
    before = Ring.build([RingMember(n) for n in ("a", "b", "c", "d")], partitions=16, n_val=3)
    after = Ring.build([RingMember(n) for n in ("a", "b", "c")], partitions=16, n_val=3)
    for partition in range(16):
        assert hint_targets("d", before, partition) == ("d",)
        # "d" left: its hints go to whoever owns the key now, never to "d".
        assert hint_targets("d", after, partition) == after.preference_list(partition)
        assert "d" not in hint_targets("d", after, partition)
