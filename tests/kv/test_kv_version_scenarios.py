"""Concrete scenarios of dynago.kv.version, one per rule a client relies on."""

from __future__ import annotations

import pytest

from dynago.kv.model import Content, TooLarge
from dynago.kv.version import (
    EMPTY,
    MAX_CLOCK_ENTRIES,
    Object,
    Version,
    context_of,
    coordinate,
    decode,
    decode_context,
    descends,
    encode,
    encode_context,
    is_deleted,
    merge,
    resolve_one,
    siblings,
)


def values(obj: Object) -> list[bytes]:
    return sorted(s.content.value for s in siblings(obj))


def test_version_two_writes_without_context_are_two_siblings() -> None:
    a = coordinate(EMPTY, None, "a", Content(b"one"))
    b = coordinate(EMPTY, None, "b", Content(b"two"))
    assert values(merge(a, b)) == [b"one", b"two"]
    # Even on one coordinator: a write without context never replaces anything.
    assert values(coordinate(a, None, "a", Content(b"two"))) == [b"one", b"two"]


def test_version_write_with_the_reads_context_leaves_one_value() -> None:
    both = merge(coordinate(EMPTY, None, "a", Content(b"one")),
                 coordinate(EMPTY, None, "b", Content(b"two")))
    resolved = coordinate(both, decode_context(encode_context(context_of(both))), "c",
                          Content(b"three"))
    assert values(resolved) == [b"three"]
    assert values(merge(resolved, both)) == [b"three"]


def test_version_sibling_written_after_the_read_survives_the_write() -> None:
    a = coordinate(EMPTY, None, "a", Content(b"v1"))
    read = a  # the client reads v1 from a
    b = coordinate(merge(EMPTY, a), None, "b", Content(b"concurrent"))  # someone else, at b
    written = coordinate(merge(a, b), context_of(read), "a", Content(b"v2"))
    assert values(written) == [b"concurrent", b"v2"]


def test_version_context_from_another_replica_supersedes_what_it_saw_there() -> None:
    at_b = coordinate(EMPTY, None, "b", Content(b"only at b"))
    written = coordinate(EMPTY, context_of(at_b), "a", Content(b"new"))  # a never held it
    assert values(merge(written, at_b)) == [b"new"]


def test_version_counter_is_above_anything_the_context_saw() -> None:
    a1 = coordinate(EMPTY, None, "a", Content(b"1"))
    a2 = coordinate(a1, context_of(a1), "a", Content(b"2"))
    # A coordinator "a" holding only a1 (say, restored) still never reuses dot (a, 2).
    again = coordinate(a1, context_of(a2), "a", Content(b"3"))
    assert [v.dot for v in again.versions] == [("a", 3)]


def test_version_overwrite_supersedes_every_sibling_held() -> None:
    both = merge(coordinate(EMPTY, None, "a", Content(b"one")),
                 coordinate(EMPTY, None, "b", Content(b"two")))
    assert values(coordinate(both, None, "a", Content(b"plain"), overwrite=True)) == [b"plain"]


def test_version_delete_hides_the_key_and_an_old_replica_cannot_bring_it_back() -> None:
    a = coordinate(EMPTY, None, "a", Content(b"value"))
    stale_c = merge(EMPTY, a)  # c got the value, then was partitioned away
    tomb = coordinate(a, context_of(a), "a", Content(b"", deleted=True))
    assert is_deleted(tomb) and siblings(tomb) == ()
    assert len(siblings(tomb, include_deleted=True)) == 1
    healed = merge(stale_c, tomb)
    assert is_deleted(healed) and healed == tomb
    assert resolve_one(healed) is None


def test_version_delete_concurrent_with_a_write_keeps_the_write() -> None:
    a = coordinate(EMPTY, None, "a", Content(b"v1"))
    tomb = coordinate(a, context_of(a), "a", Content(b"", deleted=True))
    rewritten = coordinate(merge(EMPTY, a), None, "b", Content(b"v2"))
    assert values(merge(tomb, rewritten)) == [b"v2"]  # v1 stays deleted, v2 is new
    assert not is_deleted(merge(tomb, rewritten))


def test_version_resolve_one_latest_then_greatest_vtag_ignoring_tombstones() -> None:
    old = coordinate(EMPTY, None, "a", Content(b"old", last_modified_us=10))
    new = coordinate(EMPTY, None, "b", Content(b"new", last_modified_us=20))
    tomb = coordinate(EMPTY, None, "c", Content(b"", deleted=True, last_modified_us=30))
    assert resolve_one(merge(merge(old, new), tomb)).content.value == b"new"  # type: ignore[union-attr]
    tie = merge(coordinate(EMPTY, None, "a", Content(b"x", last_modified_us=5)),
                coordinate(EMPTY, None, "b", Content(b"y", last_modified_us=5)))
    winner = max(siblings(tie), key=lambda s: s.vtag)
    assert resolve_one(tie) == winner
    assert resolve_one(EMPTY) is None


def test_version_vtag_is_the_same_on_every_node() -> None:
    a = coordinate(EMPTY, None, "a", Content(b"v"))
    on_other_node = decode(encode(merge(coordinate(EMPTY, None, "b", Content(b"w")), a)))
    tags = {s.content.value: s.vtag for s in siblings(on_other_node)}
    assert tags[b"v"] == siblings(a)[0].vtag != tags[b"w"]


def test_version_descends() -> None:
    assert descends((("a", 2), ("b", 1)), (("a", 1),))
    assert not descends((("a", 1),), (("a", 1), ("b", 1)))
    assert descends((), ()) and descends((("a", 1),), ())


def test_version_too_many_siblings_or_replicas_refused() -> None:
    obj = EMPTY
    for _ in range(3):
        obj = coordinate(obj, None, "a", Content(b"x"), max_siblings=3)
    with pytest.raises(TooLarge):
        coordinate(obj, None, "a", Content(b"x"), max_siblings=3)
    assert len(coordinate(obj, context_of(obj), "a", Content(b"x"), max_siblings=3)
               .versions) == 1
    wide = EMPTY
    for i in range(MAX_CLOCK_ENTRIES):
        wide = coordinate(wide, context_of(wide), f"r{i:02}", Content(b"x"))
    with pytest.raises(TooLarge):
        coordinate(wide, context_of(wide), "zz", Content(b"x"))


@pytest.mark.parametrize("raw", [
    b"", b"\x02\x00", b"\x01\x41" + b"\x00" * 600,  # unknown format; 65 entries
    b"\x01\x01\x00" + b"\x00" * 8,  # empty replica name
    b"\x01\x02\x01b\x00\x00\x00\x00\x00\x00\x00\x01\x01a\x00\x00\x00\x00\x00\x00\x00\x01",
    b"\x01\x01\x01a\x00\x00\x00\x00\x00\x00\x00\x00",  # zero counter
    b"\x01\x00\x00",  # trailing byte
])
def test_version_decode_context_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_context(raw)


def test_version_malformed_objects_rejected_at_construction() -> None:
    with pytest.raises(ValueError):
        Object((("a", 1),), (Version("a", 2, Content(b"")),))  # dot not covered
    with pytest.raises(ValueError):
        Object((("b", 1), ("a", 1)), ())  # clock unsorted
    with pytest.raises(ValueError):
        coordinate(EMPTY, (("a", 0),), "a", Content(b""))  # zero entry in a context
    with pytest.raises(ValueError):
        coordinate(EMPTY, None, "x" * 256, Content(b""))
