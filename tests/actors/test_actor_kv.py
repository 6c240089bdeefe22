"""The KvActor with injected messages: a fake peer sender, a real StorageActor on a memory
engine, a ManualClock and a ManualScheduler (time moves only when the test says so).

Each test plays the other replicas by hand: it reads what the actor sent to them and
injects their answers as PeerMessages, as a PeerActor would route them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from dynago.actors.kv import KvActor
from dynago.actors.kv_messages import ClientGet, ClientPut, GetKvStats, MembersSeen
from dynago.actors.messages import MemberView, PeerMessage
from dynago.actors.storage import StorageActor
from dynago.actors.timers import ManualScheduler
from dynago.clock import ManualClock
from dynago.config import Config
from dynago.kv import version
from dynago.kv.config import KvConfig
from dynago.kv.messages import (
    ForwardPut,
    ForwardReply,
    KvMessage,
    ReplicaGet,
    ReplicaGetReply,
    ReplicaPut,
    ReplicaPutAck,
)
from dynago.kv.model import (
    BadRequest,
    Content,
    GetReply,
    KvError,
    ObjectKey,
    PutReply,
    Quorum,
    Unavailable,
)
from dynago.kv.ring import Ring, RingMember
from dynago.storage import MemoryEngine

ME = "a"
TIMEOUT_S = 2.0
WAIT_S = 5.0


class Sent:
    """A PeerSender that records what the actor sent (thread-safe); ``refuse`` names
    peers it has no stream to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[tuple[str, KvMessage]] = []
        self.refuse: set[str] = set()

    def send(self, name: str, message: KvMessage) -> bool:
        if name in self.refuse:
            return False
        with self._lock:
            self.messages.append((name, message))
        return True

    def of(self, kind: type[Any]) -> list[tuple[str, Any]]:
        with self._lock:
            return [(n, m) for n, m in self.messages if isinstance(m, kind)]


def eventually(check: Callable[[], Any], what: str, wait_s: float = WAIT_S) -> Any:
    """Poll ``check`` until it returns something truthy (returned), at most ``wait_s``
    seconds; then fail naming ``what``. The KV actor tests' one polling helper."""
    deadline = time.monotonic() + wait_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {wait_s} s: {what}")
        time.sleep(0.002)  # a polling interval, not a wait for something to happen


class Reply:
    def __init__(self) -> None:
        self.results: list[Any] = []

    def __call__(self, result: Any) -> None:
        self.results.append(result)

    def get(self) -> Any:
        return eventually(lambda: self.results, "a reply")[0]


def kv_harness(kv_config: KvConfig, loop: asyncio.AbstractEventLoop | None = None
               ) -> dict[str, Any]:
    """A KvActor named ME over a memory store, a ManualScheduler and a Sent (peers);
    stop it with ``pykka.ActorRegistry.stop_all``."""
    clock = ManualClock()
    scheduler = ManualScheduler(clock)
    sent = Sent()
    storage = StorageActor.start(MemoryEngine())
    config = Config.local()
    kv = KvActor.start(name=ME, config=config, kv_config=kv_config, storage=storage,
                       peers=sent, clock=clock, scheduler=scheduler, loop=loop)
    return {"kv": kv, "sent": sent, "scheduler": scheduler, "storage": storage,
            "config": config}


