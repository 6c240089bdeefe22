"""The wire codec: round trips, refusal of broken bytes, and the handshake check.

Tests that need bytes a correct encoder never makes build them with the generated
protobuf classes directly; dynago code outside the codec never imports them.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynago.core.member import Member, Status
from dynago.core.messages import Ack, Gossip, Nack, Ping, PingReq, StateSync
from dynago.core.tags import MAX_TAGS
from dynago.proto import membership_pb2 as pb
from dynago.transport.codec import (
    MAX_MEMBERS_PER_MESSAGE,
    DecodeError,
    Hello,
    Refusal,
    check_hello,
    decode,
    encode,
)

LIMIT = 1 << 20

printable_text = st.text(st.characters(codec="utf-8").filter(str.isprintable))
utf8_text = st.text(st.characters(codec="utf-8"))
members = st.builds(
    Member,
    name=printable_text,
    address=utf8_text,
    incarnation=st.integers(min_value=0, max_value=(1 << 64) - 1),
    status=st.sampled_from(Status),
    tags=st.lists(st.tuples(printable_text, utf8_text), max_size=4).map(tuple),
)
member_lists = st.lists(members, max_size=20).map(tuple)
uint32 = st.integers(min_value=0, max_value=(1 << 32) - 1)
hellos = st.builds(
    Hello,
    name=printable_text.filter(bool),
    address=utf8_text,
    cluster=printable_text.filter(bool),
    protocol_version=uint32,
    min_protocol_version=uint32,
)
wire_messages = st.one_of(
    hellos,
    st.builds(Refusal, reason=utf8_text),
    st.builds(Gossip, updates=member_lists),
    st.builds(StateSync, members=member_lists, reply_wanted=st.booleans(), last=st.booleans()),
)


def _gossip_bytes(*records: pb.Member) -> bytes:
    envelope = pb.Envelope()
    envelope.gossip.updates.extend(records)
    return envelope.SerializeToString()


# --- round trips -------------------------------------------------------------------------


def test_codec_round_trip_member_tags_in_every_record_kind() -> None:
    """Tags travel in gossip, state sync, ping, ack and ping-req records, in their order."""
    member = Member("a", "127.0.0.1:7001", 3, Status.SUSPECT, "b",
                    (("role", "kv"), ("zone", "eu west")))
    for message in (Gossip((member,)), StateSync((member,), True, True), Ping(1, member),
                    Ack(2, member), PingReq(3, member)):
        assert decode(encode(message), LIMIT) == message


def test_codec_member_without_tags_decodes_with_empty_tags() -> None:
    """A record from a node that knows no tags (field 6 unset) has no tags."""
    record = pb.Member(name="a", address="127.0.0.1:7001", status=pb.MEMBER_STATUS_ALIVE)
    assert decode(_gossip_bytes(record), LIMIT) == Gossip((Member("a", "127.0.0.1:7001"),))


def test_codec_refuses_record_with_more_than_max_tags() -> None:
    """The codec bounds what one record costs: more than MAX_TAGS tags is a DecodeError."""
    record = pb.Member(name="a", address="127.0.0.1:7001", status=pb.MEMBER_STATUS_ALIVE)
    for i in range(MAX_TAGS + 1):
        record.tags.entries.add(key=f"k{i:03d}", value="v")
    with pytest.raises(DecodeError, match="tags"):
        decode(_gossip_bytes(record), LIMIT)
    del record.tags.entries[-1]
    (decoded,) = decode(_gossip_bytes(record), LIMIT).updates  # type: ignore[union-attr]
    assert len(decoded.tags) == MAX_TAGS


@given(message=wire_messages)
def test_codec_round_trip_every_kind(message: Hello | Refusal | Gossip | StateSync) -> None:
    assert decode(encode(message), LIMIT) == message


@pytest.mark.parametrize(
    "message",
    [
        Gossip(updates=()),
        StateSync(members=(), reply_wanted=False, last=False),
        Refusal(reason=""),
        Hello(name="a", address="", cluster="c", protocol_version=0, min_protocol_version=0),
    ],
    ids=["gossip", "state_sync", "refusal", "hello"],
)
def test_codec_round_trip_all_default_fields(
    message: Hello | Refusal | Gossip | StateSync,
) -> None:
    """A message whose fields are all proto3 defaults still sets its oneof kind."""
    assert decode(encode(message), LIMIT) == message


@pytest.mark.parametrize(
    ("status", "wire"),
    [
        (Status.ALIVE, pb.MEMBER_STATUS_ALIVE),
        (Status.SUSPECT, pb.MEMBER_STATUS_SUSPECT),
        (Status.FAILED, pb.MEMBER_STATUS_FAILED),
        (Status.LEFT, pb.MEMBER_STATUS_LEFT),
    ],
)
def test_codec_status_wire_values_are_stable(status: Status, wire: int) -> None:
    """The core's Status numbers are precedences; the wire numbers are fixed by the .proto."""
    data = encode(Gossip(updates=(Member("a", "h:1", 7, status),)))
    assert pb.Envelope.FromString(data).gossip.updates[0].status == wire


