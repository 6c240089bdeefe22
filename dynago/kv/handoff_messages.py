"""Replica messages of ownership handoff (dynago.kv.handoff; wire: membership.proto
``KvHandoff*``, converted in dynago/transport/kv_handoff_codec.py). Routed by class to
the HandoffActor (dynago/actors/kv_handoff.py). Objects are opaque bytes in
dynago.kv.version's encoding: the receiver decodes them."""

from __future__ import annotations

from dataclasses import dataclass

from dynago.kv.model import ObjectKey


@dataclass(frozen=True, slots=True)
class HandoffChunk:
    """Old holder → new owner: objects of ``partition`` in storage-key order, to merge
    into the stored ones (never overwriting), then HandoffAck ``seq`` once durable.
    ``last``: the final chunk of this transfer (it may hold no objects)."""

    seq: int
    partition: int
    objects: tuple[tuple[ObjectKey, bytes], ...]
    last: bool = False


@dataclass(frozen=True, slots=True)
class HandoffAck:
    """New owner → old holder: chunk ``seq`` is durable here (``ok``), or why not."""

    seq: int
    partition: int
    ok: bool
    error: str = ""


HandoffMessage = HandoffChunk | HandoffAck
HANDOFF_MESSAGE_TYPES: tuple[type, ...] = (HandoffChunk, HandoffAck)
