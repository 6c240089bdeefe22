"""Replica messages of the key-value store: what nodes send each other about objects.

Frozen dataclasses, one per wire kind (dynago/proto/membership.proto ``Kv*``); the
transport converts them at the edge (dynago/transport/kv_codec.py). Objects travel as
opaque bytes in dynago.kv.version's encoding: the receiver decodes them and drops (and
counts) one that does not decode. ``request_id`` is the sender's, unique per sender.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynago.kv.explain import KvExplain, KvExplainReply
from dynago.kv.model import Content, ObjectKey


@dataclass(frozen=True, slots=True)
class ReplicaPut:
    """Coordinator → replica: merge ``obj`` into the stored object, durably, then ack."""

    request_id: int
    key: ObjectKey
    obj: bytes
    origin: str = ""
    """Why it is sent, for the receiver's write history: "" a coordinated write's
    replica, else "read repair", "anti-entropy", "handoff", ..."""
    hint_for: str = ""
    """Set: the receiver is a fallback standing in for this (unhealthy) primary; it keeps
    the object as a durable hint for it (dynago.kv.fallback.hint_key), not as its own."""


@dataclass(frozen=True, slots=True)
class ReplicaPutAck:
    """Replica → coordinator: ReplicaPut ``request_id`` is durable here (or why not)."""

    request_id: int
    ok: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class ReplicaGet:
    """Coordinator → replica: send back what you hold of ``key``."""

    request_id: int
    key: ObjectKey
    hint_for: str = ""
    """Set: the receiver is a fallback for this primary; it answers from its hint."""


@dataclass(frozen=True, slots=True)
class ReplicaGetReply:
    """Replica → coordinator: the object held (None: not found here), or an error."""

    request_id: int
    obj: bytes | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class ForwardPut:
    """A node outside the key's preference list → a node in it: coordinate this write
    (a delete is a write of a tombstone content)."""

    request_id: int
    key: ObjectKey
    content: Content
    context: bytes | None
    overwrite: bool
    w: int
    pw: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class ForwardReply:
    """The coordinator's answer to ForwardPut: ``status`` 200 with the stored object, or
    the HTTP status of the failure with its reason (503: ``answered`` of ``needed``)."""

    request_id: int
    status: int
    error: str = ""
    obj: bytes = b""
    answered: int = 0
    needed: int = 0


@dataclass(frozen=True, slots=True)
class ListKeys:
    """Ask a node for every key of ``bucket`` it holds."""

    request_id: int
    bucket: str


@dataclass(frozen=True, slots=True)
class KeyList:
    """The keys of ListKeys ``request_id`` that the sender holds."""

    request_id: int
    keys: tuple[str, ...]
    error: str = ""


KvMessage = (ReplicaPut | ReplicaPutAck | ReplicaGet | ReplicaGetReply | ForwardPut
             | ForwardReply | ListKeys | KeyList | KvExplain | KvExplainReply)
"""Every replica message kind, as routed to the KV actor."""

KV_MESSAGE_TYPES: tuple[type, ...] = (ReplicaPut, ReplicaPutAck, ReplicaGet, ReplicaGetReply,
                                      ForwardPut, ForwardReply, ListKeys, KeyList,
                                      KvExplain, KvExplainReply)
