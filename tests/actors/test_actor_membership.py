"""The real MembershipActor, driven only by the messages a test gives it.

The actor runs on its own pykka thread; the transport is a FakeTransport, time is a
ManualClock that moves only inside ``scheduler.advance``. User commands go through
dynago.actors.api (asks with a timeout); the private messages a transport or a peer actor
would send (``PeerMessage``, ``StreamOpened``) are told directly. Fixtures: conftest.py.
"""

from __future__ import annotations

import pykka
import pytest

from dynago.actors import api
from dynago.actors.messages import Add, MemberView, Merge, PeerMessage, Remove
from dynago.core import EventKind, Gossip, Member, MemberEvent, StateSync, Status

A = "127.0.0.1:7001"
C = "127.0.0.1:7003"
D = "127.0.0.1:7004"
TIMEOUT_S = 5.0


def names(views: tuple[MemberView, ...]) -> set[str]:
    return {view.name for view in views}


def view_of(ref: pykka.ActorRef, name: str) -> MemberView:
    (view,) = [v for v in api.snapshot(ref, timeout_s=TIMEOUT_S) if v.name == name]
    return view


# --------------------------------------------------------------------------- snapshot


def test_a_fresh_actor_knows_only_itself(membership, me, clock):
    assert api.snapshot(membership, timeout_s=TIMEOUT_S) == (
        MemberView(me.name, me.address, "alive", 0, since=clock.wall()),
    )


def test_since_is_the_wall_time_this_node_saw_the_change(membership, scheduler, clock):
    scheduler.advance(7.5)

    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)

    assert view_of(membership, "a").since == clock.wall()


# --------------------------------------------------------------------------- add and merge


def test_add_of_a_valid_member_shows_in_the_snapshot_and_is_published(membership, me, events):
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)

    assert names(api.snapshot(membership, timeout_s=TIMEOUT_S)) == {me.name, "a"}
    # Subscribers run on the actor's thread before the ask is answered: no waiting needed.
    assert [(e.kind, e.member) for e in events.events] == [(EventKind.JOINED, Member("a", A))]


def test_add_of_an_invalid_member_raises_and_changes_nothing(membership, events):
    before = api.snapshot(membership, timeout_s=TIMEOUT_S)

    with pytest.raises(ValueError, match="invalid address"):
        api.add(membership, Member("a", "no-port-here"), timeout_s=TIMEOUT_S)

    assert api.snapshot(membership, timeout_s=TIMEOUT_S) == before
    assert events.events == []
    assert membership.is_alive()


def test_merge_with_one_invalid_record_raises_and_changes_nothing(membership, events):
    before = api.snapshot(membership, timeout_s=TIMEOUT_S)
    batch = [Member("a", A), Member("c", C), Member("bad name", D)]

    with pytest.raises(ValueError, match="whitespace"):
        api.merge(membership, batch, timeout_s=TIMEOUT_S)

    assert api.snapshot(membership, timeout_s=TIMEOUT_S) == before
    assert events.events == []


def test_merge_of_a_valid_batch_applies_every_record(membership, me, events):
    api.merge(
        membership,
        [Member("a", A), Member("c", C, 3), Member("d", D, 1, Status.SUSPECT)],
        timeout_s=TIMEOUT_S,
    )

    views = {v.name: v for v in api.snapshot(membership, timeout_s=TIMEOUT_S)}
    assert set(views) == {me.name, "a", "c", "d"}
    assert (views["c"].status, views["c"].incarnation) == ("alive", 3)
    assert (views["d"].status, views["d"].incarnation) == ("suspect", 1)
    assert {e.member.name for e in events.events if e.kind is EventKind.JOINED} == {"a", "c", "d"}


# --------------------------------------------------------------------------- remove


def test_remove_declares_the_member_failed(membership, events):
    api.add(membership, Member("a", A, 2), timeout_s=TIMEOUT_S)

    api.remove(membership, "a", timeout_s=TIMEOUT_S)

    view = view_of(membership, "a")
    assert (view.status, view.incarnation) == ("failed", 2)
    assert [e.kind for e in events.about("a")] == [EventKind.JOINED, EventKind.FAILED]
    assert "a" not in names(api.snapshot(membership, live_only=True, timeout_s=TIMEOUT_S))


def test_remove_of_an_unknown_name_raises_key_error(membership):
    with pytest.raises(KeyError, match="nobody"):
        api.remove(membership, "nobody", timeout_s=TIMEOUT_S)
    assert membership.is_alive()


def test_remove_of_itself_raises_value_error(membership, me):
    with pytest.raises(ValueError, match="leave"):
        api.remove(membership, me.name, timeout_s=TIMEOUT_S)
    assert view_of(membership, me.name).status == "alive"


# --------------------------------------------------------------------------- peer messages


