"""Batch envelopes: what a stream's writer finds queued goes out in one write, and the
receiver gets every message, in order, as if each had come alone; peers of an older
protocol version get one message per write; a malformed batch is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dynago.config import Config
from dynago.core.member import Member
from dynago.core.messages import Gossip, Nack, Ping
from dynago.transport import batch_codec, codec, grpc_transport
from dynago.transport.base import Stream, WireMessage
from dynago.transport.grpc_transport import GrpcTransport

WAIT_S = 10.0


def _eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Pair:
    """Two transports with a stream from ``a`` to ``b``; ``b`` records what it gets."""

    def __init__(self) -> None:
        self.a, self.b = GrpcTransport(Config.local()), GrpcTransport(Config.local())
        self.received: list[WireMessage] = []
        self.streams: dict[str, Stream] = {}
        self._lock = threading.Lock()
        for name, transport in (("a", self.a), ("b", self.b)):
            address = transport.bind("127.0.0.1:0")
            transport.serve(name, address, self._on_stream(name))
        self.b_address = address
        self.a.dial(self.b_address, "b", lambda reason: None)
        _eventually(lambda: {"a", "b"} <= set(self.streams))

    def _on_stream(self, side: str) -> Callable[[Stream], None]:
        def on_stream(stream: Stream) -> None:
            def on_message(message: WireMessage) -> None:
                with self._lock:
                    self.received.append(message)
                stream.processed()

            stream.bind(on_message, lambda reason: None)
            self.streams[side] = stream
        return on_stream

    def send_at_once(self, messages: list[WireMessage]) -> None:
        """Queue ``messages`` from one callback on a's loop: every one is queued before
        the writer task runs again, so it finds them all waiting."""
        stream = self.streams["a"]
        self.a.loop.call_soon_threadsafe(lambda: [stream.send(m) for m in messages])

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


@pytest.fixture
def pair() -> Iterator[Pair]:
    made = Pair()
    try:
        yield made
    finally:
        made.stop()


def _messages(count: int) -> list[WireMessage]:
    return [Ping(seq, Member(f"m{seq}", "127.0.0.1:1")) for seq in range(count)]


def test_batch_queued_messages_arrive_all_in_order_in_fewer_writes(pair: Pair) -> None:
    sent = _messages(10)
    pair.send_at_once(sent)
    _eventually(lambda: len(pair.received) == 10)
    assert pair.received == sent
    assert pair.a.counters.batches_out == 1  # one write: the first, then nine queued behind
    assert pair.a.counters.messages_out >= 10
    assert pair.b.counters.batches_in == 1
    assert pair.b.counters.by_kind_in["Ping"] == 10


def test_batch_more_than_fit_in_one_are_split(pair: Pair) -> None:
    sent = _messages(batch_codec.MAX_BATCH_MESSAGES * 2 + 5)
    pair.send_at_once(sent)
    _eventually(lambda: len(pair.received) == len(sent))
    assert pair.received == sent
    assert pair.a.counters.batches_out == 3


def test_batch_not_sent_to_a_peer_of_an_older_protocol(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_transport, "PROTOCOL_VERSION",
                        batch_codec.BATCH_PROTOCOL_VERSION - 1)
    old = Pair()
    try:
        sent = _messages(10)
        old.send_at_once(sent)
        _eventually(lambda: len(old.received) == 10)
        assert old.received == sent
        assert old.a.counters.batches_out == 0
    finally:
        old.stop()


def test_batch_codec_round_trip_and_refusals() -> None:
    parts = [codec.encode(Nack(1)), codec.encode(Gossip((Member("x", "127.0.0.1:2"),)))]
    data = batch_codec.encode_batch(parts)
    assert batch_codec.is_batch(data)
    assert not any(batch_codec.is_batch(part) for part in parts)
    assert batch_codec.split_batch(data, 1 << 20) == parts
    with pytest.raises(codec.DecodeError):
        batch_codec.split_batch(data, len(data) - 1)  # over the byte limit
    with pytest.raises(codec.DecodeError):
        batch_codec.split_batch(batch_codec.encode_batch([data, parts[0]]), 1 << 20)  # nested
    with pytest.raises(codec.DecodeError):
        batch_codec.split_batch(parts[0], 1 << 20)  # not a batch
    with pytest.raises(codec.DecodeError):
        batch_codec.split_batch(b"\x82\x02\xff", 1 << 20)  # truncated
    with pytest.raises(codec.DecodeError):
        codec.decode(data, 1 << 20)  # a batch is not one message
    with pytest.raises(ValueError):
        batch_codec.encode_batch(parts[:1])
