"""The put and get state machines (dynago.kv.requests), fed answers by hand: no threads,
no clock, ``now`` passed in."""

from __future__ import annotations

import pytest

from dynago.kv.model import BadRequest, Content, ObjectKey, Quorum
from dynago.kv.requests import (
    GetDone,
    GetFailed,
    GetFsm,
    PutDone,
    PutFailed,
    PutFsm,
    ResolvedQuorum,
    resolve_quorum,
)
from dynago.kv.version import EMPTY, coordinate, is_deleted, merge, siblings

KEY = ObjectKey("default", "k")
NODES = ("a", "b", "c")
ALL = frozenset(NODES)
DEADLINE = 10.0


def put(w: int, pw: int = 0, primaries: frozenset[str] = ALL,
        replicas: tuple[str, ...] = NODES) -> PutFsm:
    return PutFsm(1, KEY, replicas, primaries, w, pw, DEADLINE)


def get(r: int, pr: int = 0, primaries: frozenset[str] = ALL) -> GetFsm:
    return GetFsm(2, KEY, NODES, primaries, r, pr, DEADLINE)


@pytest.mark.parametrize("w", [1, 2, 3])
def test_requests_put_done_after_exactly_w_acks(w: int) -> None:
    fsm = put(w)
    for name in NODES[:w - 1]:
        assert fsm.acked(name, 1.0) is None
    assert fsm.outcome is None
    assert fsm.acked(NODES[w - 1], 2.0) == PutDone(NODES[:w])
    assert fsm.outcome == PutDone(NODES[:w])


def test_requests_put_duplicate_and_foreign_acks_do_not_count() -> None:
    fsm = put(2)
    assert fsm.acked("a", 1.0) is None
    assert fsm.acked("a", 1.5) is None  # the same replica twice
    assert fsm.acked("stranger", 1.5) is None  # not a replica of this key
    assert fsm.outcome is None
    assert fsm.acked("c", 2.0) == PutDone(("a", "c"))


def test_requests_put_nothing_changes_after_the_outcome() -> None:
    fsm = put(1)
    done = fsm.acked("a", 1.0)
    assert fsm.acked("b", 1.1) is None
    assert fsm.failed("c", "disk full", 1.2) is None
    assert fsm.expire(DEADLINE) is None
    assert fsm.outcome == done == PutDone(("a",))


def test_requests_put_fails_early_once_w_is_out_of_reach() -> None:
    fsm = put(2)
    assert fsm.failed("a", "unreachable", 1.0) is None  # b and c may still ack
    outcome = fsm.failed("b", "refused", 1.1)
    assert isinstance(outcome, PutFailed)
    assert (outcome.answered, outcome.needed) == (0, 2)
    assert "unreachable" in outcome.reason and "refused" in outcome.reason
    assert fsm.acked("c", 1.2) is None  # too late to matter


def test_requests_put_timeout_reports_how_many_acked() -> None:
    fsm = put(3)
    fsm.acked("a", 1.0)
    fsm.acked("b", 2.0)
    assert fsm.expire(DEADLINE - 0.001) is None  # the timer fired early: not yet
    outcome = fsm.expire(DEADLINE)
    assert outcome == fsm.outcome
    assert isinstance(outcome, PutFailed) and (outcome.answered, outcome.needed) == (2, 3)
    assert "timed out" in outcome.reason


def test_requests_put_ack_at_the_deadline_finds_it_timed_out() -> None:
    fsm = put(1)
    outcome = fsm.acked("a", DEADLINE)
    assert isinstance(outcome, PutFailed) and outcome.answered == 0


def test_requests_put_pw_counts_primaries_only() -> None:
    fsm = put(2, pw=2, primaries=frozenset({"a", "b"}))  # c is a fallback
    assert fsm.acked("c", 1.0) is None
    assert fsm.acked("a", 1.1) is None  # W=2 reached, but one primary only
    assert fsm.acked("b", 1.2) == PutDone(("c", "a", "b"))


def test_requests_put_pw_fails_early_when_primaries_fail() -> None:
    fsm = put(1, pw=2, primaries=frozenset({"a", "b"}))
    assert fsm.acked("c", 1.0) is None
    outcome = fsm.failed("a", "unreachable", 1.1)
    assert isinstance(outcome, PutFailed)
    assert (outcome.answered, outcome.needed) == (0, 2) and "primary" in outcome.reason


def test_requests_put_impossible_from_the_start() -> None:
    short = put(3, replicas=("a", "b"), primaries=frozenset({"a", "b"}))  # 2 nodes up, W=3
    assert isinstance(short.outcome, PutFailed) and short.outcome.needed == 3
    few_primaries = put(1, pw=2, primaries=frozenset({"a"}))
    assert isinstance(few_primaries.outcome, PutFailed)


def test_requests_put_rejects_misuse() -> None:
    with pytest.raises(ValueError):
        PutFsm(1, KEY, ("a", "a"), frozenset({"a"}), 1, 0, DEADLINE)
    with pytest.raises(ValueError):
        PutFsm(1, KEY, ("a",), frozenset({"z"}), 1, 0, DEADLINE)
    with pytest.raises(ValueError):
        PutFsm(1, KEY, ("a",), frozenset(), 0, 0, DEADLINE)


@pytest.mark.parametrize("r", [1, 2, 3])
def test_requests_get_done_after_exactly_r_replies(r: int) -> None:
    value = coordinate(EMPTY, None, "a", Content(b"v"))
    fsm = get(r)
    for name in NODES[:r - 1]:
        assert fsm.replied(name, value, 1.0) is None
    assert fsm.replied(NODES[r - 1], value, 2.0) == GetDone(value, r)


