"""Laws of the handoff plan and of one transfer's chunk bookkeeping (dynago.kv.handoff)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dynago.kv import handoff
from dynago.kv.model import ObjectKey
from dynago.kv.ring import Ring, RingMember, partition_of

NAMES = [f"n{i}" for i in range(7)]

member_sets = st.sets(st.sampled_from(NAMES), min_size=1, max_size=7)


def ring(names: set[str] | list[str], n_val: int = 3) -> Ring:
    return Ring.build([RingMember(n) for n in names], partitions=16, n_val=n_val)


def all_plans(old: Ring, new: Ring, gone: frozenset[str]) -> dict[str, tuple[
        handoff.PartitionPlan, ...]]:
    senders = {m.name for m in old.members} - gone
    return {n: handoff.plan(old, new, n, gone) for n in senders}


@settings(max_examples=60, deadline=None)
@given(member_sets, member_sets, st.sets(st.sampled_from(NAMES), max_size=2),
       st.integers(1, 3))
def test_handoff_plan_feeds_every_entrant_that_a_survivor_can(
        before: set[str], after: set[str], failed: set[str], n_val: int) -> None:
    old, new = ring(before, n_val), ring(after, n_val)
    gone = frozenset(failed & (before - after))  # only members out of the ring fail here
    plans = all_plans(old, new, gone)
    got = handoff.receivers(plans.items())
    for p in range(16):
        was, now = old.preference_list(p), new.preference_list(p)
        survivors = [n for n in was if n not in gone]
        for entrant in set(now) - set(was):
            if survivors:
                assert entrant in got.get(p, set()), (p, was, now, gone)
        # Nothing goes to a node outside the new list, nor from a node outside the old.
        assert got.get(p, set()) <= set(now)
    for name, node_plans in plans.items():
        for pp in node_plans:
            assert name in old.preference_list(pp.partition)
            assert pp.stays == (name in new.preference_list(pp.partition))
            assert name not in pp.targets


@settings(max_examples=40, deadline=None)
@given(member_sets, member_sets, st.integers(1, 3))
def test_handoff_plan_sends_each_key_once_when_no_copy_was_lost(
        before: set[str], after: set[str], n_val: int) -> None:
    """Without failures, each entrant of each partition gets one copy: the least
    traffic there is (the entrant had nothing)."""
    old, new = ring(before, n_val), ring(after, n_val)
    for p in range(16):
        was, now = old.preference_list(p), new.preference_list(p)
        counts: dict[str, int] = {}
        for name in was:
            for pp in handoff.plan(old, new, name):
                if pp.partition == p:
                    for t in pp.targets:
                        counts[t] = counts.get(t, 0) + 1
        exits = [n for n in was if n not in now]
        entrants = [n for n in now if n not in was]
        if len(exits) <= len(entrants):
            assert all(counts.get(e) == 1 for e in entrants), (p, was, now, counts)


def test_handoff_plan_is_empty_when_the_ring_is_unchanged() -> None:
    same = ring({"a", "b", "c", "d"})
    assert handoff.plan(same, same, "a") == ()


def test_handoff_plan_failed_member_is_rebuilt_by_every_survivor() -> None:
    old, new = ring(["a", "b", "c", "d"]), ring(["a", "b", "c"])
    for p in range(16):
        was, now = old.preference_list(p), new.preference_list(p)
        if "d" in was:
            (entrant,) = set(now) - set(was)
            senders = {n for n in was if n != "d"
                       and any(pp.partition == p and entrant in pp.targets
                               for pp in handoff.plan(old, new, n, {"d"}))}
            assert senders == set(was) - {"d"}


def test_handoff_plan_rejects_rings_of_different_sizes() -> None:
    small = Ring.build([RingMember("a")], partitions=8)
    try:
        handoff.plan(small, ring({"a"}), "a")
    except ValueError as exc:
        assert "partitions" in str(exc)
    else:
        raise AssertionError("accepted rings of 8 and 16 partitions")


@given(st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s),
       st.text(min_size=1, max_size=8), st.sampled_from([8, 64, 1024]))
def test_handoff_storage_partition_is_the_rings_partition(bucket: str, key: str,
                                                          parts: int) -> None:
    k = ObjectKey(bucket, key)
    assert handoff.storage_partition(k.storage_key(), parts) == partition_of(k, parts)
    assert handoff.is_object_key(k.storage_key())
    assert not handoff.is_object_key(handoff.progress_key(3, "x"))


@given(st.integers(0, 1023), st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
       st.one_of(st.none(), st.binary(max_size=20)), st.booleans(), st.booleans())
def test_handoff_progress_record_round_trips(p: int, target: str, acked: bytes | None,
                                             stays: bool, leaving: bool) -> None:
    rec = handoff.ProgressRecord(p, target, acked, stays, leaving=leaving)
    key = handoff.progress_key(p, target)
    assert key.startswith(handoff.PROGRESS_PREFIX)
    assert handoff.decode_progress(key, handoff.encode_progress(rec)) == rec


def test_handoff_progress_record_rejects_what_is_not_one() -> None:
    for key, value in ((b"b\x00k", b"{}"), (handoff.progress_key(1, "x"), b"nope"),
                       (handoff.PROGRESS_PREFIX + b"x\x00t", b'{"acked":null,"stays":1}')):
        try:
            handoff.decode_progress(key, value)
        except ValueError:
            continue
        raise AssertionError(f"accepted {key!r}={value!r}")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ack", "send", "reset"]), st.integers(0, 5)),
                max_size=60))
def test_handoff_progress_never_skips_a_key_and_resends_only_unacked(
        steps: list[tuple[str, int]]) -> None:
    """Keys 0..99 in order; whatever the acks, resets and their order, ``acked`` only
    covers keys of chunks acknowledged with every chunk before them, and a resume
    starts right after it."""
    keys = [b"%03d" % i for i in range(100)]
    t = handoff.TransferProgress()
    seq = 0
    chunks: dict[int, list[bytes]] = {}
    durable: set[bytes] = set()
    sends: dict[bytes, int] = {}
    for op, n in steps:
        if op == "send":
            start = 0 if t.sent_upto is None else keys.index(t.sent_upto) + 1
            batch = keys[start:start + n + 1]
            if not batch:
                continue
            seq += 1
            t.sent(seq, batch[-1], len(batch), len(batch))
            chunks[seq] = batch
            for k in batch:
                sends[k] = sends.get(k, 0) + 1
        elif op == "ack" and chunks:
            target = sorted(chunks)[n % len(chunks)]
            durable.update(chunks[target])
            t.ack(target)
        elif op == "reset":
            t.reset()
            chunks.clear()
        if t.acked is not None:
            covered = keys[:keys.index(t.acked) + 1]
            assert set(covered) <= durable  # never counts a key the target lacks
        assert t.wants(keys[0]) == (t.sent_upto is None)
    # A key acknowledged (as part of the gap-free run) is never wanted again.
    if t.acked is not None:
        assert not t.wants(t.acked)
