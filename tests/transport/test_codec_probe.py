"""The wire codec for SWIM's probe messages (Ping, Ack, PingReq, Nack) and for the
``origin`` of member records (who suspected or declared a member failed: Lifeguard counts
distinct origins as independent confirmations, so it must survive the wire).

Bytes a correct encoder never makes are built with the generated protobuf classes or by
hand, as in test_codec.py.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dynago.core.member import Member, Status
from dynago.core.messages import Ack, Gossip, Nack, Ping, PingReq, StateSync
from dynago.proto import membership_pb2 as pb
from dynago.transport.codec import DecodeError, decode, encode

LIMIT = 1 << 20
UINT64_MAX = (1 << 64) - 1

printable_text = st.text(st.characters(codec="utf-8").filter(str.isprintable))
utf8_text = st.text(st.characters(codec="utf-8"))
uint64 = st.integers(min_value=0, max_value=UINT64_MAX)
members = st.builds(
    Member,
    name=printable_text,
    address=utf8_text,
    incarnation=uint64,
    status=st.sampled_from(Status),
    origin=printable_text,
)
probe_messages = st.one_of(
    st.builds(Ping, seq=uint64, target=members),
    st.builds(Ack, seq=uint64, member=members),
    st.builds(PingReq, seq=uint64, target=members),
    st.builds(Nack, seq=uint64),
)

ProbeMessage = Ping | Ack | PingReq | Nack


# --- round trips -------------------------------------------------------------------------


@given(message=probe_messages)
def test_codec_probe_round_trip_every_kind(message: ProbeMessage) -> None:
    """Ping, Ack, PingReq and Nack come back equal, the member record (origin included)
    and a seq anywhere in uint64."""
    assert decode(encode(message), LIMIT) == message


@given(records=st.lists(members, max_size=20).map(tuple), last=st.booleans())
def test_codec_member_origin_round_trip(records: tuple[Member, ...], last: bool) -> None:
    """Every member record keeps its origin in Gossip and StateSync."""
    for message in (Gossip(records), StateSync(records, reply_wanted=last, last=last)):
        assert decode(encode(message), LIMIT) == message


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (Ping(0, Member("", "")), "ping"),
        (Ack(0, Member("", "")), "ack"),
        (PingReq(0, Member("", "")), "ping_req"),
        (Nack(0), "nack"),
    ],
    ids=["ping", "ack", "ping_req", "nack"],
)
def test_codec_probe_all_default_fields_keep_their_kind(message: ProbeMessage, kind: str) -> None:
    """seq 0 and an all-default record are proto3 defaults: the envelope still says which
    kind it holds, and the message comes back equal."""
    data = encode(message)
    assert pb.Envelope.FromString(data).WhichOneof("kind") == kind
    assert decode(data, LIMIT) == message


def test_codec_ping_carries_the_suspicion_and_its_origin() -> None:
    """A Ping carries the target's record as the prober holds it (Lifeguard: a suspect
    learns of its suspicion from the probe), with the suspecting node as origin."""
    ping = Ping(7, Member("b", "127.0.0.1:7002", 3, Status.SUSPECT, origin="a"))
    wire = pb.Envelope.FromString(encode(ping)).ping
    assert (wire.seq, wire.target.status, wire.target.origin) == (
        7, pb.MEMBER_STATUS_SUSPECT, "a")
    assert decode(encode(ping), LIMIT) == ping


@pytest.mark.parametrize(
    "message",
    [
        Ping(UINT64_MAX + 1, Member("a", "h:1")),
        Ping(-1, Member("a", "h:1")),
        Ack(1, Member("a", "h:1", UINT64_MAX + 1)),
        PingReq(1, Member("a", "h:1", -1)),
        Nack(UINT64_MAX + 1),
    ],
    ids=["ping-seq-too-big", "ping-seq-negative", "ack-incarnation", "ping-req-incarnation",
         "nack-seq"],
)
def test_encode_probe_value_outside_uint64_raises(message: ProbeMessage) -> None:
    """A value that cannot travel is this node's bug: ValueError, not bytes."""
    with pytest.raises(ValueError):
        encode(message)


# --- refused bytes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "envelope",
    [
        pb.Envelope(ping=pb.Ping(seq=3)),
        pb.Envelope(ack=pb.Ack(seq=3)),
        pb.Envelope(ping_req=pb.PingReq(seq=3)),
    ],
    ids=["ping", "ack", "ping_req"],
)
def test_decode_probe_without_its_member_record_raises(envelope: pb.Envelope) -> None:
    """A Ping without a target (an Ack without a member, a PingReq without a target) reads
    as a record with status 0, MEMBER_STATUS_UNSPECIFIED: a broken message."""
    with pytest.raises(DecodeError, match="unknown status 0"):
        decode(envelope.SerializeToString(), LIMIT)


