"""Event subscriptions, tags and history through the real MembershipActor (dynago.actors.api,
dynago.actors.events), with a FakeTransport and manual time: exact event sequences.

Fixtures: conftest.py. ``Config.local()``: probe period 0.3 s, suspicion timeout at
least 1.2 s, so a member that never answers is failed well within 5 s of manual time.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from dynago.actors import api
from dynago.actors.events import EventQueue
from dynago.actors.messages import PeerMessage
from dynago.config import Config
from dynago.core import EventKind, Gossip, Member, MemberEvent, Status
from dynago.core.tags import TagError

A = "127.0.0.1:7001"
B = "127.0.0.1:7002"
C = "127.0.0.1:7003"
TIMEOUT_S = 5.0
KV = (("role", "kv"), ("zone", "a"))


def run_for(seconds: float, scheduler: Any, config: Config, ref: pykka.ActorRef[Any]) -> None:
    """Advance manual time one tick at a time; the actor handles each tick before the next
    (an ask from this thread is answered after the tick told from this thread)."""
    for _ in range(round(seconds / config.tick_interval_s)):
        scheduler.advance(config.tick_interval_s)
        api.stats(ref, timeout_s=TIMEOUT_S)


class Collector(pykka.ThreadingActor):
    """An actor subscriber: keeps every MemberEvent it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[MemberEvent] = []
        self.lock = threading.Lock()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, MemberEvent):
            with self.lock:
                self.events.append(message)
        elif message == "get":
            with self.lock:
                return list(self.events)
        return None


def _life_of_a_and_b(membership: Any, scheduler: Any, config: Config) -> None:
    """a joins (added locally) and never answers a probe: suspect, then failed; b joins
    by gossip from c, then announces its leave itself."""
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    run_for(5.0, scheduler, config, membership)
    membership.tell(PeerMessage("c", C, Gossip((Member("b", B),))))
    membership.tell(PeerMessage("b", B, Gossip((Member("b", B, 0, Status.LEFT),))))
    api.stats(membership, timeout_s=TIMEOUT_S)


def test_callback_subscriber_gets_joined_suspected_failed_left_in_order(
    membership, scheduler, config, events
):
    """api.subscribe: a callable gets every event, in order, with who brought it."""
    _life_of_a_and_b(membership, scheduler, config)

    seen = [(e.kind, e.member.name, e.reporter) for e in events.events]
    assert seen == [
        (EventKind.JOINED, "a", "local"),
        (EventKind.SUSPECTED, "a", "self"),
        (EventKind.FAILED, "a", "self"),
        (EventKind.JOINED, "b", "c"),
        (EventKind.LEFT, "b", "b"),
    ]
    suspected = events.events[1]
    assert suspected.member.origin == "me" and suspected.previous == Member("a", A)
    assert suspected.detail.startswith("our probe got no ack")


def test_actor_subscriber_is_told_the_same_events(membership, scheduler, config, eventually):
    """api.subscribe with an ActorRef: the actor is told each MemberEvent."""
    collector = Collector.start()
    api.subscribe(membership, collector, timeout_s=TIMEOUT_S)

    _life_of_a_and_b(membership, scheduler, config)

    def kinds() -> list[tuple[EventKind, str]]:
        got = collector.ask("get", timeout=TIMEOUT_S)
        return [(e.kind, e.member.name) for e in got]

    eventually(lambda: len(kinds()) == 5)
    assert kinds() == [(EventKind.JOINED, "a"), (EventKind.SUSPECTED, "a"),
                       (EventKind.FAILED, "a"), (EventKind.JOINED, "b"), (EventKind.LEFT, "b")]


def test_subscribe_to_chosen_kinds_only(membership, scheduler, config):
    got: list[MemberEvent] = []
    api.subscribe(membership, got.append, kinds=[EventKind.FAILED, EventKind.LEFT],
                  timeout_s=TIMEOUT_S)

    _life_of_a_and_b(membership, scheduler, config)

    assert [(e.kind, e.member.name) for e in got] == [(EventKind.FAILED, "a"),
                                                      (EventKind.LEFT, "b")]


def test_subscribe_with_a_non_kind_raises(membership):
    with pytest.raises(TypeError):
        api.subscribe(membership, print, kinds=["failed"], timeout_s=TIMEOUT_S)  # type: ignore[list-item]


def test_unsubscribe_stops_the_events(membership):
    got: list[MemberEvent] = []
    token = api.subscribe(membership, got.append, timeout_s=TIMEOUT_S)
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    api.unsubscribe(membership, token, timeout_s=TIMEOUT_S)
    api.add(membership, Member("b", B), timeout_s=TIMEOUT_S)
    assert [e.member.name for e in got] == ["a"]


