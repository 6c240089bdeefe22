"""The key-value store's replica messages at the wire edge: dynago.kv.messages ↔ protobuf.

Called by dynago/transport/codec.py for the ``kv_*`` kinds of an Envelope; like it, the
only place these protobuf classes are touched. ``decode_kv`` raises ``ValueError`` with a
short reason when the *peer* broke the protocol (codec turns it into a DecodeError): a
missing bucket or key, a key or bucket that is not valid text, more keys than
``MAX_KEYS_PER_LIST``. Objects stay opaque bytes here: the KV actor decodes them.
"""

from __future__ import annotations

from dynago.kv.aae_messages import AAE_MESSAGE_TYPES, AaeMessage
from dynago.kv.explain import KvExplain, KvExplainReply
from dynago.kv.messages import (
    ForwardPut,
    ForwardReply,
    KeyList,
    KvMessage,
    ListKeys,
    ReplicaGet,
    ReplicaGetReply,
    ReplicaPut,
    ReplicaPutAck,
)
from dynago.kv.model import Content, ObjectKey
from dynago.proto import membership_pb2 as pb
from dynago.transport.kv_aae_codec import decode_aae, encode_aae
from dynago.transport.kv_explain_codec import EXPLAIN_KINDS, decode_explain, encode_explain

MAX_KEYS_PER_LIST = 100_000
"""Most keys one KvKeyList may carry (a bound on what one message costs)."""

MAX_META_ENTRIES = 64
"""Most user-metadata entries one content may carry."""


def encode_kv(envelope: pb.Envelope, message: KvMessage | AaeMessage) -> None:
    """Fill ``envelope`` with ``message`` (TypeError for anything else)."""
    if isinstance(message, AAE_MESSAGE_TYPES):
        encode_aae(envelope, message)  # type: ignore[arg-type]
        return
    match message:
        case ReplicaPut():
            put = envelope.kv_put
            put.request_id = message.request_id
            put.bucket, put.key = message.key.bucket, message.key.key
            put.object = message.obj
            put.origin = message.origin
            put.hint_for = message.hint_for
        case ReplicaPutAck():
            ack = envelope.kv_put_ack
            ack.SetInParent()
            ack.request_id = message.request_id
            ack.ok = message.ok
            ack.error = message.error
        case ReplicaGet():
            get = envelope.kv_get
            get.request_id = message.request_id
            get.bucket, get.key = message.key.bucket, message.key.key
            get.hint_for = message.hint_for
        case ReplicaGetReply():
            reply = envelope.kv_get_reply
            reply.SetInParent()
            reply.request_id = message.request_id
            reply.found = message.obj is not None
            if message.obj is not None:
                reply.object = message.obj
            reply.error = message.error
        case ForwardPut():
            fwd = envelope.kv_forward
            fwd.request_id = message.request_id
            fwd.bucket, fwd.key = message.key.bucket, message.key.key
            _encode_content(fwd.content, message.content)
            fwd.has_context = message.context is not None
            if message.context is not None:
                fwd.context = message.context
            fwd.overwrite = message.overwrite
            fwd.w, fwd.pw, fwd.timeout_ms = message.w, message.pw, message.timeout_ms
        case ForwardReply():
            rep = envelope.kv_forward_reply
            rep.SetInParent()
            rep.request_id = message.request_id
            rep.status = message.status
            rep.error = message.error
            rep.object = message.obj
            rep.answered, rep.needed = message.answered, message.needed
        case ListKeys():
            ask = envelope.kv_list_keys
            ask.SetInParent()
            ask.request_id = message.request_id
            ask.bucket = message.bucket
        case KeyList():
            keys = envelope.kv_key_list
            keys.SetInParent()
            keys.request_id = message.request_id
            keys.keys.extend(message.keys)
            keys.error = message.error
        case KvExplain() | KvExplainReply():
            encode_explain(envelope, message)
        case _:
            raise TypeError(f"not a KV message: {type(message).__name__}")


def _encode_content(target: pb.KvContent, content: Content) -> None:
    target.SetInParent()
    target.value = content.value
    target.content_type = content.content_type
    for name, value in content.meta:
        target.meta.add(key=name, value=value)
    target.deleted = content.deleted
    target.last_modified_us = content.last_modified_us


def _key(bucket: str, key: str) -> ObjectKey:
    if not bucket or not key:
        raise ValueError("KV message without a bucket or a key")
    if "\x00" in bucket:
        raise ValueError("KV message with a NUL in its bucket")
    return ObjectKey(bucket, key)


def _hint_for(owner: str) -> str:
    if "\x00" in owner:
        raise ValueError("KV message with a NUL in the node a hint is for")
    return owner


def decode_kv(envelope: pb.Envelope, kind: str) -> KvMessage | AaeMessage:
    """The KV message of an Envelope whose oneof is ``kind`` (a ``kv_*`` field name)."""
    if kind.startswith("kv_aae_"):
        return decode_aae(envelope, kind)
    if kind == "kv_put":
        put = envelope.kv_put
        return ReplicaPut(put.request_id, _key(put.bucket, put.key), put.object, put.origin,
                          _hint_for(put.hint_for))
    if kind == "kv_put_ack":
        ack = envelope.kv_put_ack
        return ReplicaPutAck(ack.request_id, ack.ok, ack.error)
    if kind == "kv_get":
        get = envelope.kv_get
        return ReplicaGet(get.request_id, _key(get.bucket, get.key), _hint_for(get.hint_for))
    if kind == "kv_get_reply":
        reply = envelope.kv_get_reply
        return ReplicaGetReply(reply.request_id, reply.object if reply.found else None,
                               reply.error)
    if kind == "kv_forward":
        fwd = envelope.kv_forward
        c = fwd.content
        if len(c.meta) > MAX_META_ENTRIES:
            raise ValueError(f"content with {len(c.meta)} metadata entries, "
                             f"more than {MAX_META_ENTRIES}")
        content = Content(value=c.value, content_type=c.content_type,
                          meta=tuple((m.key, m.value) for m in c.meta), deleted=c.deleted,
                          last_modified_us=c.last_modified_us)
        return ForwardPut(fwd.request_id, _key(fwd.bucket, fwd.key), content,
                          fwd.context if fwd.has_context else None, fwd.overwrite,
                          fwd.w, fwd.pw, fwd.timeout_ms)
    if kind == "kv_forward_reply":
        rep = envelope.kv_forward_reply
        return ForwardReply(rep.request_id, rep.status, rep.error, rep.object,
                            rep.answered, rep.needed)
    if kind == "kv_list_keys":
        ask = envelope.kv_list_keys
        if not ask.bucket:
            raise ValueError("key listing without a bucket")
        return ListKeys(ask.request_id, ask.bucket)
    if kind == "kv_key_list":
        keys = envelope.kv_key_list
        if len(keys.keys) > MAX_KEYS_PER_LIST:
            raise ValueError(f"{len(keys.keys)} keys in one list, more than {MAX_KEYS_PER_LIST}")
        return KeyList(keys.request_id, tuple(keys.keys), keys.error)
    if kind in EXPLAIN_KINDS:
        return decode_explain(envelope, kind)
    raise ValueError(f"unknown KV message kind {kind!r}")
