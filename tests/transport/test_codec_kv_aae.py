"""Anti-entropy messages through the codec: every kind round-trips, and a peer's bad
message is a DecodeError (dropped and counted by the stream), never another error."""

from __future__ import annotations

import pytest

from dynago.kv.aae_messages import (
    BRANCHES,
    ROOT,
    SEGMENTS,
    AaeHashes,
    AaeHashesAsk,
    AaeKeys,
    AaeKeysAsk,
    AaePush,
    AaeRefused,
)
from dynago.proto import membership_pb2 as pb
from dynago.transport.codec import DecodeError, decode, encode

LIMIT = 1 << 20


@pytest.mark.parametrize("message", [
    AaeHashesAsk(1, 7, ROOT),
    AaeHashesAsk(2, 7, SEGMENTS, (0, 31)),
    AaeHashes(3, 7, BRANCHES, tuple(range(32)), tuple(range(2**64 - 32, 2**64))),
    AaeKeysAsk(4, 7, (5, 1023), (b"b\x00k",)),
    AaeKeys(5, 7, (b"b\x00k", b"b\x00l"), (0, 2**64 - 1)),
    AaePush(6, 7, (b"b\x00k",)),
    AaeRefused(7, "not a replica of partition 7"),
])
def test_codec_aae_round_trip(message: object) -> None:
    assert decode(encode(message), LIMIT) == message  # type: ignore[arg-type]


@pytest.mark.parametrize("envelope", [
    pb.Envelope(kv_aae_hashes_ask=pb.KvAaeHashesAsk(exchange_id=1, level=9)),
    pb.Envelope(kv_aae_hashes=pb.KvAaeHashes(exchange_id=1, level=1, ids=[1], hashes=[])),
    pb.Envelope(kv_aae_keys_ask=pb.KvAaeKeysAsk(exchange_id=1, segments=[1024])),
    pb.Envelope(kv_aae_keys=pb.KvAaeKeys(exchange_id=1, keys=[b"\x00h\x00x"], hashes=[1])),
    pb.Envelope(kv_aae_push=pb.KvAaePush(exchange_id=1, keys=[b"no-bucket"])),
    pb.Envelope(kv_aae_push=pb.KvAaePush(exchange_id=1, keys=[b""])),
])
def test_codec_aae_malformed_is_a_decode_error(envelope: pb.Envelope) -> None:
    with pytest.raises(DecodeError):
        decode(envelope.SerializeToString(), LIMIT)