def test_subscribe_with_snapshot_misses_nothing_and_repeats_nothing(membership):
    """The snapshot is taken in the same turn as the subscription: what is in it is not
    sent again, and every later change comes as an event."""
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    got: list[MemberEvent] = []
    _token, snapshot = api.subscribe_with_snapshot(membership, got.append, timeout_s=TIMEOUT_S)
    api.add(membership, Member("b", B), timeout_s=TIMEOUT_S)

    assert [view.name for view in snapshot] == ["a", "me"]
    assert [(e.kind, e.member.name) for e in got] == [(EventKind.JOINED, "b")]


def test_event_queue_overflow_drops_the_consumer_not_the_node(membership):
    """actors/events.py: a consumer ``capacity`` events behind is marked overflowed; the
    node goes on at full speed and its later events are not queued."""
    with EventQueue.subscribe(membership, capacity=2) as (queue, _snapshot):
        for port in range(7001, 7006):
            api.add(membership, Member(f"p{port}", f"127.0.0.1:{port}"), timeout_s=TIMEOUT_S)
        assert queue.overflowed
        names = [event.member.name for _at, event in queue.iter(timeout_s=0)]
    assert names == []  # iter stops at once on an overflowed queue
    assert len(api.snapshot(membership, timeout_s=TIMEOUT_S)) == 6
    assert membership.is_alive()


def test_event_queue_hands_events_with_their_time(membership, clock):
    with EventQueue.subscribe(membership, capacity=8) as (queue, _snapshot):
        api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
        item = queue.get(timeout_s=TIMEOUT_S)
    assert item is not None
    at, event = item
    assert event.member.name == "a" and at > 0


# --------------------------------------------------------------------------- tags


def test_set_tags_changes_the_own_record_and_publishes_changed(membership, events):
    api.set_tags(membership, {"zone": "a", "role": "kv"}, timeout_s=TIMEOUT_S)

    (me,) = [v for v in api.snapshot(membership, timeout_s=TIMEOUT_S) if v.name == "me"]
    assert (me.tags, me.incarnation) == (KV, 1)
    assert [(e.kind, e.member.name, e.reporter) for e in events.events] == [
        (EventKind.CHANGED, "me", "local")]


def test_update_tags_patches_in_one_step(membership):
    api.set_tags(membership, KV, timeout_s=TIMEOUT_S)
    tags = api.update_tags(membership, {"zone": "b", "role": None}, timeout_s=TIMEOUT_S)
    assert tags == (("zone", "b"),)


@pytest.mark.parametrize("bad", [{"a b": "x"}, {"k": "v" * 600}])
def test_bad_tags_raise_and_change_nothing(membership, events, bad):
    before = api.snapshot(membership, timeout_s=TIMEOUT_S)
    with pytest.raises(TagError):
        api.set_tags(membership, bad, timeout_s=TIMEOUT_S)
    with pytest.raises(ValueError):
        api.update_tags(membership, bad, timeout_s=TIMEOUT_S)
    assert api.snapshot(membership, timeout_s=TIMEOUT_S) == before
    assert events.events == []
    assert membership.is_alive()


# --------------------------------------------------------------------------- history


def test_history_names_who_reported_each_change(membership, scheduler, config, clock):
    started = clock.wall()
    _life_of_a_and_b(membership, scheduler, config)

    a = api.history(membership, "a", timeout_s=TIMEOUT_S)
    assert [(e.kind, e.status, e.reporter) for e in a] == [
        (EventKind.JOINED, Status.ALIVE, "local"),
        (EventKind.SUSPECTED, Status.SUSPECT, "self"),
        (EventKind.FAILED, Status.FAILED, "self"),
    ]
    assert a[1].status_before is Status.ALIVE and a[1].origin == "me"
    assert started <= a[0].at <= a[1].at <= a[2].at <= clock.wall()
    assert a[2].detail.startswith("the suspicion ran out after")
    b = api.history(membership, "b", timeout_s=TIMEOUT_S)
    assert [(e.kind, e.reporter) for e in b] == [(EventKind.JOINED, "c"), (EventKind.LEFT, "b")]


def test_history_of_this_node_starts_with_its_start(membership):
    (entry,) = api.history(membership, "me", timeout_s=TIMEOUT_S)
    assert (entry.kind, entry.reporter, entry.detail) == (
        EventKind.JOINED, "self", "this node started")


def test_history_of_an_unknown_member_raises_key_error(membership):
    with pytest.raises(KeyError):
        api.history(membership, "nobody", timeout_s=TIMEOUT_S)
    assert membership.is_alive()