def test_a_suspicion_about_itself_is_refuted(membership, me, events, eventually):
    suspicion = Member(me.name, me.address, 0, Status.SUSPECT, origin="a")

    # What a PeerActor tells the membership actor when its stream delivers a gossip.
    membership.tell(PeerMessage("a", A, Gossip((suspicion,))))

    def refuted() -> MemberView:
        view = view_of(membership, me.name)
        assert (view.status, view.incarnation) == ("alive", 1)
        return view

    eventually(refuted)
    (event,) = events.about(me.name)
    assert event.kind is EventKind.CHANGED
    assert event.member == Member(me.name, me.address, 1, Status.ALIVE)
    assert event.previous == me
    assert api.stats(membership, timeout_s=TIMEOUT_S)["refutations"] == 1


def test_local_health_watcher_is_told_when_a_suspicion_of_itself_raises_it(
        membership, me, eventually):
    told: list[int] = []
    api.watch_local_health(membership, told.append)
    eventually(lambda: told == [0])
    # Being suspected hints that this node is the slow one (Lifeguard): the score rises.
    membership.tell(PeerMessage("a", A, Gossip((Member(me.name, me.address, 0,
                                                       Status.SUSPECT, origin="a"),))))
    eventually(lambda: told == [0, 1])
    assert api.stats(membership, timeout_s=TIMEOUT_S)["local_health_score"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        Member("", "127.0.0.1:7009"),
        Member("two words", "127.0.0.1:7009"),
        Member("x", "no-port-here"),
        Member("x", "127.0.0.1:0"),
    ],
    ids=["empty-name", "name-with-space", "address-without-port", "port-zero"],
)
def test_an_invalid_record_from_a_peer_is_dropped_and_counted(membership, me, bad):
    good = Member("d", D)

    membership.tell(PeerMessage("a", A, Gossip((bad, good))))

    # Handled in order: this ask is answered after the gossip above was handled.
    stats = api.stats(membership, timeout_s=TIMEOUT_S)
    assert stats["invalid_records"] == 1
    assert stats["handler_errors"] == 0
    assert names(api.snapshot(membership, timeout_s=TIMEOUT_S)) == {me.name, "d"}
    assert membership.is_alive()


# --------------------------------------------------------------------------- time and dials


def test_a_gossip_round_dials_the_peers_and_sends_the_queued_records(
    membership, me, transport, scheduler, config, eventually
):
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    api.add(membership, Member("c", C), timeout_s=TIMEOUT_S)
    assert transport.dials == []  # nothing happens until time moves

    scheduler.advance(config.gossip_interval_s * 1.5, step_s=config.tick_interval_s)

    # One PeerActor per peer, each dialling its peer and expecting that peer's name.
    eventually(lambda: sorted(transport.dials) == [(A, "a"), (C, "c")])
    assert api.stats(membership, timeout_s=TIMEOUT_S)["peer_actors"] == 2

    remote_a = transport.connect(transport.dial_index("a"), "a", A)

    # The gossip waited in a's PeerActor until the stream came up.
    gossip = eventually(lambda: remote_a.received_of(Gossip))[0]
    assert set(gossip.updates) == {me, Member("a", A), Member("c", C)}


def test_a_node_joins_through_its_seed(
    start_membership, me, transport, scheduler, config, eventually
):
    seed_address = "127.0.0.1:7001"
    membership = start_membership(seeds=(seed_address,))
    assert transport.dials == []

    scheduler.advance(config.tick_interval_s)

    # A seed is dialled by address: its name is only learnt from the handshake.
    eventually(lambda: transport.dials == [(seed_address, None)])
    seed = transport.connect(0, "a", seed_address)

    # The joiner pushes its full list and asks for the seed's (push-pull).
    syncs = eventually(lambda: seed.received_of(StateSync))
    assert syncs[-1].last and syncs[-1].reply_wanted
    assert me in syncs[-1].members

    seed.send(StateSync((Member("a", seed_address), Member("c", C)), reply_wanted=False, last=True))

    eventually(lambda: names(api.snapshot(membership, timeout_s=TIMEOUT_S)) == {"a", "c", me.name})


def test_a_seed_is_retried_until_the_first_exchange_completes(
    start_membership, transport, scheduler, config, eventually
):
    seed_address = "127.0.0.1:7001"
    tick = config.tick_interval_s
    membership = start_membership(seeds=(seed_address,))
    scheduler.advance(tick)
    eventually(lambda: transport.dials)

    transport.fail(0)

    eventually(lambda: api.stats(membership, timeout_s=TIMEOUT_S)["seed_dial_failures"] == 1)
    scheduler.advance(config.reconnect_max_backoff_s, step_s=tick)
    eventually(lambda: len(transport.dials) >= 2)
    assert set(transport.dials) == {(seed_address, None)}

    seed = transport.connect(transport.dial_index(None), "a", seed_address)
    eventually(lambda: seed.received_of(StateSync))
    seed.send(StateSync((Member("a", seed_address),), reply_wanted=False, last=True))
    eventually(lambda: "a" in names(api.snapshot(membership, timeout_s=TIMEOUT_S)))


