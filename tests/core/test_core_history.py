"""core/history.py: the bounded per-member history behind "why is X dead?", and the plain
words of dynago/explain.py for each kind of change."""

from __future__ import annotations

import pytest

from dynago.core import EventKind, Member, MemberEvent, Status
from dynago.core.history import History
from dynago.explain import explain_entry, format_history, tag_changes

B = "127.0.0.1:7002"
B0 = Member("b", B)
B0S = Member("b", B, 0, Status.SUSPECT, "c")
B0F = Member("b", B, 0, Status.FAILED, "a")


def test_history_keeps_changes_oldest_first_with_before_and_after() -> None:
    history = History()
    history.record(MemberEvent(EventKind.JOINED, B0, None, "b"), 100.0)
    history.record(MemberEvent(EventKind.SUSPECTED, B0S, B0, "d"), 105.0)
    entries = history.of("b")
    assert entries is not None
    assert [(e.at, e.kind, e.status, e.status_before, e.reporter, e.origin) for e in entries] == [
        (100.0, EventKind.JOINED, Status.ALIVE, None, "b", ""),
        (105.0, EventKind.SUSPECTED, Status.SUSPECT, Status.ALIVE, "d", "c"),
    ]
    assert history.of("nobody") is None


def test_history_is_bounded_per_member() -> None:
    history = History(per_member=3)
    for i in range(10):
        history.record(MemberEvent(EventKind.CHANGED, Member("b", B, i + 1), Member("b", B, i),
                                   "b"), float(i))
    entries = history.of("b")
    assert entries is not None
    assert [e.incarnation for e in entries] == [8, 9, 10]


def test_history_is_bounded_in_members_forgetting_the_longest_quiet() -> None:
    history = History(max_members=2)
    for t, name in enumerate(["x", "y", "x", "z"]):
        history.record(MemberEvent(EventKind.JOINED, Member(name, B), None, name), float(t))
    assert history.of("y") is None  # y changed least recently
    assert history.of("x") is not None and history.of("z") is not None
    assert len(history) == 2 and history.forgotten_members == 1


def test_history_of_a_failure_this_node_declared_says_how_long_the_suspicion_ran() -> None:
    history = History()
    history.record(MemberEvent(EventKind.JOINED, B0, None, "b"), 100.0)
    history.record(MemberEvent(EventKind.SUSPECTED, B0S, B0, "c"), 101.0)
    entry = history.record(MemberEvent(EventKind.FAILED, B0F, B0S, "self"), 102.5)
    assert entry.detail == "the suspicion ran out after 1.5 s with no refutation"
    assert explain_entry(entry) == (
        "failed (inc 0) — we declared it failed: the suspicion ran out after 1.5 s "
        "with no refutation")


def test_history_rejects_zero_bounds() -> None:
    with pytest.raises(ValueError):
        History(per_member=0)


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (MemberEvent(EventKind.JOINED, B0, None, "c"), "joined (inc 0) — it joined; c told us"),
        (MemberEvent(EventKind.JOINED, B0, None, "b"),
         "joined (inc 0) — it joined; it told us itself"),
        (MemberEvent(EventKind.SUSPECTED, B0S, B0, "d"),
         "suspect (inc 0) — c's probe got no ack; d told us"),
        (MemberEvent(EventKind.SUSPECTED, Member("b", B, 0, Status.SUSPECT, "a"), B0, "self",
                     "our probe got no ack, direct or via 3 helper(s) (0 nacked)"),
         "suspect (inc 0) — our probe got no ack, direct or via 3 helper(s) (0 nacked)"),
        (MemberEvent(EventKind.FAILED, Member("b", B, 0, Status.FAILED, "c"), B0S, "d"),
         "failed (inc 0) — c declared it failed (its suspicion ran out); d told us"),
        (MemberEvent(EventKind.FAILED, Member("b", B, 0, Status.FAILED), B0, "local"),
         "failed (inc 0) — removed on this node by a local call (force-remove)"),
        (MemberEvent(EventKind.LEFT, Member("b", B, 0, Status.LEFT), B0, "b"),
         "left (inc 0) — it announced its leave"),
        (MemberEvent(EventKind.LEFT, Member("b", B, 0, Status.LEFT), B0, "c"),
         "left (inc 0) — it announced its leave; c told us"),
        (MemberEvent(EventKind.CHANGED, Member("b", B, 1), B0S, "b"),
         "alive (inc 1) — it refuted the suspicion; it told us itself"),
        (MemberEvent(EventKind.CHANGED, Member("b", B, 1, tags=(("zone", "b"),)),
                     Member("b", B, 0, tags=(("role", "kv"), ("zone", "a"))), "c"),
         "alive (inc 1) — it changed its tags: +zone=b -role; c told us"),
        (MemberEvent(EventKind.JOINED, Member("b", "127.0.0.1:7009", 1), B0F, "b"),
         "joined (inc 1) — back after it was failed; it told us itself"),
    ],
)
def test_explain_entry_words(event: MemberEvent, words: str) -> None:
    assert explain_entry(History().record(event, 0.0)) == words


def test_tag_changes() -> None:
    assert tag_changes((("a", "1"), ("b", "2")), (("a", "1"), ("b", "3"), ("c", ""))) == \
        "+b=3 +c="
    assert tag_changes((("a", "1"),), ()) == "-a"


def test_format_history_prints_one_line_per_change() -> None:
    text = format_history({
        "name": "b", "observer": "a",
        "current": {"address": B, "status": "failed", "incarnation": 0, "tags": {}},
        "history": [{"at": "2024-05-01T12:00:03.120Z", "explanation": "suspect (inc 0) — x"}],
    })
    assert text.splitlines()[0] == f"b ({B}) as seen by a: failed, incarnation 0"
    assert text.splitlines()[-1] == "  12:00:03.120  suspect (inc 0) — x"