def test_decode_empty_ping_raises() -> None:
    """An envelope holding a Ping with no field at all (kind set, nothing in it)."""
    envelope = pb.Envelope()
    envelope.ping.SetInParent()
    data = envelope.SerializeToString()
    assert data == b"\x2a\x00"
    with pytest.raises(DecodeError, match="unknown status 0"):
        decode(data, LIMIT)


@pytest.mark.parametrize("status", [99, 5, pb.MEMBER_STATUS_UNSPECIFIED])
@pytest.mark.parametrize("kind", ["ping", "ack", "ping_req"])
def test_decode_probe_with_unknown_status_raises(kind: str, status: int) -> None:
    record = pb.Member(name="a", address="h:1", incarnation=1)
    record.status = status  # type: ignore[assignment]  # proto3 enums are open
    envelope = pb.Envelope()
    body = getattr(envelope, kind)
    body.seq = 1
    (body.member if kind == "ack" else body.target).CopyFrom(record)
    with pytest.raises(DecodeError, match=f"unknown status {status}"):
        decode(envelope.SerializeToString(), LIMIT)


def _tag(field: int, wire_type: int) -> bytes:
    """A protobuf field key as a varint."""
    value, out = (field << 3) | wire_type, bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@pytest.mark.parametrize(
    "data",
    [
        _tag(40, 2) + b"\x00",  # a kind a newer version might add, empty
        _tag(40, 2) + b"\x04\x08\x01\x10\x02",  # ... with fields inside
        _tag(45, 0) + b"\x01",  # varint
        _tag(46, 5) + b"\x00\x00\x00\x00",  # fixed32, two-byte key
        _tag(100, 1) + b"\x00" * 8,  # fixed64
        _tag(536_870_911, 2) + b"\x00",  # the largest field number
        _tag(90, 2) + b"\x00" + _tag(91, 0) + b"\x01",  # two unknown fields
    ],
    ids=["field-40", "field-40-with-fields", "varint-45", "fixed32-46", "fixed64-100",
         "max-field", "two-fields"],
)
def test_decode_envelope_with_only_unknown_fields_raises(data: bytes) -> None:
    """A kind from a newer protocol parses as unknown fields only: the oneof is empty,
    which is a DecodeError (a new kind needs a protocol version bump)."""
    with pytest.raises(DecodeError, match="no message kind"):
        decode(data, LIMIT)


def test_decode_known_kind_with_unknown_fields_is_accepted() -> None:
    """Fields a newer peer adds next to a known kind (or inside it) are skipped: adding
    field numbers is the compatible way to grow the protocol."""
    ping = Ping(5, Member("a", "h:1", 2, Status.SUSPECT, origin="b"))
    inside = bytearray(encode(ping))
    extra_in_ping = _tag(9, 0) + b"\x07"
    assert inside[0] == 0x2A and inside[1] < 0x80  # field 5 (ping), one-byte length
    inside[1] += len(extra_in_ping)
    for data in (encode(ping) + _tag(20, 0) + b"\x01", bytes(inside) + extra_in_ping):
        assert decode(data, LIMIT) == ping


# --- fuzz --------------------------------------------------------------------------------


def _assert_probe_valid_or_refused(data: bytes) -> None:
    try:
        message = decode(data, 4096)
    except DecodeError:
        return
    if isinstance(message, Ping | PingReq):
        assert isinstance(message.target.status, Status)
    elif isinstance(message, Ack):
        assert isinstance(message.member.status, Status)
    # What decode accepts, encode can send again unchanged (any of the eight kinds).
    assert decode(encode(message), 1 << 20) == message


@settings(max_examples=200, deadline=None)
@given(message=probe_messages, data=st.data())
@example(message=Nack(0), data=None).via("a Nack is two bytes: 0x42 0x00")
def test_decode_fuzz_mutated_probe_bytes(message: ProbeMessage, data: st.DataObject) -> None:
    """Flipped and cut bytes of real probe messages decode to a message that re-encodes
    to itself, or raise DecodeError; nothing else escapes."""
    raw = bytearray(encode(message))
    if data is not None:
        for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
            index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
            raw[index] = data.draw(st.integers(min_value=0, max_value=255))
        cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
        raw = raw[:cut] + data.draw(st.binary(max_size=16))
    _assert_probe_valid_or_refused(bytes(raw))
