"""The laws of dynago.kv.version (its module docstring), checked with Hypothesis on
objects that real histories produce: random coordinated writes with random contexts
across 2–5 replicas, and merges between them (tests/kv/kv_version_support.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kv_version_support import (  # tests/kv is on sys.path under pytest
    History,
    contents,
    covered,
    expected_dots,
    histories,
    objects_of_one_key,
)

from dynago.kv.model import Content
from dynago.kv.version import (
    EMPTY,
    Object,
    context_of,
    coordinate,
    decode,
    decode_context,
    descends,
    encode,
    encode_context,
    is_deleted,
    merge,
)

LAWS = settings(max_examples=200, deadline=None)
CODEC = settings(max_examples=500, deadline=None)


def dots(obj: Object) -> set[tuple[str, int]]:
    return {v.dot for v in obj.versions}


@LAWS
@given(objects_of_one_key(2))
def test_version_merge_commutative(pair: list[Object]) -> None:
    a, b = pair
    assert merge(a, b) == merge(b, a)


@LAWS
@given(objects_of_one_key(3))
def test_version_merge_associative(triple: list[Object]) -> None:
    a, b, c = triple
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@LAWS
@given(objects_of_one_key(2))
def test_version_merge_idempotent_with_empty_identity(pair: list[Object]) -> None:
    a, b = pair
    assert merge(a, a) == a
    assert merge(a, EMPTY) == a == merge(EMPTY, a)
    ab = merge(a, b)
    assert merge(ab, b) == ab == merge(a, ab)


@LAWS
@given(st.lists(histories(max_steps=8), min_size=3, max_size=3),
       st.integers(0, 10**6))
def test_version_merge_laws_hold_even_for_unrelated_histories(
        runs: list[History], pick: int) -> None:
    # Unrelated histories reuse dots with other contents (a replica that lost its data):
    # merge must still be a semilattice so that replicas converge.
    a, b, c = (run.snapshots[pick % len(run.snapshots)] for run in runs)
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a


@LAWS
@given(objects_of_one_key(2))
def test_version_merge_keeps_exactly_the_undominated_versions(pair: list[Object]) -> None:
    a, b = pair
    result = merge(a, b)
    expected = ({v.dot for v in a.versions if v.dot in dots(b) or not covered(b.clock, v.dot)}
                | {v.dot for v in b.versions
                   if v.dot in dots(a) or not covered(a.clock, v.dot)})
    assert dots(result) == expected
    assert len(result.versions) == len(expected)  # a version on both sides is kept once
    assert Object(result.clock, result.versions) == result  # canonical (constructor checks)


@LAWS
@given(histories())
def test_version_history_holds_every_unsuperseded_write_and_nothing_else(history: History) -> None:
    # No acknowledged write is dropped by a merge, and no superseded one survives: each
    # object holds exactly the writes it has seen that no write it has seen covered.
    for obj in history.snapshots:
        assert dots(obj) == expected_dots(history, obj)
        for version in obj.versions:
            assert version.content == history.writes[version.dot].content


@LAWS
@given(histories(), st.data())
def test_version_write_with_read_context_replaces_exactly_what_the_read_saw(
        history: History, data: st.DataObject) -> None:
    read = data.draw(st.sampled_from(history.snapshots), label="read")
    name = data.draw(st.sampled_from(history.replicas), label="coordinator")
    before = history.objects[name]
    result = coordinate(before, context_of(read), name, data.draw(contents))
    new_dot = (name, dict(result.clock)[name])
    # Siblings the read did not see (written concurrently, after it) stay.
    assert dots(result) == {d for d in dots(before) if not covered(read.clock, d)} | {new_dot}
    # What the read saw is gone wherever this write arrives, even on replicas that
    # still hold it.
    for obj in history.objects.values():
        assert not dots(merge(obj, result)) & dots(read)


@LAWS
@given(histories(), st.data())
def test_version_write_without_context_adds_a_sibling(
        history: History, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(history.replicas))
    before = history.objects[name]
    result = coordinate(before, None, name, data.draw(contents))
    assert len(result.versions) == len(before.versions) + 1
    assert set(before.versions) < set(result.versions)


@LAWS
@given(histories(), st.data())
def test_version_tombstone_never_resurrected_by_an_old_replica(
        history: History, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(history.replicas))
    before = history.objects[name]
    overwrite = data.draw(st.booleans())
    tomb = coordinate(before, None if overwrite else context_of(before), name,
                      Content(b"", deleted=True), overwrite=overwrite)
    assert is_deleted(tomb)
    # Every older copy (each snapshot the tombstone's coordinator had already seen) and
    # any mix of them merged in leaves it deleted.
    old = [s for s in history.snapshots if descends(before.clock, s.clock)]
    result = tomb
    for stale in data.draw(st.lists(st.sampled_from(old), max_size=5)):
        result = merge(stale, result)
        assert result == tomb


@LAWS
@given(histories())
def test_version_encode_decode_round_trip(history: History) -> None:
    for obj in history.snapshots:
        assert decode(encode(obj)) == obj
        assert decode_context(encode_context(context_of(obj))) == obj.clock


@CODEC
@given(st.binary(max_size=200))
def test_version_decode_random_bytes_raises_value_error_only(data: bytes) -> None:
    # Whatever decodes is canonical: it re-encodes to the same bytes.
    try:
        assert encode(decode(data)) == data
    except ValueError:
        pass
    try:
        assert encode_context(decode_context(data)) == data
    except ValueError:
        pass


@CODEC
@given(histories(max_steps=6), st.data())
def test_version_decode_truncated_or_flipped_raises_value_error_only(
        history: History, data: st.DataObject) -> None:
    raw = encode(data.draw(st.sampled_from(history.snapshots)))
    for cut in range(len(raw)):
        try:
            decode(raw[:cut])
        except ValueError:
            continue
        raise AssertionError(f"a {cut}-byte prefix of {len(raw)} bytes decoded")
    position = data.draw(st.integers(0, len(raw) - 1))
    flipped = bytearray(raw)
    flipped[position] ^= data.draw(st.integers(1, 255))
    try:
        assert encode(decode(bytes(flipped))) == bytes(flipped)
    except ValueError:
        pass
