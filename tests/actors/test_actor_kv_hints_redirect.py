"""HintActor: hints held for an owner that is out of the ring (it left, or failed past
the grace time) go to the key's owners in the current ring instead, and are deleted only
once every one of them holds them durably."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from test_actor_kv import ME, Reply, Sent, eventually, view  # tests/actors is on sys.path
from test_actor_kv_hints import OWNER, obj_bytes, stored

from dynago.actors.kv_hints import GetHintStats, HintActor
from dynago.actors.kv_messages import MembersSeen
from dynago.actors.messages import MemberView, PeerMessage
from dynago.actors.storage import StorageActor
from dynago.actors.storage_messages import History, Update
from dynago.actors.timers import ManualScheduler
from dynago.clock import ManualClock
from dynago.kv import version
from dynago.kv.config import KvConfig
from dynago.kv.fallback import hint_key
from dynago.kv.messages import ReplicaPut, ReplicaPutAck
from dynago.kv.model import ObjectKey
from dynago.kv.ring import Ring, RingMember
from dynago.storage import MemoryEngine

KEY = ObjectKey("b", "k")
NEW_OWNERS = ("n1", "n3")
"""With ME, the ring after OWNER went: three members, N = 3, so every key's preference
list is ME and these two."""


@pytest.fixture
def redirect() -> Iterator[dict[str, Any]]:
    clock = ManualClock()
    scheduler = ManualScheduler(clock)
    sent = Sent()
    storage = StorageActor.start(MemoryEngine())
    ring = [Ring.build([RingMember(n) for n in (ME, OWNER, *NEW_OWNERS)], partitions=64,
                       n_val=3)]
    kv_config = KvConfig(request_timeout_s=2.0, hint_handoff_per_s=100.0,
                         hint_handoff_in_flight=8, hint_retry_s=3.0, hint_check_interval_s=1.0)
    hints = HintActor.start(name=ME, kv_config=kv_config, storage=storage, peers=sent,
                            clock=clock, scheduler=scheduler, partitions=64, n_val=3,
                            ring=lambda: ring[0])
    done = Reply()
    storage.tell(Update(hint_key(OWNER, KEY.storage_key()), lambda _c: obj_bytes(b"v"),
                        reply=done, on_error=done))
    done.get()
    yield {"hints": hints, "sent": sent, "scheduler": scheduler, "storage": storage,
           "ring": ring}
    pykka.ActorRegistry.stop_all(timeout=5)


def stats(h: dict[str, Any]) -> dict[str, int]:
    result: dict[str, int] = h["hints"].ask(GetHintStats())
    return result


def owner_gone(h: dict[str, Any], status: str, *new_owner_status: str) -> None:
    """OWNER now has ``status`` and is out of the ring; the new owners have the statuses
    given (alive by default)."""
    h["ring"][0] = Ring.build([RingMember(n) for n in (ME, *NEW_OWNERS)], partitions=64,
                              n_val=3)
    states = new_owner_status or ("alive",) * len(NEW_OWNERS)
    h["hints"].tell(MembersSeen((view(ME), view(OWNER, status),
                                 *(view(n, s) for n, s in zip(NEW_OWNERS, states, strict=True)))))


def test_hint_of_a_left_owner_goes_to_the_new_owners_and_is_deleted_after_all_acked(
        redirect: dict[str, Any]) -> None:
    h = redirect
    eventually(lambda: stats(h)["kv_hints_held"] == 1, "held")
    owner_gone(h, "left")
    puts = eventually(lambda: len(h["sent"].of(ReplicaPut)) == 2 and h["sent"].of(ReplicaPut),
                      "sent to both other new owners")
    assert sorted(node for node, _ in puts) == sorted(NEW_OWNERS)
    assert all(m.origin == "hint redirected" and m.key == KEY and not m.hint_for
               for _, m in puts)
    # This node is one of the new owners: the hint is merged into its own copy.
    own = eventually(lambda: stored(h["storage"], KEY.storage_key()), "own copy")
    assert version.siblings(version.decode(own))[0].content.value == b"v"
    (node, first), (other, second) = puts
    h["hints"].tell(PeerMessage(node, "", ReplicaPutAck(first.request_id, True), None))
    h["hints"].tell(PeerMessage(OWNER, "", ReplicaPutAck(second.request_id, True), None))
    eventually(lambda: stats(h)["kv_hint_acks_dropped"] == 1, "an ack from a non-target")
    assert stats(h)["kv_hints_held"] == 1  # one new owner has not acknowledged yet
    assert stored(h["storage"], hint_key(OWNER, KEY.storage_key())) is not None
    h["hints"].tell(PeerMessage(other, "", ReplicaPutAck(second.request_id, True), None))
    eventually(lambda: stats(h)["kv_hints_held"] == 0, "hint deleted")
    assert stored(h["storage"], hint_key(OWNER, KEY.storage_key())) is None
    assert stats(h)["kv_hints_redirected"] == 1
    history = Reply()
    h["storage"].tell(History(KEY.storage_key(), reply=history))
    assert any(entry.how == "hint redirected" for entry in history.get())


def test_hint_of_a_gone_owner_waits_while_a_new_owner_is_down(
        redirect: dict[str, Any]) -> None:
    h = redirect
    eventually(lambda: stats(h)["kv_hints_held"] == 1, "held")
    owner_gone(h, "failed", "alive", "failed")
    h["scheduler"].advance(1.5)  # a periodic check: still nothing to do
    eventually(lambda: stats(h)["kv_hints_held"] == 1, "still held")
    assert not h["sent"].of(ReplicaPut)
    h["hints"].tell(MembersSeen((MemberView("n3", "n3:1", "alive", 2, 0.0),)))  # it is back
    eventually(lambda: len(h["sent"].of(ReplicaPut)) == 2, "sent once all are alive")


def test_hint_of_a_failed_owner_still_in_the_ring_stays_for_it(
        redirect: dict[str, Any]) -> None:
    h = redirect
    eventually(lambda: stats(h)["kv_hints_held"] == 1, "held")
    # Failed within the grace time: still in the ring, so the hint waits for the owner.
    h["hints"].tell(MembersSeen((view(ME), view(OWNER, "failed"),
                                 *(view(n) for n in NEW_OWNERS))))
    h["scheduler"].advance(1.5)
    eventually(lambda: stats(h)["kv_hints_held"] == 1, "still held")
    assert not h["sent"].of(ReplicaPut)
    assert stats(h)["kv_hints_redirected"] == 0