def test_requests_get_not_found_counts_toward_r() -> None:
    fsm = get(2)
    assert fsm.replied("a", None, 1.0) is None
    outcome = fsm.replied("b", None, 1.1)
    assert isinstance(outcome, GetDone) and outcome.replies == 2
    assert is_deleted(outcome.obj)


def test_requests_get_merges_siblings_from_different_replicas() -> None:
    one = coordinate(EMPTY, None, "a", Content(b"one"))
    two = coordinate(EMPTY, None, "b", Content(b"two"))
    fsm = get(2)
    fsm.replied("a", one, 1.0)
    outcome = fsm.replied("b", two, 1.1)
    assert isinstance(outcome, GetDone)
    assert sorted(s.content.value for s in siblings(outcome.obj)) == [b"one", b"two"]


def test_requests_get_late_replies_kept_for_read_repair() -> None:
    old = coordinate(EMPTY, None, "a", Content(b"old"))
    new = coordinate(old, None, "a", Content(b"new"), overwrite=True)
    fsm = get(2)
    fsm.replied("a", new, 1.0)
    done = fsm.replied("b", new, 1.1)
    assert fsm.complete is False
    assert fsm.replied("c", old, DEADLINE + 5) is None  # late: no second outcome
    assert fsm.outcome == done
    assert fsm.complete is True
    assert fsm.all_replies == {"a": new, "b": new, "c": old}
    assert fsm.merged == merge(new, old) == new
    assert fsm.behind() == ("c",)
    assert fsm.replied("c", new, DEADLINE + 6) is None  # duplicate: ignored
    assert fsm.all_replies["c"] == old


def test_requests_get_not_found_replica_is_behind() -> None:
    value = coordinate(EMPTY, None, "a", Content(b"v"))
    fsm = get(1)
    fsm.replied("a", value, 1.0)
    fsm.replied("b", None, 1.1)
    fsm.failed("c", "unreachable", 1.2)
    assert fsm.complete and fsm.behind() == ("b",)


def test_requests_get_fails_early_and_on_timeout_with_the_count() -> None:
    early = get(2)
    early.failed("a", "unreachable", 1.0)
    outcome = early.failed("b", "unreachable", 1.1)
    assert isinstance(outcome, GetFailed) and (outcome.answered, outcome.needed) == (0, 2)
    slow = get(3)
    slow.replied("a", None, 1.0)
    assert slow.expire(5.0) is None
    timed_out = slow.expire(DEADLINE + 1)
    assert isinstance(timed_out, GetFailed) and (timed_out.answered, timed_out.needed) == (1, 3)
    assert slow.replied("b", None, DEADLINE + 2) is None
    assert slow.outcome == timed_out and "b" in slow.all_replies


def test_requests_get_pr_counts_primaries_only() -> None:
    fsm = get(1, pr=2, primaries=frozenset({"a", "b"}))
    assert fsm.replied("c", None, 1.0) is None  # R=1 met by a fallback only
    assert fsm.replied("a", None, 1.1) is None
    assert isinstance(fsm.replied("b", None, 1.2), GetDone)
    failing = get(1, pr=2, primaries=frozenset({"a", "b"}))
    assert isinstance(failing.failed("b", "down", 1.0), GetFailed)


def test_requests_resolve_quorum_defaults_and_explicit_values() -> None:
    assert resolve_quorum(3, Quorum()) == ResolvedQuorum(r=2, w=2, pr=0, pw=0)
    assert resolve_quorum(5, Quorum()) == ResolvedQuorum(r=3, w=3, pr=0, pw=0)
    assert resolve_quorum(1, Quorum()) == ResolvedQuorum(r=1, w=1, pr=0, pw=0)
    assert resolve_quorum(3, Quorum(r=1, w=3, pr=3, pw=1)) == ResolvedQuorum(1, 3, 3, 1)
    configured = Quorum(r=1, pw=1)
    assert resolve_quorum(3, Quorum(w=3), configured) == ResolvedQuorum(r=1, w=3, pr=0, pw=1)


@pytest.mark.parametrize(("q", "name"), [
    (Quorum(r=0), "r"), (Quorum(r=4), "r"), (Quorum(w=0), "w"), (Quorum(w=-3), "w"),
    (Quorum(pr=4), "pr"), (Quorum(pr=-7), "pr"), (Quorum(pw=9), "pw"),
    (Quorum(r=True), "r"),  # a bool is no count
])
def test_requests_resolve_quorum_bad_values_are_bad_requests(q: Quorum, name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        resolve_quorum(3, q)
    message = str(caught.value)
    assert message.startswith(f"{name} must be") and "3" in message
    assert caught.value.status == 400


def test_requests_resolve_quorum_bad_n_val() -> None:
    with pytest.raises(BadRequest, match="n_val"):
        resolve_quorum(0, Quorum())


def test_resolve_quorum_riak_words() -> None:
    """Riak's ``all`` is N and ``quorum`` is N//2+1, whatever N is."""
    from dynago.kv.model import QUORUM_ALL, QUORUM_MAJORITY

    q = resolve_quorum(5, Quorum(r=QUORUM_ALL, w=QUORUM_MAJORITY, pr=QUORUM_MAJORITY,
                                 pw=QUORUM_ALL))
    assert (q.r, q.w, q.pr, q.pw) == (5, 3, 3, 5)