def test_the_stream_to_a_member_that_left_is_closed(membership, transport, events, eventually):
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    api.add(membership, Member("c", C), timeout_s=TIMEOUT_S)
    remote_a = transport.accept("a", A)

    # c passes on the news that a left.
    membership.tell(PeerMessage("c", C, Gossip((Member("a", A, 0, Status.LEFT),))))

    eventually(lambda: remote_a.closed)  # a's PeerActor stopped: no more redials
    assert api.stats(membership, timeout_s=TIMEOUT_S)["peer_actors"] == 0
    assert [e.kind for e in events.about("a")] == [EventKind.JOINED, EventKind.LEFT]


def test_a_member_that_announced_its_leave_is_not_dialled_again(
    membership, transport, scheduler, config, eventually
):
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    remote_a = transport.accept("a", A)

    # a's own leave notice, as its MembershipCore.leave sends it to every live member.
    membership.tell(PeerMessage("a", A, Gossip((Member("a", A, 0, Status.LEFT),))))
    eventually(lambda: remote_a.closed)
    scheduler.advance(2 * config.reconnect_max_backoff_s, step_s=config.tick_interval_s)

    assert api.stats(membership, timeout_s=TIMEOUT_S)["peer_actors"] == 0
    assert transport.dials == []


def test_a_member_that_moved_is_redialled_at_its_new_address(
    membership, transport, scheduler, config, eventually
):
    moved_to = "127.0.0.1:7101"
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    scheduler.advance(config.gossip_interval_s * 1.5, step_s=config.tick_interval_s)
    eventually(lambda: transport.dials == [(A, "a")])
    transport.fail(0)
    eventually(lambda: scheduler.delays)  # a's PeerActor set its redial timer

    # a restarted elsewhere: its new life has a higher incarnation and another address.
    membership.tell(PeerMessage("c", C, Gossip((Member("a", moved_to, 1),))))
    api.stats(membership, timeout_s=TIMEOUT_S)  # handled, so a's PeerActor was told
    scheduler.advance(config.reconnect_max_backoff_s)

    eventually(lambda: transport.dials == [(A, "a"), (moved_to, "a")])


# --------------------------------------------------------------------------- leave


def test_leave_is_written_to_a_connected_peer(membership, me, transport, events):
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    remote_a = transport.accept("a", A)  # node a dialled us

    assert api.leave(membership, timeout_s=1) is True

    # True means the notice was written to a's stream; a memory stream delivers at once.
    left = Member(me.name, me.address, 0, Status.LEFT)
    assert Gossip((left,)) in remote_a.received_of(Gossip)
    assert view_of(membership, me.name).status == "left"
    assert [e.kind for e in events.about(me.name)] == [EventKind.LEFT]


# --------------------------------------------------------------------------- subscribers


def test_a_subscriber_that_raises_is_dropped_and_the_actor_survives(membership, events):
    calls = []

    def broken(event):
        calls.append(event)
        raise RuntimeError("bug in a subscriber")

    api.subscribe(membership, broken, timeout_s=TIMEOUT_S)

    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    api.add(membership, Member("c", C), timeout_s=TIMEOUT_S)

    assert [e.member.name for e in calls] == ["a"]  # called once, then unsubscribed
    assert [e.member.name for e in events.events] == ["a", "c"]  # others unaffected
    assert membership.is_alive()


def test_an_unsubscribed_callable_gets_nothing_more(membership):
    seen = []
    token = api.subscribe(membership, seen.append, timeout_s=TIMEOUT_S)
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)

    api.unsubscribe(membership, token, timeout_s=TIMEOUT_S)
    api.add(membership, Member("c", C), timeout_s=TIMEOUT_S)

    assert [e.member.name for e in seen] == ["a"]


class EventSink(pykka.ThreadingActor):
    """An actor of the application that wants membership events: they arrive as messages."""

    def __init__(self) -> None:
        super().__init__()
        self.events = []

    def on_receive(self, message):
        if isinstance(message, MemberEvent):
            self.events.append(message)


def test_an_actor_can_subscribe(membership, eventually):
    sink = EventSink.start()
    api.subscribe(membership, sink, timeout_s=TIMEOUT_S)

    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)

    # The event was told to the sink; read its state through a proxy (an ask, bounded).
    joined = eventually(lambda: sink.proxy().events.get(timeout=TIMEOUT_S))
    assert [(e.kind, e.member.name) for e in joined] == [(EventKind.JOINED, "a")]


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "command",
    [Add(Member("a", "no-port-here")), Merge((Member("", A),)), Remove("nobody")],
    ids=["add-invalid", "merge-invalid", "remove-unknown"],
)
def test_a_failing_command_that_is_told_does_not_stop_the_actor(membership, me, command):
    membership.tell(command)

    assert names(api.snapshot(membership, timeout_s=TIMEOUT_S)) == {me.name}
