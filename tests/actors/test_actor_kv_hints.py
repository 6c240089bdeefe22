"""Hinted handoff with real actors and a fake peer link: the fallback's durable hint, the
coordinator's sloppy quorum (W counts fallbacks, PW does not), and the HintActor's
hand-back (rate, conditional delete, retry from where it stopped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from test_actor_kv import (  # tests/actors is on sys.path under pytest
    ME,
    Reply,
    Sent,
    eventually,
    key_where,
    members,
    routed,
    view,
)

from dynago.actors.kv import KvActor
from dynago.actors.kv_hints import GetHintStats, HintActor
from dynago.actors.kv_messages import (
    ClientGet,
    ClientPut,
    GetKvStats,
    LocalHealth,
    MembersSeen,
)
from dynago.actors.messages import PeerMessage
from dynago.actors.storage import StorageActor
from dynago.actors.storage_messages import History, Read, Update
from dynago.actors.timers import ManualScheduler
from dynago.clock import ManualClock
from dynago.config import Config
from dynago.kv import version
from dynago.kv.config import KvConfig
from dynago.kv.fallback import HINT_REQUEST_BASE, for_partition, hint_key
from dynago.kv.messages import ReplicaGet, ReplicaGetReply, ReplicaPut, ReplicaPutAck
from dynago.kv.model import Content, GetReply, ObjectKey, PutReply, Quorum, Unavailable
from dynago.kv.ring import partition_of
from dynago.storage import MemoryEngine, open_engine

OWNER = "n2"


def obj_bytes(value: bytes, replica: str = "n9") -> bytes:
    return version.encode(version.coordinate(version.EMPTY, None, replica, Content(value)))


def stored(storage: pykka.ActorRef[Any], key: bytes) -> bytes | None:
    reply = Reply()
    storage.tell(Read(key, reply=reply))
    result: bytes | None = eventually(lambda: reply.results, "a read")[0]
    return result


@pytest.fixture
def kv_harness() -> Iterator[dict[str, Any]]:
    clock = ManualClock()
    scheduler = ManualScheduler(clock)
    sent = Sent()
    storage = StorageActor.start(MemoryEngine())
    config = Config.local()
    kv = KvActor.start(name=ME, config=config, kv_config=KvConfig(request_timeout_s=2.0),
                       storage=storage, peers=sent, clock=clock, scheduler=scheduler)
    yield {"kv": kv, "sent": sent, "scheduler": scheduler, "storage": storage,
           "config": config}
    pykka.ActorRegistry.stop_all(timeout=5)


# ------------------------------------------------------------------ the fallback's side

def test_hint_put_is_kept_durably_as_a_hint_then_acked(tmp_path: Path) -> None:
    clock = ManualClock()
    scheduler = ManualScheduler(clock)
    sent = Sent()
    engine = open_engine("sqlite", str(tmp_path))
    storage = StorageActor.start(engine)
    kv = KvActor.start(name=ME, config=Config.local(), kv_config=KvConfig(), storage=storage,
                       peers=sent, clock=clock, scheduler=scheduler)
    key = ObjectKey("b", "k")
    data = obj_bytes(b"v1")
    try:
        routed({"kv": kv}, "n1", ReplicaPut(7, key, data, hint_for=OWNER)).wait(5)
        acks = eventually(lambda: sent.of(ReplicaPutAck), "the hint's ack")
        assert acks == [("n1", ReplicaPutAck(7, True, ""))]
        hkey = hint_key(OWNER, key.storage_key())
        assert stored(storage, hkey) == data
        assert stored(storage, key.storage_key()) is None  # not an object of this node's
        history = Reply()
        storage.tell(History(hkey, reply=history))
        (record,) = eventually(lambda: history.results, "history")[0]
        assert (record.how, record.peer) == ("hint", "n1")
    finally:
        kv.stop()
        storage.stop()
    # The storage restarted from its files: the hint is there, and a HintActor counts it.
    storage = StorageActor.start(open_engine("sqlite", str(tmp_path)))
    try:
        assert stored(storage, hint_key(OWNER, key.storage_key())) == data
        hints = HintActor.start(name=ME, kv_config=KvConfig(), storage=storage, peers=sent,
                                clock=clock, scheduler=scheduler, partitions=64, n_val=3)
        eventually(lambda: hints.ask(GetHintStats())["kv_hints_held"] == 1, "held 1")
    finally:
        pykka.ActorRegistry.stop_all(timeout=5)


def test_hint_get_is_answered_from_the_hint(kv_harness: dict[str, Any]) -> None:
    key = ObjectKey("b", "k")
    data = obj_bytes(b"v1")
    routed(kv_harness, "n1", ReplicaPut(1, key, data, hint_for=OWNER)).wait(5)
    eventually(lambda: kv_harness["sent"].of(ReplicaPutAck), "ack")
    routed(kv_harness, "n1", ReplicaGet(2, key, hint_for=OWNER)).wait(5)
    routed(kv_harness, "n1", ReplicaGet(3, key)).wait(5)
    replies = dict(eventually(lambda: len(kv_harness["sent"].of(ReplicaGetReply)) == 2
                              and kv_harness["sent"].of(ReplicaGetReply), "two replies"))
    got = {m.request_id: m.obj for _, m in kv_harness["sent"].of(ReplicaGetReply)}
    assert replies and got == {2: data, 3: None}


def test_hint_malformed_message_is_dropped_and_counted(kv_harness: dict[str, Any]) -> None:
    key = ObjectKey("b", "k")
    routed(kv_harness, "n1", ReplicaPut(1, key, b"\xffnot an object", hint_for=OWNER)).wait(5)
    routed(kv_harness, "n1", ReplicaPut(2, key, obj_bytes(b"v"), hint_for="a\x00b")).wait(5)
    acks = eventually(lambda: len(kv_harness["sent"].of(ReplicaPutAck)) == 2
                      and kv_harness["sent"].of(ReplicaPutAck), "two refusals")
    assert [a.ok for _, a in acks] == [False, False]
    counts = kv_harness["kv"].ask(GetKvStats())
    assert counts["kv_hint_messages_dropped"] == 2
    assert stored(kv_harness["storage"], key.storage_key()) is None


def test_hint_codec_refuses_an_owner_with_nul() -> None:
    from dynago.proto import membership_pb2 as pb
    from dynago.transport.kv_codec import decode_kv, encode_kv

    envelope = pb.Envelope()
    encode_kv(envelope, ReplicaPut(1, ObjectKey("b", "k"), b"x", hint_for="n2"))
    assert decode_kv(envelope, "kv_put").hint_for == "n2"  # type: ignore[union-attr]
    envelope.kv_put.hint_for = "n\x002"
    with pytest.raises(ValueError, match="NUL"):
        decode_kv(envelope, "kv_put")


# ------------------------------------------------------------------ the coordinator's side

def _down_key(h: dict[str, Any]) -> tuple[ObjectKey, str, str]:
    """A key of which ME is the first primary, with its second primary failed: (key,
    the failed primary, its fallback)."""
    ring = members(h, "n1", "n2", "n3", "n4")
    key = key_where(ring, lambda p: p[0] == ME)
    pref = ring.preference_list_for(key)
    down = pref[1]
    h["kv"].tell(MembersSeen(tuple(view(n, "failed" if n == down else "alive")
                                   for n in (ME, "n1", "n2", "n3", "n4"))))
    sloppy = for_partition(ring, partition_of(key, ring.partitions), lambda n: n != down)
    fallback = next(r.node for r in sloppy.replicas if r.hint_for == down)
    return key, down, fallback


def test_hint_put_at_w_n_succeeds_through_a_fallback(kv_harness: dict[str, Any]) -> None:
    key, down, fallback = _down_key(kv_harness)
    sent = kv_harness["sent"]
    reply = Reply()
    kv_harness["kv"].tell(ClientPut(key, Content(b"v"), None, Quorum(w=3), False, False, reply))
    puts = eventually(lambda: len(sent.of(ReplicaPut)) == 2 and sent.of(ReplicaPut), "puts")
    by_node = {n: m for n, m in puts}
    assert down not in by_node
    assert by_node[fallback].hint_for == down
    for node, message in puts:
        routed(kv_harness, node, ReplicaPutAck(message.request_id, True))
    assert isinstance(reply.get(), PutReply)
    # A get at R=3 asks the fallback for its hint.
    got = Reply()
    kv_harness["kv"].tell(ClientGet(key, Quorum(r=3), False, got))
    asks = eventually(lambda: sent.of(ReplicaGet), "replica gets")
    assert {n: m.hint_for for n, m in asks}[fallback] == down
    data = eventually(lambda: stored(kv_harness["storage"], key.storage_key()), "local")
    for node, message in asks:
        routed(kv_harness, node, ReplicaGetReply(message.request_id, data))
    answer = got.get()
    assert isinstance(answer, GetReply) and answer.siblings[0].content.value == b"v"


def test_hint_pw_counts_primaries_only(kv_harness: dict[str, Any]) -> None:
    key, _down, _fallback = _down_key(kv_harness)
    sent = kv_harness["sent"]
    reply = Reply()
    kv_harness["kv"].tell(ClientPut(key, Content(b"v"), None, Quorum(w=3, pw=3), False, False,
                                    reply))
    result = reply.get()
    assert isinstance(result, Unavailable) and result.status == 503
    assert not sent.of(ReplicaPut)  # out of reach at once: nothing was written


def test_hint_kept_by_coordinator_when_no_fallback_is_left(
        kv_harness: dict[str, Any]) -> None:
    ring = members(kv_harness, "n1", "n2")
    key = key_where(ring, lambda p: p[0] == ME)
    down = ring.preference_list_for(key)[2]
    kv_harness["kv"].tell(MembersSeen(tuple(view(n, "failed" if n == down else "alive")
                                            for n in (ME, "n1", "n2"))))
    reply = Reply()
    kv_harness["kv"].tell(ClientPut(key, Content(b"v"), None, Quorum(w=2), False, False, reply))
    (node, message), = eventually(lambda: kv_harness["sent"].of(ReplicaPut), "one put")
    routed(kv_harness, node, ReplicaPutAck(message.request_id, True))
    assert isinstance(reply.get(), PutReply)
    hint = eventually(lambda: stored(kv_harness["storage"],
                                     hint_key(down, key.storage_key())), "own hint")
    assert version.siblings(version.decode(hint))[0].content.value == b"v"


# ------------------------------------------------------------------ hand-back

@pytest.fixture
def hand() -> Iterator[dict[str, Any]]:
    clock = ManualClock()
    scheduler = ManualScheduler(clock)
    sent = Sent()
    storage = StorageActor.start(MemoryEngine())
    kv_config = KvConfig(request_timeout_s=2.0, hint_handoff_per_s=2.0,
                         hint_handoff_in_flight=8, hint_retry_s=3.0, hint_check_interval_s=1.0)
    hints = HintActor.start(name=ME, kv_config=kv_config, storage=storage, peers=sent,
                            clock=clock, scheduler=scheduler, partitions=64, n_val=3)
    yield {"hints": hints, "sent": sent, "scheduler": scheduler, "storage": storage}
    pykka.ActorRegistry.stop_all(timeout=5)


def put_hint(h: dict[str, Any], name: str, value: bytes) -> bytes:
    key = hint_key(OWNER, ObjectKey("b", name).storage_key())
    data = obj_bytes(value)
    done = Reply()
    h["storage"].tell(Update(key, lambda _c: data, reply=done, on_error=done))
    done.get()
    return key


def stats(h: dict[str, Any]) -> dict[str, int]:
    result: dict[str, int] = h["hints"].ask(GetHintStats())
    return result


def ack(h: dict[str, Any], message: ReplicaPut, ok: bool = True, sender: str = OWNER) -> None:
    h["hints"].tell(PeerMessage(sender, "", ReplicaPutAck(message.request_id, ok), None))


def test_hint_handed_back_when_owner_alive_then_deleted(hand: dict[str, Any]) -> None:
    key = put_hint(hand, "k", b"v")
    eventually(lambda: stats(hand)["kv_hints_held"] == 1, "held")
    assert not hand["sent"].of(ReplicaPut)  # the owner is not known alive
    hand["hints"].tell(MembersSeen((view(ME), view(OWNER))))
    (node, message), = eventually(lambda: hand["sent"].of(ReplicaPut), "hand-back")
    assert node == OWNER and message.origin == "hint handed back"
    assert message.request_id >= HINT_REQUEST_BASE
    assert message.key == ObjectKey("b", "k")
    ack(hand, message, sender="n3")  # not the owner: dropped
    eventually(lambda: stats(hand)["kv_hint_acks_dropped"] == 1, "dropped")
    ack(hand, message)
    eventually(lambda: stats(hand)["kv_hints_held"] == 0, "hint gone")
    assert stored(hand["storage"], key) is None
    assert stats(hand)["kv_hints_handed_back"] == 1


def test_hint_rewritten_during_hand_back_is_not_deleted(hand: dict[str, Any]) -> None:
    key = put_hint(hand, "k", b"v1")
    hand["hints"].tell(MembersSeen((view(ME), view(OWNER))))
    (_, first), = eventually(lambda: hand["sent"].of(ReplicaPut), "hand-back")
    newer = put_hint(hand, "k", b"v2")  # a put reaches the fallback meanwhile
    assert newer == key
    ack(hand, first)
    eventually(lambda: stats(hand)["kv_hints_rewritten_during_handback"] == 1, "kept")
    assert stored(hand["storage"], key) == obj_bytes(b"v2")
    hand["scheduler"].advance(1.0)  # the rate allows the next start
    second = eventually(lambda: len(hand["sent"].of(ReplicaPut)) == 2
                        and hand["sent"].of(ReplicaPut)[1][1], "handed back again")
    assert second.obj == obj_bytes(b"v2")
    ack(hand, second)
    eventually(lambda: stored(hand["storage"], key) is None, "deleted after the new one")


def test_hint_hand_back_is_rate_limited_and_retried_from_where_it_was(
        hand: dict[str, Any]) -> None:
    keys = [put_hint(hand, f"k{i}", b"v") for i in range(5)]
    eventually(lambda: stats(hand)["kv_hints_held"] == 5, "held 5")
    sent = hand["sent"]
    hand["hints"].tell(MembersSeen((view(ME), view(OWNER))))
    eventually(lambda: len(sent.of(ReplicaPut)) == 2, "a burst of 2")
    assert len(sent.of(ReplicaPut)) == 2  # 2 per second
    first, second = (m for _, m in sent.of(ReplicaPut))
    ack(hand, first)
    ack(hand, second, ok=False)  # refused: the owner rests for hint_retry_s
    eventually(lambda: stats(hand)["kv_hint_handback_failures"] == 1, "a failure")
    eventually(lambda: stats(hand)["kv_hints_held"] == 4, "one handed back")
    hand["scheduler"].advance(2.0)
    assert len(sent.of(ReplicaPut)) == 2  # resting
    hand["scheduler"].advance(1.5)
    eventually(lambda: len(sent.of(ReplicaPut)) == 4, "resumed")
    resumed = [m.key for _, m in sent.of(ReplicaPut)[2:]]
    # From where it stopped: the refused hint first, never the one already handed back.
    assert resumed[0] == second.key and first.key not in resumed
    assert stored(hand["storage"], keys[0]) is None


def test_hint_hand_back_without_ack_times_out_and_is_retried(hand: dict[str, Any]) -> None:
    put_hint(hand, "k", b"v")
    hand["hints"].tell(MembersSeen((view(ME), view(OWNER))))
    eventually(lambda: hand["sent"].of(ReplicaPut), "hand-back")
    hand["scheduler"].advance(2.5)  # past request_timeout_s
    eventually(lambda: stats(hand)["kv_hint_handback_failures"] == 1, "timed out")
    hand["scheduler"].advance(3.5)
    eventually(lambda: len(hand["sent"].of(ReplicaPut)) == 2, "retried")
    assert stats(hand)["kv_hints_held"] == 1


def test_hint_suspect_primary_without_fallback_is_still_tried(
        kv_harness: dict[str, Any]) -> None:
    ring = members(kv_harness, "n1", "n2")
    key = key_where(ring, lambda p: p[0] == ME)
    suspect = ring.preference_list_for(key)[2]
    kv_harness["kv"].tell(MembersSeen(tuple(view(n, "suspect" if n == suspect else "alive")
                                            for n in (ME, "n1", "n2"))))
    reply = Reply()
    kv_harness["kv"].tell(ClientPut(key, Content(b"v"), None, Quorum(w=3), False, False, reply))
    puts = eventually(lambda: len(kv_harness["sent"].of(ReplicaPut)) == 2
                      and kv_harness["sent"].of(ReplicaPut), "two puts")
    assert {n: m.hint_for for n, m in puts}[suspect] == ""  # a copy of its own, not a hint
    for node, message in puts:
        routed(kv_harness, node, ReplicaPutAck(message.request_id, True))
    assert isinstance(reply.get(), PutReply)  # the suspect was alive after all: W = 3
    # ...and a hint was kept in case it was not.
    eventually(lambda: stored(kv_harness["storage"], hint_key(suspect, key.storage_key())),
               "own hint for the suspect")


def test_hint_suspicion_picks_a_fallback_only_while_local_health_is_good(
        kv_harness: dict[str, Any]) -> None:
    ring = members(kv_harness, "n1", "n2", "n3", "n4")
    key = key_where(ring, lambda p: p[0] == ME)
    suspect = ring.preference_list_for(key)[1]
    kv_harness["kv"].tell(MembersSeen(tuple(view(n, "suspect" if n == suspect else "alive")
                                            for n in (ME, "n1", "n2", "n3", "n4"))))
    sent = kv_harness["sent"]

    def put_targets(count: int) -> dict[str, str]:
        kv_harness["kv"].tell(ClientPut(key, Content(b"v"), None, Quorum(w=1), False, False,
                                        Reply()))
        puts = eventually(lambda: len(sent.of(ReplicaPut)) == count and sent.of(ReplicaPut),
                          "replica puts")
        return {n: m.hint_for for n, m in puts[count - 2:]}

    # Healthy here: the suspicion is trusted, a fallback takes the suspect's copy as a hint.
    first = put_targets(2)
    assert suspect not in first and suspect in first.values()
    # Degraded here (this node may be the slow one): the suspect gets its own copy.
    kv_harness["kv"].tell(LocalHealth(2))
    assert put_targets(4)[suspect] == ""
    # Healthy again: back to the fallback.
    kv_harness["kv"].tell(LocalHealth(0))
    assert suspect not in put_targets(6)


def test_hint_storage_delete_if_deletes_only_the_expected_bytes() -> None:
    from dynago.actors.storage_messages import DeleteIf

    storage = StorageActor.start(MemoryEngine())
    try:
        write = Reply()
        storage.tell(Update(b"k", lambda _c: b"one", reply=write, on_error=write))
        write.get()
        kept, gone = Reply(), Reply()
        storage.tell(DeleteIf(b"k", b"other", reply=kept, on_error=kept))
        assert kept.get() is False and stored(storage, b"k") == b"one"
        # Compared with the batch being gathered: the pending rewrite wins.
        rewrite, raced = Reply(), Reply()
        storage.tell(Update(b"k", lambda _c: b"two", reply=rewrite, on_error=rewrite))
        storage.tell(DeleteIf(b"k", b"one", reply=raced, on_error=raced))
        assert raced.get() is False and stored(storage, b"k") == b"two"
        storage.tell(DeleteIf(b"k", b"two", reply=gone, on_error=gone))
        assert gone.get() is True and stored(storage, b"k") is None
    finally:
        storage.stop()
