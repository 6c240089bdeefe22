"""The edge between protobuf and the core: wire bytes in, frozen dataclasses out, and back.

This is the only module that imports the generated protobuf code
(``dynago.proto.membership_pb2``); protobuf classes never leave it. Everything else —
actors, the gRPC transport, tests — sees ``Hello``, ``Refusal`` and the core's ``Gossip``
and ``StateSync`` of ``Member`` records.

Errors are split by who is at fault (as h11/wsproto do):

* ``decode`` raises ``DecodeError`` when the *peer* broke the protocol: too many bytes,
  bytes that do not parse, an empty envelope, an unknown status, a Hello without name or
  cluster, more than ``MAX_MEMBERS_PER_MESSAGE`` member records. The caller drops the
  message (or the stream), logs and counts it.
* ``encode`` raises ``ValueError``/``TypeError`` when *we* misuse it (a record that cannot
  travel, such as an incarnation outside uint64): that is a bug on this node.

``decode`` does not check member names, addresses or tags: the core does
(``Member.problem``) and counts what it drops. It only bounds the cost of a message for
the core (records per message, tags per record). Tags keep the order they came in, so a
record whose tags are not in canonical order is one the core drops.

Unknown enum values: proto3 enums are *open*, so protobuf parses a ``status`` it does not
know (say 99, from a newer or broken peer) without error and keeps the raw integer in the
field (``member.status == 99``); it does not move it to the unknown fields as proto2 would.
The codec therefore maps every status through an explicit table, and a value missing from
it (99, or 0 = ``MEMBER_STATUS_UNSPECIFIED``, which a field left unset also reads as) is a
``DecodeError``. Likewise an envelope whose oneof is empty — or set to a kind added by a
newer protocol version, which this one parses as an unknown field — is refused: new kinds
need a protocol version bump so that ``check_hello`` keeps such peers apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf import message as _protobuf_message

from dynago.core.member import Member, Status
from dynago.core.messages import Ack, Gossip, Nack, Ping, PingReq, StateSync
from dynago.core.tags import MAX_TAGS
from dynago.kv.aae_messages import AAE_MESSAGE_TYPES, AaeMessage
from dynago.kv.handoff_messages import HandoffAck, HandoffChunk, HandoffMessage
from dynago.kv.messages import KV_MESSAGE_TYPES, KvMessage
from dynago.proto import membership_pb2 as pb
from dynago.transport.kv_codec import decode_kv, encode_kv
from dynago.transport.kv_handoff_codec import decode_handoff, encode_handoff

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

    _MemberRecords = RepeatedCompositeFieldContainer[pb.Member]

MAX_MEMBERS_PER_MESSAGE = 4096
"""Most member records one received message may hold; more is a DecodeError.

Bounds the work (and the Python objects) one message can cost the core, whatever the
byte limit: an empty record takes only 2 bytes on the wire.
"""

_SHOWN_CHARS = 64
"""Longest name shown in a check_hello reason (a peer picks its names; reasons are logged)."""


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message each way on a stream: who the sender is and what it speaks."""

    name: str
    address: str
    cluster: str
    protocol_version: int
    min_protocol_version: int
    nonce: bytes = b""
    proof: bytes = b""
    ring_partitions: int = 0
    """The key-value ring's partition count (0: not said; check_hello then skips it)."""
    n_val: int = 0
    """Replicas per key (0: not said)."""


