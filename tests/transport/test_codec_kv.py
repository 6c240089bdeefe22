"""The key-value store's replica messages at the wire edge (transport/kv_codec.py)."""

from __future__ import annotations

import pytest

from dynago.kv.messages import (
    ForwardPut,
    ForwardReply,
    KeyList,
    ListKeys,
    ReplicaGet,
    ReplicaGetReply,
    ReplicaPut,
    ReplicaPutAck,
)
from dynago.kv.model import Content, ObjectKey
from dynago.proto import membership_pb2 as pb
from dynago.transport.codec import DecodeError, Hello, check_hello, decode, encode
from dynago.transport.kv_codec import MAX_KEYS_PER_LIST

LIMIT = 4 << 20
KEY = ObjectKey("cart", "alice ü")

MESSAGES = [
    ReplicaPut(1, KEY, b"\x01object-bytes"),
    ReplicaPut(2, KEY, b"\x01object-bytes", "read repair"),
    ReplicaPutAck(2, True),
    ReplicaPutAck(3, False, "disk full"),
    ReplicaGet(4, KEY),
    ReplicaGetReply(5, b"\x01obj"),
    ReplicaGetReply(6, None),
    ReplicaGetReply(7, None, "storage error"),
    ReplicaGetReply(8, b""),  # found, an empty encoding: the KV actor decides what it means
    ForwardPut(9, KEY, Content(b"v", "text/plain", (("colour", "red"),), False, 17), b"ctx",
               False, 2, 0, 5000),
    ForwardPut(10, KEY, Content(b"", deleted=True), None, True, 3, 1, 100),
    ForwardReply(11, 200, obj=b"\x01obj"),
    ForwardReply(12, 503, "2 of 3 replicas answered", answered=1, needed=2),
    ListKeys(13, "cart"),
    KeyList(14, ("a", "b", "ü")),
    KeyList(15, (), "not ready"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_kv_codec_round_trip(message: object) -> None:
    assert decode(encode(message), LIMIT) == message  # type: ignore[arg-type]


def test_kv_codec_context_none_and_empty_differ() -> None:
    """A write with an empty context is not a write without one."""
    with_empty = ForwardPut(1, KEY, Content(b"v"), b"", False, 2, 0, 10)
    without = ForwardPut(1, KEY, Content(b"v"), None, False, 2, 0, 10)
    assert decode(encode(with_empty), LIMIT) == with_empty
    assert decode(encode(without), LIMIT) == without


def _envelope(**kind: object) -> bytes:
    return pb.Envelope(**kind).SerializeToString()  # type: ignore[arg-type]


def _bad_utf8_key() -> bytes:
    inner = pb.KvGet(request_id=1, bucket="b", key="k").SerializeToString()
    inner = inner.replace(b"\x1a\x01k", b"\x1a\x01\xff")
    return bytes([12 << 3 | 2, len(inner)]) + inner  # Envelope.kv_get


@pytest.mark.parametrize(
    "data",
    [
        _envelope(kv_put=pb.KvPut(request_id=1, bucket="b")),  # no key
        _envelope(kv_get=pb.KvGet(request_id=1, key="k")),  # no bucket
        _envelope(kv_get=pb.KvGet(request_id=1, bucket="a\x00b", key="k")),
        _envelope(kv_forward=pb.KvForward(request_id=1, bucket="b", key="k", content=pb.KvContent(
            meta=[pb.Tag(key=str(i), value="") for i in range(65)]))),
        _envelope(kv_list_keys=pb.KvListKeys(request_id=1)),
        _envelope(kv_key_list=pb.KvKeyList(request_id=1,
                                           keys=["k"] * (MAX_KEYS_PER_LIST + 1))),
        # A string field holding bytes that are not UTF-8.
        _bad_utf8_key(),
    ],
    ids=["no-key", "no-bucket", "nul-bucket", "too-much-meta", "list-no-bucket",
         "too-many-keys", "bad-utf8"],
)
def test_kv_codec_malformed_is_decode_error(data: bytes) -> None:
    """A peer's broken KV message is the peer's fault: DecodeError, never a crash."""
    with pytest.raises(DecodeError):
        decode(data, LIMIT)


def _hello(name: str, partitions: int, n_val: int) -> Hello:
    return Hello(name, f"{name}:1", "dynago", 2, 2, ring_partitions=partitions, n_val=n_val)


def test_check_hello_refuses_a_different_ring() -> None:
    """Nodes whose ring size or replica count differ refuse each other, with a plain line."""
    reason = check_hello(_hello("a", 64, 3), _hello("b", 128, 3))
    assert reason is not None and "128 partitions" in reason and "we have 64" in reason
    reason = check_hello(_hello("a", 64, 3), _hello("b", 64, 2))
    assert reason is not None and "2 replicas per key" in reason
    assert check_hello(_hello("a", 64, 3), _hello("b", 64, 3)) is None