@pytest.fixture(params=["thread", "loop"])
def harness(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A KvActor on its own thread, and hosted on an asyncio loop as a node hosts it on
    the transport's (actors/hosting.py): every test runs on both."""
    loop = asyncio.new_event_loop() if request.param == "loop" else None
    runner = None
    if loop is not None:
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()
    yield kv_harness(KvConfig(request_timeout_s=TIMEOUT_S), loop)
    pykka.ActorRegistry.stop_all(timeout=5)
    if loop is not None and runner is not None:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(timeout=5)
        loop.close()


def view(name: str, status: str = "alive") -> MemberView:
    return MemberView(name, f"{name}:1", status, 1, 0.0)


def members(h: dict[str, Any], *names: str, failed: tuple[str, ...] = ()) -> Ring:
    views = tuple(view(n, "failed" if n in failed else "alive") for n in (ME, *names))
    h["kv"].tell(MembersSeen(views))
    config = h["config"]
    return Ring.build([RingMember(v.name) for v in views], partitions=config.ring_partitions,
                      n_val=config.n_val)


def key_where(ring: Ring, test: Callable[[tuple[str, ...]], bool]) -> ObjectKey:
    for i in range(10_000):
        key = ObjectKey("b", f"k{i}")
        if test(ring.preference_list_for(key)):
            return key
    raise AssertionError("no such key")


def routed(h: dict[str, Any], sender: str, message: KvMessage) -> threading.Event:
    done = threading.Event()
    h["kv"].tell(PeerMessage(sender, f"{sender}:1", message, done.set))  # type: ignore[arg-type]
    return done


def put(h: dict[str, Any], key: ObjectKey, value: bytes, *, context: bytes | None = None,
        w: int | None = None) -> Reply:
    reply = Reply()
    h["kv"].tell(ClientPut(key, Content(value), context, Quorum(w=w), False, False, reply))
    return reply


def test_kv_put_stores_locally_replicates_and_answers_at_w(harness: dict[str, Any]) -> None:
    ring = members(harness, "b", "c")
    key = key_where(ring, lambda p: p[0] == ME)
    reply = put(harness, key, b"v1")
    sent = harness["sent"]
    puts = eventually(lambda: sent.of(ReplicaPut) if len(sent.of(ReplicaPut)) == 2 else None,
                      "ReplicaPut to both other replicas")
    assert {n for n, _ in puts} == {"b", "c"}
    assert not reply.results, "answered before W acknowledgements"
    rid = puts[0][1].request_id
    routed(harness, "b", ReplicaPutAck(rid, True))
    result = reply.get()
    assert isinstance(result, PutReply) and result.node == ME
    obj = version.decode(puts[0][1].obj)
    assert [s.content.value for s in version.siblings(obj)] == [b"v1"]
    assert version.decode_context(result.context) == version.context_of(obj)


def test_kv_put_times_out_naming_how_many_answered(harness: dict[str, Any]) -> None:
    ring = members(harness, "b", "c")
    key = key_where(ring, lambda p: ME in p)
    reply = put(harness, key, b"v1")
    eventually(lambda: len(harness["sent"].of(ReplicaPut)) == 2, "replica puts")
    harness["scheduler"].advance(TIMEOUT_S + 0.1)
    result = reply.get()
    assert isinstance(result, Unavailable)
    assert (result.answered, result.needed) == (1, 2)


def test_kv_put_at_w3_with_a_failed_replica_fails_at_once(harness: dict[str, Any]) -> None:
    ring = members(harness, "b", "c", failed=("c",))
    key = key_where(ring, lambda p: ME in p and "c" in p)
    reply = put(harness, key, b"v1", w=3)
    result = reply.get()
    assert isinstance(result, Unavailable) and result.needed == 3


def test_kv_put_from_outside_the_preference_list_is_forwarded(
        harness: dict[str, Any]) -> None:
    ring = members(harness, "b", "c", "d")
    key = key_where(ring, lambda p: ME not in p)
    reply = put(harness, key, b"v1")
    sent = harness["sent"]
    (to, fwd), = eventually(lambda: sent.of(ForwardPut), "a ForwardPut")
    assert to == ring.preference_list_for(key)[0]
    assert fwd.key == key and fwd.content.value == b"v1" and fwd.w == 2
    obj = version.coordinate(version.EMPTY, None, to, Content(b"v1"))
    routed(harness, to, ForwardReply(fwd.request_id, 200, obj=version.encode(obj)))
    result = reply.get()
    assert isinstance(result, PutReply) and result.node == to


def test_kv_forwarded_failure_keeps_its_count(harness: dict[str, Any]) -> None:
    ring = members(harness, "b", "c", "d")
    key = key_where(ring, lambda p: ME not in p)
    reply = put(harness, key, b"v1")
    (to, fwd), = eventually(lambda: harness["sent"].of(ForwardPut), "a ForwardPut")
    routed(harness, to, ForwardReply(fwd.request_id, 503, "1 of 2", answered=1, needed=2))
    result = reply.get()
    assert isinstance(result, Unavailable) and (result.answered, result.needed) == (1, 2)


def test_kv_get_merges_replies_into_siblings(harness: dict[str, Any]) -> None:
    ring = members(harness, "b", "c")
    key = key_where(ring, lambda p: ME in p)
    reply = Reply()
    harness["kv"].tell(ClientGet(key, Quorum(r=3), False, reply))
    gets = eventually(lambda: harness["sent"].of(ReplicaGet) if len(
        harness["sent"].of(ReplicaGet)) == 2 else None, "ReplicaGet to the others")
    rid = gets[0][1].request_id
    b_obj = version.coordinate(version.EMPTY, None, "b", Content(b"from-b"))
    c_obj = version.coordinate(version.EMPTY, None, "c", Content(b"from-c"))
    routed(harness, "b", ReplicaGetReply(rid, version.encode(b_obj)))
    assert not reply.results, "answered before R replies"
    routed(harness, "c", ReplicaGetReply(rid, version.encode(c_obj)))
    result = reply.get()
    assert isinstance(result, GetReply)
    assert sorted(s.content.value for s in result.siblings) == [b"from-b", b"from-c"]


def test_kv_get_not_found_everywhere_is_not_found(harness: dict[str, Any]) -> None:
    ring = members(harness, "b", "c")
    key = key_where(ring, lambda p: ME in p)
    reply = Reply()
    harness["kv"].tell(ClientGet(key, Quorum(), False, reply))
    gets = eventually(lambda: harness["sent"].of(ReplicaGet), "ReplicaGets")
    routed(harness, gets[0][0], ReplicaGetReply(gets[0][1].request_id, None))
    result = reply.get()
    assert isinstance(result, GetReply) and not result.found


def test_kv_replica_put_is_stored_then_acknowledged(harness: dict[str, Any]) -> None:
    members(harness, "b", "c")
    key = ObjectKey("b", "x")
    obj = version.coordinate(version.EMPTY, None, "b", Content(b"v"))
    done = routed(harness, "b", ReplicaPut(7, key, version.encode(obj)))
    (to, ack), = eventually(lambda: harness["sent"].of(ReplicaPutAck), "an ack")
    assert to == "b" and ack == ReplicaPutAck(7, True)
    assert done.wait(WAIT_S), "the stream's done was not called"
    # What was acknowledged is in the local store: a replica read returns it.
    routed(harness, "c", ReplicaGet(8, key))
    (_, got), = eventually(lambda: harness["sent"].of(ReplicaGetReply), "a reply")
    assert got.obj is not None and version.decode(got.obj) == obj


def test_kv_malformed_replica_object_is_dropped_and_counted(harness: dict[str, Any]) -> None:
    members(harness, "b")
    done = routed(harness, "b", ReplicaPut(9, ObjectKey("b", "x"), b"\xffnot an object"))
    (_, ack), = eventually(lambda: harness["sent"].of(ReplicaPutAck), "a refusal")
    assert not ack.ok and done.wait(WAIT_S)
    stats = harness["kv"].ask(GetKvStats(), timeout=WAIT_S)
    assert stats["kv_replica_messages_dropped"] == 1
    assert harness["kv"].is_alive()


def test_kv_write_with_a_reads_context_replaces_what_it_saw(harness: dict[str, Any]) -> None:
    """One node, N=1: two writes without context are siblings; a write with the read's
    context leaves one value."""
    members(harness)
    key = ObjectKey("b", "cart")
    assert isinstance(put(harness, key, b"one").get(), PutReply)
    assert isinstance(put(harness, key, b"two").get(), PutReply)
    reply = Reply()
    harness["kv"].tell(ClientGet(key, Quorum(), False, reply))
    read = reply.get()
    assert sorted(s.content.value for s in read.siblings) == [b"one", b"two"]
    assert isinstance(put(harness, key, b"merged", context=read.context).get(), PutReply)
    reply = Reply()
    harness["kv"].tell(ClientGet(key, Quorum(), False, reply))
    assert [s.content.value for s in reply.get().siblings] == [b"merged"]


def test_kv_bad_context_is_a_bad_request_and_stores_nothing(harness: dict[str, Any]) -> None:
    members(harness)
    key = ObjectKey("b", "k")
    result = put(harness, key, b"v", context=b"\xff\xfe garbage").get()
    assert isinstance(result, BadRequest)
    reply = Reply()
    harness["kv"].tell(ClientGet(key, Quorum(), False, reply))
    assert not reply.get().found


def test_kv_bad_quorum_is_a_bad_request(harness: dict[str, Any]) -> None:
    members(harness, "b", "c")
    result = put(harness, ObjectKey("b", "k"), b"v", w=4).get()
    assert isinstance(result, KvError) and isinstance(result, BadRequest)


def test_kv_get_repairs_replicas_behind_after_answering(harness: dict[str, Any]) -> None:
    """Read repair: once every replica answered, the ones missing the merged version
    get it (the local store included), after the client already had its answer."""
    ring = members(harness, "b", "c")
    key = key_where(ring, lambda p: ME in p)
    reply = Reply()
    harness["kv"].tell(ClientGet(key, Quorum(r=2), False, reply))
    sent = harness["sent"]
    gets = eventually(lambda: sent.of(ReplicaGet) if len(sent.of(ReplicaGet)) == 2 else None,
                      "ReplicaGets")
    rid = gets[0][1].request_id
    obj = version.coordinate(version.EMPTY, None, "b", Content(b"only-on-b"))
    routed(harness, "b", ReplicaGetReply(rid, version.encode(obj)))
    assert [s.content.value for s in reply.get().siblings] == [b"only-on-b"]
    assert not sent.of(ReplicaPut), "repaired before every replica answered"
    routed(harness, "c", ReplicaGetReply(rid, None))
    (to, repair), = eventually(lambda: sent.of(ReplicaPut), "a repair")
    assert to == "c" and version.decode(repair.obj) == obj
    # The local store (which had nothing) was repaired too: a replica read returns it.
    routed(harness, "b", ReplicaGet(99, key))
    eventually(lambda: [m for _, m in sent.of(ReplicaGetReply)
                        if m.request_id == 99 and m.obj is not None
                        and version.decode(m.obj) == obj], "the repaired local copy")
