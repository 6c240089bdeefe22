"""The HandoffActor with a real StorageActor (SQLite in tmp_path), a fake peer link and
a ManualScheduler: chunks, acknowledgements, resume after a timeout and after the
sender's restart, merging on the receiving side, malformed chunks dropped and counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from dynago.actors.kv_handoff import HandoffActor
from dynago.actors.kv_handoff_messages import GetHandoffSnapshot, HandoffSnapshot, RingChanged
from dynago.actors.messages import PeerMessage
from dynago.actors.storage import StorageActor
from dynago.actors.storage_messages import ListKeys, Read, Update
from dynago.actors.timers import ManualScheduler
from dynago.clock import ManualClock
from dynago.kv import handoff, version
from dynago.kv.config import KvConfig
from dynago.kv.handoff_messages import HandoffAck, HandoffChunk
from dynago.kv.model import Content, ObjectKey
from dynago.kv.ring import Ring, RingMember
from dynago.storage import open_engine

DEADLINE_S = 10.0
P = 8


class FakePeers:
    """Records what the actor sends, by peer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: list[tuple[str, Any]] = []

    def send(self, name: str, message: Any) -> bool:
        with self.lock:
            self.sent.append((name, message))
        return True

    def chunks(self) -> list[HandoffChunk]:
        with self.lock:
            return [m for _, m in self.sent if isinstance(m, HandoffChunk)]

    def acks(self) -> list[HandoffAck]:
        with self.lock:
            return [m for _, m in self.sent if isinstance(m, HandoffAck)]


def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def ring(*names: str) -> Ring:
    return Ring.build([RingMember(n) for n in names], partitions=P, n_val=1)


def obj(value: bytes) -> bytes:
    return version.encode(version.coordinate(version.EMPTY, None, "a", Content(value)))


def store(storage: pykka.ActorRef[Any], items: dict[ObjectKey, bytes]) -> None:
    done = threading.Semaphore(0)
    for key, data in items.items():
        storage.tell(Update(key.storage_key(), lambda _c, d=data: d,
                            reply=lambda _v: done.release(), on_error=lambda _e: None))
    for _ in items:
        assert done.acquire(timeout=DEADLINE_S)


def listed(storage: pykka.ActorRef[Any], prefix: bytes) -> list[bytes]:
    box: list[list[bytes]] = []
    storage.tell(ListKeys(prefix, reply=box.append, limit=100_000))
    return eventually(lambda: box, "a listing")[0]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    clock = ManualClock()
    scheduler = ManualScheduler(clock)
    refs: list[pykka.ActorRef[Any]] = []
    cfg = KvConfig(handoff_chunk_keys=5, handoff_in_flight=2, handoff_ack_timeout_s=3.0)

    def start_storage() -> pykka.ActorRef[Any]:
        ref = StorageActor.start(open_engine("sqlite", str(tmp_path)))
        refs.append(ref)
        return ref

    def start_handoff(storage: pykka.ActorRef[Any], peers: FakePeers,
                      at: Ring, name: str = "a") -> pykka.ActorRef[Any]:
        ref = HandoffActor.start(name=name, kv_config=cfg, storage=storage, peers=peers,
                                 scheduler=scheduler, ring=at)
        refs.append(ref)
        return ref

    yield {"scheduler": scheduler, "storage": start_storage, "handoff": start_handoff}
    for ref in reversed(refs):
        try:
            ref.stop(timeout=5)
        except pykka.ActorDeadError:
            pass


def moving(old: Ring, new: Ring, items: dict[ObjectKey, bytes]) -> set[bytes]:
    """Storage keys node a must hand to d."""
    parts = {pp.partition for pp in handoff.plan(old, new, "a") if "d" in pp.targets}
    return {k.storage_key() for k in items
            if handoff.storage_partition(k.storage_key(), P) in parts}


def ack(ref: pykka.ActorRef[Any], chunk: HandoffChunk, ok: bool = True) -> None:
    ref.tell(PeerMessage("d", "d:1", HandoffAck(chunk.seq, chunk.partition, ok)))


def snap(ref: pykka.ActorRef[Any]) -> HandoffSnapshot:
    answer = ref.ask(GetHandoffSnapshot(), timeout=5)
    assert isinstance(answer, HandoffSnapshot)
    return answer


ITEMS = {ObjectKey("b", f"key-{i}"): obj(f"v{i}".encode()) for i in range(240)}


