"""Anti-entropy messages at the wire edge: dynago.kv.aae_messages ↔ protobuf ``KvAae*``.

Called by dynago/transport/kv_codec.py for the ``kv_aae_*`` kinds. ``decode_aae`` raises
``ValueError`` with a short reason when the *peer* broke the protocol: an unknown level,
ids and hashes of different lengths, more entries than the bounds below, a key that is
not a client storage key (empty, under the node-local ``NUL`` prefix, or without the
bucket's ``NUL``).
"""

from __future__ import annotations

from collections.abc import Iterable

from dynago.kv.aae_messages import (
    BRANCHES,
    ROOT,
    SEGMENTS,
    AaeHashes,
    AaeHashesAsk,
    AaeKeys,
    AaeKeysAsk,
    AaeMessage,
    AaePush,
    AaeRefused,
)
from dynago.kv.tictac import SEGMENTS as SEGMENT_COUNT
from dynago.proto import membership_pb2 as pb

MAX_AAE_KEYS = 10_000
"""Most keys one anti-entropy message may carry."""

_MAX_IDS = SEGMENT_COUNT


def encode_aae(envelope: pb.Envelope, message: AaeMessage) -> None:
    """Fill ``envelope`` with ``message`` (TypeError for anything else)."""
    match message:
        case AaeHashesAsk():
            ask = envelope.kv_aae_hashes_ask
            ask.SetInParent()
            ask.exchange_id, ask.partition, ask.level = (message.exchange_id,
                                                         message.partition, message.level)
            ask.ids.extend(message.ids)
        case AaeHashes():
            out = envelope.kv_aae_hashes
            out.SetInParent()
            out.exchange_id, out.partition, out.level = (message.exchange_id,
                                                         message.partition, message.level)
            out.ids.extend(message.ids)
            out.hashes.extend(message.hashes)
        case AaeKeysAsk():
            keys_ask = envelope.kv_aae_keys_ask
            keys_ask.SetInParent()
            keys_ask.exchange_id, keys_ask.partition = message.exchange_id, message.partition
            keys_ask.segments.extend(message.segments)
            keys_ask.keys.extend(message.keys)
        case AaeKeys():
            keys = envelope.kv_aae_keys
            keys.SetInParent()
            keys.exchange_id, keys.partition = message.exchange_id, message.partition
            keys.keys.extend(message.keys)
            keys.hashes.extend(message.hashes)
        case AaePush():
            push = envelope.kv_aae_push
            push.SetInParent()
            push.exchange_id, push.partition = message.exchange_id, message.partition
            push.keys.extend(message.keys)
        case AaeRefused():
            refused = envelope.kv_aae_refused
            refused.SetInParent()
            refused.exchange_id, refused.reason = message.exchange_id, message.reason
        case _:
            raise TypeError(f"not an anti-entropy message: {type(message).__name__}")


def _ids(values: Iterable[int], what: str) -> tuple[int, ...]:
    ids = tuple(values)
    if len(ids) > _MAX_IDS or any(not 0 <= i < SEGMENT_COUNT for i in ids):
        raise ValueError(f"anti-entropy {what} out of range")
    return ids


def _storage_keys(values: Iterable[bytes]) -> tuple[bytes, ...]:
    keys = tuple(values)
    if len(keys) > MAX_AAE_KEYS:
        raise ValueError(f"{len(keys)} keys in one anti-entropy message, more than "
                         f"{MAX_AAE_KEYS}")
    for key in keys:
        if not key or key[0] == 0 or b"\x00" not in key or key.endswith(b"\x00"):
            raise ValueError("anti-entropy key is not a client storage key")
    return keys


def decode_aae(envelope: pb.Envelope, kind: str) -> AaeMessage:
    """The anti-entropy message of an Envelope whose oneof is ``kind``."""
    if kind == "kv_aae_hashes_ask":
        ask = envelope.kv_aae_hashes_ask
        if ask.level not in (ROOT, BRANCHES, SEGMENTS):
            raise ValueError(f"anti-entropy level {ask.level} unknown")
        return AaeHashesAsk(ask.exchange_id, ask.partition, ask.level, _ids(ask.ids, "ids"))
    if kind == "kv_aae_hashes":
        out = envelope.kv_aae_hashes
        if out.level not in (ROOT, BRANCHES, SEGMENTS):
            raise ValueError(f"anti-entropy level {out.level} unknown")
        if len(out.ids) != len(out.hashes):
            raise ValueError("anti-entropy ids and hashes differ in number")
        return AaeHashes(out.exchange_id, out.partition, out.level, _ids(out.ids, "ids"),
                         tuple(out.hashes))
    if kind == "kv_aae_keys_ask":
        keys_ask = envelope.kv_aae_keys_ask
        return AaeKeysAsk(keys_ask.exchange_id, keys_ask.partition,
                          _ids(keys_ask.segments, "segments"), _storage_keys(keys_ask.keys))
    if kind == "kv_aae_keys":
        keys = envelope.kv_aae_keys
        if len(keys.keys) != len(keys.hashes):
            raise ValueError("anti-entropy keys and hashes differ in number")
        return AaeKeys(keys.exchange_id, keys.partition, _storage_keys(keys.keys),
                       tuple(keys.hashes))
    if kind == "kv_aae_push":
        push = envelope.kv_aae_push
        return AaePush(push.exchange_id, push.partition, _storage_keys(push.keys))
    if kind == "kv_aae_refused":
        refused = envelope.kv_aae_refused
        return AaeRefused(refused.exchange_id, refused.reason[:200])
    raise ValueError(f"unknown anti-entropy message kind {kind!r}")
