"""Handoff messages at the wire edge: dynago.kv.handoff_messages ↔ protobuf (called by
dynago/transport/codec.py for the ``kv_handoff_*`` kinds). ``decode_handoff`` raises
ValueError with a short reason when the peer broke the protocol: a missing bucket or
key, more objects than ``MAX_OBJECTS_PER_CHUNK``."""

from __future__ import annotations

from dynago.kv.handoff_messages import HandoffAck, HandoffChunk, HandoffMessage
from dynago.kv.model import ObjectKey
from dynago.proto import membership_pb2 as pb

MAX_OBJECTS_PER_CHUNK = 10_000
"""Most objects one chunk may carry (a bound on what one message costs the receiver)."""


def encode_handoff(envelope: pb.Envelope, message: HandoffMessage) -> None:
    """Fill ``envelope`` with ``message`` (TypeError for anything else)."""
    match message:
        case HandoffChunk():
            chunk = envelope.kv_handoff_chunk
            chunk.SetInParent()
            chunk.seq, chunk.partition, chunk.last = message.seq, message.partition, message.last
            for key, obj in message.objects:
                chunk.objects.add(bucket=key.bucket, key=key.key, object=obj)
        case HandoffAck():
            ack = envelope.kv_handoff_ack
            ack.SetInParent()
            ack.seq, ack.partition, ack.ok, ack.error = (message.seq, message.partition,
                                                         message.ok, message.error)
        case _:
            raise TypeError(f"not a handoff message: {type(message).__name__}")


def decode_handoff(envelope: pb.Envelope, kind: str) -> HandoffMessage:
    """The handoff message of an Envelope whose oneof is ``kind``."""
    if kind == "kv_handoff_chunk":
        chunk = envelope.kv_handoff_chunk
        if len(chunk.objects) > MAX_OBJECTS_PER_CHUNK:
            raise ValueError(f"{len(chunk.objects)} objects in one handoff chunk, more than "
                             f"{MAX_OBJECTS_PER_CHUNK}")
        objects = []
        for o in chunk.objects:
            if not o.bucket or not o.key or "\x00" in o.bucket:
                raise ValueError("handoff object without a valid bucket or key")
            objects.append((ObjectKey(o.bucket, o.key), o.object))
        return HandoffChunk(chunk.seq, chunk.partition, tuple(objects), chunk.last)
    if kind == "kv_handoff_ack":
        ack = envelope.kv_handoff_ack
        return HandoffAck(ack.seq, ack.partition, ack.ok, ack.error)
    raise ValueError(f"unknown handoff message kind {kind!r}")