def test_handoff_timeout_resumes_after_the_last_acknowledged_chunk(
        world: dict[str, Any]) -> None:
    storage = world["storage"]()
    store(storage, ITEMS)
    old, new = ring("a", "b"), ring("a", "b", "d")
    want = moving(old, new, ITEMS)
    assert want
    peers = FakePeers()
    actor = world["handoff"](storage, peers, old)
    actor.tell(RingChanged(old, new))

    # Acknowledge the first four chunks, then go silent: a cut stream.
    acked_keys: set[bytes] = set()
    for i in range(4):
        chunk = eventually(lambda i=i: len(peers.chunks()) > i and peers.chunks()[i],
                           f"chunk {i}")
        acked_keys.update(k.storage_key() for k, _ in chunk.objects)
        ack(actor, chunk)
    eventually(lambda: snap(actor).counters.get("kv_handoff_keys_acked") == len(acked_keys),
               "acks counted")
    # The node's window of chunks is out (the scan waits for their acks).
    eventually(lambda: sum(t.in_flight for t in snap(actor).transfers) >= 2
               or all(t.state == "waiting" for t in snap(actor).transfers),
               "the window full")
    before = len(peers.chunks())
    unacked = [k.storage_key() for c in peers.chunks()[4:] for k, _ in c.objects]

    world["scheduler"].advance(3.0)  # the chunks in flight time out
    eventually(lambda: snap(actor).counters.get("kv_handoff_retries"), "the reset")
    world["scheduler"].advance(1.0)  # the pause before the resume
    received: dict[bytes, int] = {}
    for c in peers.chunks()[:4]:
        for k, _ in c.objects:
            received[k.storage_key()] = received.get(k.storage_key(), 0) + 1

    def drain() -> bool:
        chunks = peers.chunks()
        for c in chunks[drain.seen:]:  # type: ignore[attr-defined]
            for k, _ in c.objects:
                received[k.storage_key()] = received.get(k.storage_key(), 0) + 1
            ack(actor, c)
        drain.seen = len(chunks)  # type: ignore[attr-defined]
        return snap(actor).counters.get("kv_handoffs_pending") == 0

    drain.seen = before  # type: ignore[attr-defined]
    eventually(drain, "the handoff to finish")
    counters = snap(actor).counters
    assert set(received) == want
    # Keys acknowledged before the cut were sent once; only the unacknowledged again.
    assert all(received[k] == 1 for k in acked_keys)
    assert counters["kv_handoff_keys_sent"] == len(want) + len(unacked)
    assert counters["kv_handoff_keys_acked"] == len(want)
    assert counters["kv_handoff_retries"] >= 1
    # a is no longer a replica of what it handed off: its copy is gone.
    eventually(lambda: not (set(listed(storage, b"b\x00")) & want), "the copy dropped")
    assert not listed(storage, handoff.PROGRESS_PREFIX)


def test_handoff_sender_restart_resumes_from_its_durable_progress(
        world: dict[str, Any]) -> None:
    storage = world["storage"]()
    store(storage, ITEMS)
    old, new = ring("a", "b"), ring("a", "b", "d")
    want = moving(old, new, ITEMS)
    peers = FakePeers()
    actor = world["handoff"](storage, peers, old)
    actor.tell(RingChanged(old, new))
    first = eventually(lambda: peers.chunks() and peers.chunks()[0], "a first chunk")
    ack(actor, first)
    progress = eventually(lambda: listed(storage, handoff.PROGRESS_PREFIX), "progress kept")
    actor.stop(timeout=5)
    storage.stop(timeout=5)

    storage = world["storage"]()  # the same data dir, reopened
    (raw,) = [k for k in progress if b"\x00d" in k[3:]]
    box: list[bytes | None] = []
    storage.tell(Read(raw, reply=box.append))
    record = handoff.decode_progress(raw, eventually(lambda: box, "the record")[0] or b"")
    assert record.acked == first.objects[-1][0].storage_key()

    peers2 = FakePeers()
    actor2 = world["handoff"](storage, peers2, new)  # the ring file holds the new ring
    resumed = eventually(lambda: [c for c in peers2.chunks()
                                  if c.partition == first.partition], "resumed chunks")
    first_keys = {k.storage_key() for k, _ in first.objects}
    assert all(k.storage_key() not in first_keys for k, _ in resumed[0].objects)
    assert all(k.storage_key() > record.acked for k, _ in resumed[0].objects)
    assert snap(actor2).counters["kv_handoff_transfers_resumed"] == 1
    assert want  # (some partitions move)


def test_handoff_chunk_is_merged_and_acknowledged_after_commit(
        world: dict[str, Any]) -> None:
    storage = world["storage"]()
    d_ring = ring("a", "b", "c", "d")
    peers = FakePeers()
    actor = world["handoff"](storage, peers, d_ring, name="d")
    key = next(k for k in ITEMS if handoff.storage_partition(k.storage_key(), P) == 0)
    # d holds a concurrent version already: the handoff merges, never overwrites.
    mine = version.coordinate(version.EMPTY, None, "d", Content(b"d's"))
    store(storage, {key: version.encode(mine)})
    actor.tell(PeerMessage("a", "a:1", HandoffChunk(7, 0, ((key, ITEMS[key]),))))
    (answer,) = eventually(peers.acks, "an ack")
    assert answer == HandoffAck(7, 0, True)
    box: list[bytes | None] = []
    storage.tell(Read(key.storage_key(), reply=box.append))
    stored = version.decode(eventually(lambda: box, "a read")[0] or b"")
    assert {s.content.value for s in version.siblings(stored)} == {b"d's", b"v" + key.key[4:]
                                                                   .encode()}
    counters = snap(actor).counters
    assert counters["kv_handoff_keys_received"] == 1
    assert counters["kv_handoffs_inbound"] == 1  # a is still handing partition 0 over


@pytest.mark.parametrize("chunk", [
    HandoffChunk(1, P, ()),  # partition out of range
    HandoffChunk(2, 0, ((ObjectKey("b", "x"), b"not an object"),)),
    HandoffChunk(3, 5, tuple((k, v) for k, v in ITEMS.items()
                             if handoff.storage_partition(k.storage_key(), P) != 5)[:1]),
])
def test_handoff_malformed_chunk_is_dropped_and_counted(
        world: dict[str, Any], chunk: HandoffChunk) -> None:
    storage = world["storage"]()
    peers = FakePeers()
    actor = world["handoff"](storage, peers, ring("a", "d"), name="d")
    actor.tell(PeerMessage("a", "a:1", chunk))
    (answer,) = eventually(peers.acks, "a refusal")
    assert not answer.ok and answer.seq == chunk.seq
    assert snap(actor).counters["kv_handoff_malformed"] == 1
    assert listed(storage, b"b\x00") == []
    assert actor.is_alive()