def test_encode_incarnation_outside_uint64_raises() -> None:
    with pytest.raises(ValueError):
        encode(Gossip(updates=(Member("a", "h:1", 1 << 64),)))


# --- refused bytes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff",  # not a valid tag
        b"\x0a\x05\x0a\x01",  # hello whose length runs past the end
        b"\x12\x02\x0a\xff",  # refusal whose reason's length runs past the end
        b"\x12\x03\x0a\x01\xff",  # refusal reason that is not UTF-8
    ],
    ids=["bad-tag", "truncated", "truncated-refusal", "bad-utf8"],
)
def test_decode_garbage_raises(data: bytes) -> None:
    with pytest.raises(DecodeError, match="do not parse"):
        decode(data, LIMIT)


def test_decode_empty_envelope_raises() -> None:
    with pytest.raises(DecodeError, match="no message kind"):
        decode(b"", LIMIT)


def test_decode_unknown_envelope_kind_raises() -> None:
    """A kind from a newer protocol (field 99 here) parses as an unknown field only."""
    with pytest.raises(DecodeError, match="no message kind"):
        decode(b"\x9a\x06\x00", LIMIT)


@pytest.mark.parametrize("status", [99, pb.MEMBER_STATUS_UNSPECIFIED])
def test_decode_unknown_status_raises(status: int) -> None:
    good = pb.Member(name="a", address="h:1", status=pb.MEMBER_STATUS_ALIVE)
    bad = pb.Member(name="b", address="h:2")
    bad.status = status  # type: ignore[assignment]  # proto3 enums are open: 99 is kept
    with pytest.raises(DecodeError, match=f"member record 1 has unknown status {status}"):
        decode(_gossip_bytes(good, bad), LIMIT)


def test_decode_unknown_status_from_hand_made_bytes_raises() -> None:
    # Member{name="a", status=99}: tag 0x0a (field 1, bytes), tag 0x20 (field 4, varint).
    member = b"\x0a\x01a\x20\x63"
    state_sync = b"\x0a" + bytes([len(member)]) + member
    envelope = b"\x22" + bytes([len(state_sync)]) + state_sync
    with pytest.raises(DecodeError, match="unknown status 99"):
        decode(envelope, LIMIT)


def test_decode_oversize_data_raises() -> None:
    data = encode(Refusal(reason="x" * 100))
    assert decode(data, len(data)) == Refusal(reason="x" * 100)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode(data, len(data) - 1)


@pytest.mark.parametrize("kind", ["gossip", "state_sync"])
def test_decode_too_many_members_raises(kind: str) -> None:
    def message(count: int) -> Gossip | StateSync:
        records = tuple(Member(f"m{i}", "h:1") for i in range(count))
        if kind == "gossip":
            return Gossip(updates=records)
        return StateSync(members=records, reply_wanted=False, last=True)

    at_limit = message(MAX_MEMBERS_PER_MESSAGE)
    assert decode(encode(at_limit), LIMIT) == at_limit
    with pytest.raises(DecodeError, match="member records"):
        decode(encode(message(MAX_MEMBERS_PER_MESSAGE + 1)), LIMIT)


