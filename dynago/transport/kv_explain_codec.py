"""KvExplain / KvExplainReply (dynago.kv.explain) ↔ protobuf, for transport/kv_codec.py.

``decode_explain`` raises ``ValueError`` with a short reason when the peer broke the
protocol: a missing bucket or key, more owners, history records or hints than
dynago.kv.explain allows, a history record with a time that is not finite.
"""

from __future__ import annotations

import math

from dynago.kv.explain import (
    MAX_HINTS,
    MAX_HISTORY,
    MAX_OWNERS,
    HintCopy,
    HistoryEntry,
    KvExplain,
    KvExplainReply,
)
from dynago.kv.model import ObjectKey
from dynago.proto import membership_pb2 as pb

EXPLAIN_KINDS = ("kv_explain", "kv_explain_reply")
"""The Envelope oneof names this module decodes."""


def encode_explain(envelope: pb.Envelope, message: KvExplain | KvExplainReply) -> None:
    """Fill ``envelope`` with ``message``."""
    if isinstance(message, KvExplain):
        ask = envelope.kv_explain
        ask.request_id = message.request_id
        ask.bucket, ask.key = message.key.bucket, message.key.key
        ask.owners.extend(message.owners)
        return
    reply = envelope.kv_explain_reply
    reply.SetInParent()
    reply.request_id = message.request_id
    reply.found = message.obj is not None
    if message.obj is not None:
        reply.object = message.obj
    for entry in message.history:
        reply.history.add(at=entry.at, how=entry.how, peer=entry.peer, size=entry.size)
    for hint in message.hints:
        reply.hints.add(owner=hint.owner, data=hint.data)
    reply.error = message.error


def decode_explain(envelope: pb.Envelope, kind: str) -> KvExplain | KvExplainReply:
    """The message of an Envelope whose oneof is ``kind`` (one of EXPLAIN_KINDS)."""
    if kind == "kv_explain":
        ask = envelope.kv_explain
        if not ask.bucket or not ask.key or "\x00" in ask.bucket:
            raise ValueError("explain request without a valid bucket or key")
        if len(ask.owners) > MAX_OWNERS:
            raise ValueError(f"explain request naming {len(ask.owners)} owners, "
                             f"more than {MAX_OWNERS}")
        return KvExplain(ask.request_id, ObjectKey(ask.bucket, ask.key), tuple(ask.owners))
    reply = envelope.kv_explain_reply
    if len(reply.history) > MAX_HISTORY or len(reply.hints) > MAX_HINTS:
        raise ValueError(f"explain reply with {len(reply.history)} history records and "
                         f"{len(reply.hints)} hints (at most {MAX_HISTORY} and {MAX_HINTS})")
    if any(not math.isfinite(r.at) for r in reply.history):
        raise ValueError("explain reply with a history time that is not finite")
    return KvExplainReply(
        reply.request_id, reply.object if reply.found else None,
        tuple(HistoryEntry(r.at, r.how, r.peer, r.size) for r in reply.history),
        tuple(HintCopy(h.owner, h.data) for h in reply.hints), reply.error)