@dataclass(frozen=True, slots=True)
class Auth:
    """The dialler's proof of the cluster key (transport.handshake), after both Hellos."""

    proof: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the sender will not keep this stream; it closes the stream after sending it."""

    reason: str


class DecodeError(ValueError):
    """The peer broke the protocol: its bytes are not a message we accept."""


_WireMessage = (Hello | Refusal | Auth | Gossip | StateSync | Ping | Ack | PingReq | Nack
                | KvMessage | HandoffMessage | AaeMessage)

_STATUS_TO_WIRE: dict[Status, pb.MemberStatus.ValueType] = {
    Status.ALIVE: pb.MEMBER_STATUS_ALIVE,
    Status.SUSPECT: pb.MEMBER_STATUS_SUSPECT,
    Status.FAILED: pb.MEMBER_STATUS_FAILED,
    Status.LEFT: pb.MEMBER_STATUS_LEFT,
}
# Not derived from the integer values: the core's Status is a precedence (ALIVE = 0) while
# the wire keeps 0 for "unspecified", so the two numberings differ on purpose.
_STATUS_FROM_WIRE: dict[int, Status] = {wire: core for core, wire in _STATUS_TO_WIRE.items()}


def encode(message: _WireMessage) -> bytes:
    """Serialize one message as a ``dynago.v1.Envelope``.

    Raises ValueError for a member record that cannot travel (incarnation outside uint64,
    status not a ``Status``), TypeError for anything that is not a wire message.
    """
    envelope = pb.Envelope()
    match message:
        case Hello():
            hello = envelope.hello
            hello.SetInParent()
            hello.name = message.name
            hello.address = message.address
            hello.cluster = message.cluster
            hello.protocol_version = message.protocol_version
            hello.min_protocol_version = message.min_protocol_version
            hello.nonce = message.nonce
            hello.proof = message.proof
            hello.ring_partitions = message.ring_partitions
            hello.n_val = message.n_val
        case Auth():
            envelope.auth.SetInParent()
            envelope.auth.proof = message.proof
        case Refusal():
            envelope.refusal.SetInParent()
            envelope.refusal.reason = message.reason
        case Gossip():
            envelope.gossip.SetInParent()
            _encode_members(envelope.gossip.updates, message.updates)
        case StateSync():
            sync = envelope.state_sync
            sync.SetInParent()
            _encode_members(sync.members, message.members)
            sync.reply_wanted = message.reply_wanted
            sync.last = message.last
        case Ping():
            envelope.ping.seq = message.seq
            _encode_member(envelope.ping.target, message.target)
        case Ack():
            envelope.ack.seq = message.seq
            _encode_member(envelope.ack.member, message.member)
        case PingReq():
            envelope.ping_req.seq = message.seq
            _encode_member(envelope.ping_req.target, message.target)
        case Nack():
            envelope.nack.SetInParent()
            envelope.nack.seq = message.seq
        case HandoffChunk() | HandoffAck():
            encode_handoff(envelope, message)
        case _ if isinstance(message, KV_MESSAGE_TYPES):
            encode_kv(envelope, message)
        case _ if isinstance(message, AAE_MESSAGE_TYPES):
            encode_kv(envelope, message)
        case _:
            raise TypeError(f"not a wire message: {type(message).__name__}")
    return envelope.SerializeToString()


def _wire_status(member: Member) -> pb.MemberStatus.ValueType:
    status = _STATUS_TO_WIRE.get(member.status)
    if status is None:
        raise ValueError(f"member {member.name!r} has status {member.status!r}, not a Status")
    return status


def _encode_members(target: _MemberRecords, members: Iterable[Member]) -> None:
    for member in members:
        # protobuf itself raises ValueError for an incarnation outside 0..2**64-1.
        record = target.add(
            name=member.name,
            address=member.address,
            incarnation=member.incarnation,
            status=_wire_status(member),
            origin=member.origin,
        )
        if member.tags:
            entries = record.tags.entries
            for key, value in member.tags:
                entries.add(key=key, value=value)


def _encode_member(target: pb.Member, member: Member) -> None:
    target.name = member.name
    target.address = member.address
    target.incarnation = member.incarnation
    target.status = _wire_status(member)
    target.origin = member.origin
    if member.tags:
        entries = target.tags.entries
        for key, value in member.tags:
            entries.add(key=key, value=value)


def member_size(member: Member) -> int:
    """Bytes of one member record inside a message (its protobuf ``Member``, without the
    field tag and length that precede it)."""
    record = pb.Member()
    _encode_member(record, member)
    return record.ByteSize()


def varint_size(value: int) -> int:
    """Bytes of a protobuf varint holding ``value`` (>= 0)."""
    return max(1, (value.bit_length() + 6) // 7)


def decode(data: bytes, max_bytes: int) -> _WireMessage:
    """Parse one ``dynago.v1.Envelope``; raise DecodeError (short reason) if it is not one.

    ``max_bytes`` is checked before parsing, so an oversized message costs nothing.
    """
    if len(data) > max_bytes:
        raise DecodeError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    envelope = pb.Envelope()
    try:
        envelope.ParseFromString(data)
    except _protobuf_message.DecodeError as exc:
        raise DecodeError(f"bytes do not parse as an Envelope: {exc}") from exc
    kind = envelope.WhichOneof("kind")
    if kind is None:
        raise DecodeError("envelope holds no message kind this protocol version knows")
    if kind == "hello":
        hello = envelope.hello
        if not hello.name or not hello.cluster:
            raise DecodeError("hello without a name or a cluster")
        return Hello(
            name=hello.name,
            address=hello.address,
            cluster=hello.cluster,
            protocol_version=hello.protocol_version,
            min_protocol_version=hello.min_protocol_version,
            nonce=hello.nonce,
            proof=hello.proof,
            ring_partitions=hello.ring_partitions,
            n_val=hello.n_val,
        )
    if kind == "auth":
        return Auth(proof=envelope.auth.proof)
    if kind == "refusal":
        return Refusal(reason=envelope.refusal.reason)
    if kind == "gossip":
        return Gossip(updates=_decode_members(envelope.gossip.updates))
    if kind == "state_sync":
        sync = envelope.state_sync
        return StateSync(
            members=_decode_members(sync.members),
            reply_wanted=sync.reply_wanted,
            last=sync.last,
        )
    if kind == "ping":
        return Ping(seq=envelope.ping.seq, target=_decode_member(envelope.ping.target, 0))
    if kind == "ack":
        return Ack(seq=envelope.ack.seq, member=_decode_member(envelope.ack.member, 0))
    if kind == "ping_req":
        ping_req = envelope.ping_req
        return PingReq(seq=ping_req.seq, target=_decode_member(ping_req.target, 0))
    if kind == "nack":
        return Nack(seq=envelope.nack.seq)
    if kind.startswith("kv_handoff_"):
        try:
            return decode_handoff(envelope, kind)
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc
    if kind.startswith("kv_"):
        try:
            return decode_kv(envelope, kind)
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc
    raise DecodeError(f"envelope kind {kind!r} is not handled")


def _decode_members(records: _MemberRecords) -> tuple[Member, ...]:
    if len(records) > MAX_MEMBERS_PER_MESSAGE:
        raise DecodeError(
            f"{len(records)} member records in one message, more than {MAX_MEMBERS_PER_MESSAGE}"
        )
    return tuple(_decode_member(record, index) for index, record in enumerate(records))


def _decode_member(record: pb.Member, index: int) -> Member:
    status = _STATUS_FROM_WIRE.get(record.status)
    if status is None:
        raise DecodeError(f"member record {index} has unknown status {int(record.status)}")
    if not record.HasField("tags"):  # cheap, unlike touching a repeated field
        return Member(record.name, record.address, record.incarnation, status, record.origin)
    entries = record.tags.entries
    if len(entries) > MAX_TAGS:
        raise DecodeError(f"member record {index} has {len(entries)} tags, "
                          f"more than {MAX_TAGS}")
    tags = tuple((tag.key, tag.value) for tag in entries)
    return Member(record.name, record.address, record.incarnation, status, record.origin, tags)


def check_hello(local: Hello, remote: Hello) -> str | None:
    """None if a stream between ``local`` and ``remote`` may go on, else a one-line reason.

    Compatible means the same cluster name, and each side speaks a version the other
    still accepts: ``remote.protocol_version >= local.min_protocol_version`` and
    ``local.protocol_version >= remote.min_protocol_version``. A remote with both our name
    and our address is ourselves (e.g. our own address in the seed list) and is refused;
    so is another node that uses our name.
    """
    if remote.cluster != local.cluster:
        return f"cluster name {_shown(remote.cluster)} differs from ours {_shown(local.cluster)}"
    ours = f"we speak {local.min_protocol_version}..{local.protocol_version}"
    if remote.protocol_version < local.min_protocol_version:
        return f"protocol version {remote.protocol_version} not supported ({ours})"
    if remote.min_protocol_version > local.protocol_version:
        return (
            f"peer needs protocol version {remote.min_protocol_version} or newer "
            f"(it speaks {remote.min_protocol_version}..{remote.protocol_version}, {ours})"
        )
    if (remote.ring_partitions and local.ring_partitions
            and (remote.ring_partitions, remote.n_val) != (local.ring_partitions, local.n_val)):
        return (f"key-value ring differs: the peer has {remote.ring_partitions} partitions and "
                f"{remote.n_val} replicas per key, we have {local.ring_partitions} and "
                f"{local.n_val}")
    if remote.name == local.name and remote.address == local.address:
        return f"this is ourselves ({_shown(local.name)} at {_shown(local.address)})"
    if remote.name == local.name:
        return (f"node name {_shown(local.name)} is this node's own name: two nodes must "
                f"not share a name (the other is at {_shown(remote.address)})")
    return None


def _shown(text: str) -> str:
    """``repr`` of a peer-chosen string, cut short so a reason stays one short line."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + "..."
    return repr(text)