@pytest.mark.parametrize(
    "hello",
    [pb.Hello(cluster="c", protocol_version=1), pb.Hello(name="a", protocol_version=1)],
    ids=["no-name", "no-cluster"],
)
def test_decode_hello_without_name_or_cluster_raises(hello: pb.Hello) -> None:
    with pytest.raises(DecodeError, match="hello without"):
        decode(pb.Envelope(hello=hello).SerializeToString(), LIMIT)


def test_decode_does_not_judge_member_names_or_addresses() -> None:
    """Names and addresses are the core's to check (it counts what it drops)."""
    odd = Gossip(updates=(Member("", "not an address", 0, Status.ALIVE),))
    assert decode(encode(odd), LIMIT) == odd


# --- fuzz --------------------------------------------------------------------------------


def _assert_valid_or_refused(data: bytes) -> None:
    try:
        message = decode(data, 4096)
    except DecodeError:
        return
    assert isinstance(message, Hello | Refusal | Gossip | StateSync | Ping | Ack | PingReq | Nack)
    if isinstance(message, Gossip | StateSync):
        records = message.updates if isinstance(message, Gossip) else message.members
        assert len(records) <= MAX_MEMBERS_PER_MESSAGE
        assert all(isinstance(record.status, Status) for record in records)
    if isinstance(message, Hello):
        assert message.name and message.cluster
    # What decode accepts, encode can send again unchanged.
    assert decode(encode(message), 1 << 20) == message


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048))
def test_decode_fuzz_returns_message_or_raises_decode_error(data: bytes) -> None:
    _assert_valid_or_refused(data)


@settings(max_examples=300, deadline=None)
@given(message=wire_messages, data=st.data())
def test_decode_fuzz_mutated_valid_bytes(
    message: Hello | Refusal | Gossip | StateSync, data: st.DataObject
) -> None:
    """Random bytes rarely get past the first tag; flipping bytes of real messages does."""
    raw = bytearray(encode(message))
    if raw:
        for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
            index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
            raw[index] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    _assert_valid_or_refused(bytes(raw[:cut]) + data.draw(st.binary(max_size=16)))


# --- handshake ---------------------------------------------------------------------------


def _hello(
    name: str = "n1",
    address: str = "127.0.0.1:7001",
    cluster: str = "prod",
    versions: tuple[int, int] = (1, 1),
) -> Hello:
    low, high = versions
    return Hello(name, address, cluster, protocol_version=high, min_protocol_version=low)


def test_check_hello_same_cluster_accepted() -> None:
    assert check_hello(_hello(), _hello(name="n2", address="127.0.0.1:7002")) is None


def test_check_hello_overlapping_versions_accepted() -> None:
    local = _hello(versions=(1, 2))
    remote = _hello(name="n2", versions=(2, 3))
    assert check_hello(local, remote) is None
    assert check_hello(remote, local) is None


def test_check_hello_other_cluster_refused_naming_both() -> None:
    reason = check_hello(_hello(cluster="prod"), _hello(name="n2", cluster="staging"))
    assert reason == "cluster name 'staging' differs from ours 'prod'"


def test_check_hello_remote_too_old_refused() -> None:
    reason = check_hello(_hello(versions=(2, 3)), _hello(name="n2", versions=(1, 1)))
    assert reason == "protocol version 1 not supported (we speak 2..3)"


def test_check_hello_remote_too_new_refused() -> None:
    reason = check_hello(_hello(versions=(1, 1)), _hello(name="n2", versions=(3, 3)))
    assert reason is not None
    assert "3" in reason and "we speak 1..1" in reason


def test_check_hello_self_refused() -> None:
    reason = check_hello(_hello(), _hello())
    assert reason is not None and reason.startswith("this is ourselves")


def test_check_hello_same_address_other_name_is_accepted() -> None:
    """A node restarted under a new name on the old address is a different member."""
    assert check_hello(_hello(), _hello(name="other")) is None


def test_check_hello_same_name_other_address_refused() -> None:
    """Two live nodes must not share a name: the member map is keyed by it."""
    reason = check_hello(_hello(), _hello(address="127.0.0.1:7009"))
    assert reason is not None and "share a name" in reason


def test_check_hello_reason_is_one_short_line() -> None:
    reason = check_hello(_hello(), _hello(cluster="evil\n" + "x" * 10_000))
    assert reason is not None
    assert "\n" not in reason and len(reason) < 200
