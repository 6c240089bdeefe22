"""Batch envelopes (Envelope kind 32): several encoded Envelopes written as one gRPC message.

A stream's writer that finds more messages queued behind the one it is about to write
sends them together (it never waits for more: a batch adds no latency), which costs one
``call.write`` — the dearest step of a message on the send side — instead of one each.
Only peers that speak ``BATCH_PROTOCOL_VERSION`` or later get batches; older ones are
written one message at a time.

The receiver splits a batch back into the Envelopes it holds and handles each as if it
had arrived alone (counted, decoded and checked one by one).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import message as _protobuf_message

from dynago.proto import membership_pb2 as pb
from dynago.transport.codec import DecodeError

BATCH_PROTOCOL_VERSION = 3
"""The first protocol version whose nodes understand batch envelopes."""

MAX_BATCH_MESSAGES = 64
"""Most envelopes one batch holds; a received batch with more is a DecodeError (it bounds
what one read delivers ahead of the stream's inbound window)."""

PART_OVERHEAD_BYTES = 6
"""Bytes a batch adds per envelope at most (tag and length varint, under 2**28 bytes)."""

BATCH_OVERHEAD_BYTES = 8
"""Bytes a batch adds around its parts at most (the envelope's field tag and length)."""

_BATCH_TAG = b"\x82\x02"
"""How a serialized Envelope holding a Batch begins: field 32, wire type 2 (the oneof
holds one field, and no other field number starts with these two bytes)."""


def encode_batch(parts: Sequence[bytes]) -> bytes:
    """One Envelope holding ``parts`` (each an encoded, non-batch Envelope)."""
    if not 2 <= len(parts) <= MAX_BATCH_MESSAGES:
        raise ValueError(f"a batch holds 2..{MAX_BATCH_MESSAGES} envelopes, not {len(parts)}")
    envelope = pb.Envelope()
    envelope.batch.envelopes.extend(parts)
    return envelope.SerializeToString()


def is_batch(data: bytes) -> bool:
    """Whether the encoded Envelope ``data`` is a batch (a check of its first bytes)."""
    return data.startswith(_BATCH_TAG)


def split_batch(data: bytes, max_bytes: int) -> list[bytes]:
    """The encoded Envelopes in the batch ``data``; DecodeError if it is not a well-formed
    batch: over ``max_bytes``, unparsable, empty, over ``MAX_BATCH_MESSAGES``, nested."""
    if len(data) > max_bytes:
        raise DecodeError(f"batch of {len(data)} bytes exceeds the limit of {max_bytes}")
    envelope = pb.Envelope()
    try:
        envelope.ParseFromString(data)
    except _protobuf_message.DecodeError as exc:
        raise DecodeError(f"bytes do not parse as an Envelope: {exc}") from exc
    if envelope.WhichOneof("kind") != "batch":
        raise DecodeError("not a batch envelope")
    parts = list(envelope.batch.envelopes)
    if not parts or len(parts) > MAX_BATCH_MESSAGES:
        raise DecodeError(f"a batch holds 1..{MAX_BATCH_MESSAGES} envelopes, not {len(parts)}")
    if any(is_batch(part) for part in parts):
        raise DecodeError("a batch inside a batch")
    return parts
