"""Which members hold the ring (kv/members.py): records by the membership's precedence,
the grace time of a failed member, and this node always in."""

from __future__ import annotations

from dynago.core.member import Member, Status
from dynago.core.messages import EventKind, MemberEvent
from dynago.kv.members import RingKeeper


def keeper() -> RingKeeper:
    return RingKeeper("a", partitions=64, n_val=3, grace_s=100.0)


def names(k: RingKeeper) -> list[str]:
    return [m.name for m in k.ring.members]


def event(name: str, incarnation: int, status: Status, tags: tuple = ()) -> MemberEvent:
    member = Member(name, f"{name}:1", incarnation, status, "", tags)
    return MemberEvent(EventKind.CHANGED, member, None)


def test_members_snapshot_and_events_in_any_order_keep_the_greatest_record() -> None:
    k = keeper()
    k.changed(event("b", 2, Status.ALIVE), now=0.0)
    k.seen([("b", 1, "failed", ()), ("c", 1, "alive", ())], now=0.0)  # older: ignored for b
    assert k.status("b") == "alive" and k.status("c") == "alive"
    assert k.rebuild(now=0.0) and names(k) == ["a", "b", "c"]
    assert not k.rebuild(now=1.0), "same members: the ring is not rebuilt"


def test_members_a_temporary_failure_does_not_move_data() -> None:
    k = keeper()
    k.seen([("b", 1, "alive", ()), ("c", 1, "alive", ())], now=0.0)
    k.rebuild(now=0.0)
    k.changed(event("c", 1, Status.FAILED), now=10.0)
    assert not k.rebuild(now=50.0) and "c" in names(k)
    assert not k.reachable("c")
    assert k.next_check_in(now=50.0) is not None and 59 < k.next_check_in(now=50.0) <= 61
    assert k.rebuild(now=110.1) and names(k) == ["a", "b"], "failed past the grace: out"


def test_members_left_is_out_at_once_and_a_refutation_brings_it_back() -> None:
    k = keeper()
    k.seen([("b", 1, "alive", ())], now=0.0)
    k.rebuild(now=0.0)
    k.changed(event("b", 1, Status.LEFT), now=1.0)
    assert k.rebuild(now=1.0) and names(k) == ["a"]
    k.changed(event("b", 2, Status.ALIVE), now=2.0)  # it came back (restart)
    assert k.rebuild(now=2.0) and names(k) == ["a", "b"]


def test_members_this_node_is_always_in_and_zones_come_from_tags() -> None:
    k = keeper()
    k.seen([("a", 5, "failed", ()), ("b", 1, "alive", (("zone", "eu-1"),))], now=0.0)
    k.rebuild(now=0.0)
    assert k.status("a") == "alive" and "a" in names(k)
    assert {m.name: m.zone for m in k.ring.members}["b"] == "eu-1"


def test_members_remembered_after_a_restart_hold_their_partitions_until_heard_of() -> None:
    """The members of the ring before a restart are back in it at once, as failed (so
    they keep their partitions and count as unreachable); any real record wins."""
    k = keeper()
    k.remember([("b", None), ("c", "eu-1"), ("a", None)], now=5.0)
    assert names(k) == ["a", "b", "c"]
    assert not k.reachable("b") and k.status("c") == "failed"
    k.changed(event("b", 0, Status.ALIVE), now=6.0)
    assert k.reachable("b")
    assert k.rebuild(now=5.0 + 100.1) and names(k) == ["a", "b"], "c never came back"
