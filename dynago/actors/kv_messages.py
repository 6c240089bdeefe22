"""Messages of the KvActor (dynago/actors/kv.py): client requests from the HTTP layer or
in-process callers, membership changes, and its private completions and timers.

A ``reply`` callable is called exactly once, on the KvActor's thread, with the result or
a ``KvError``; it must not block (the frontend hands it to an asyncio loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dynago.actors.messages import MemberView
from dynago.core.messages import MemberEvent
from dynago.kv.model import Content, GetReply, KvError, ObjectKey, PutReply, Quorum

GetCallback = Callable[[GetReply | KvError], None]
PutCallback = Callable[[PutReply | KvError], None]
KeysCallback = Callable[[list[str] | KvError], None]


@dataclass(frozen=True, slots=True)
class ClientGet:
    """Read ``key`` at quorum R (any node coordinates a read)."""

    key: ObjectKey
    quorum: Quorum
    include_deleted: bool
    reply: GetCallback = field(compare=False)


@dataclass(frozen=True, slots=True)
class ClientPut:
    """Write ``content`` (a tombstone for a delete) with the client's ``context``."""

    key: ObjectKey
    content: Content
    context: bytes | None
    quorum: Quorum
    overwrite: bool
    return_body: bool
    reply: PutCallback = field(compare=False)


@dataclass(frozen=True, slots=True)
class ClientListKeys:
    """Every live key of ``bucket`` over the cluster."""

    bucket: str
    reply: KeysCallback = field(compare=False)


@dataclass(frozen=True, slots=True)
class MembersSeen:
    """The member map at subscription time (the events after it come as MemberChanged)."""

    members: tuple[MemberView, ...]


@dataclass(frozen=True, slots=True)
class LocalHealth:
    """This node's Lifeguard local health score (membership's WatchLocalHealth): above 0,
    this node may be the slow one, so its suspicions of others are not trusted to pick
    fallbacks (dynago.kv.fallback.healthy_status)."""

    score: int


@dataclass(frozen=True, slots=True)
class MemberChanged:
    """A membership event (subscribed by the node)."""

    event: MemberEvent


@dataclass(frozen=True, slots=True)
class GetKvStats:
    """Ask: the KV counters (a dict of name to number)."""


@dataclass(frozen=True, slots=True)
class GetKvSnapshot:
    """Ask: every KV count and latency histogram (a ``dynago.kv.stats.KvSnapshot``)."""


@dataclass(frozen=True, slots=True)
class Expire:
    """Private: request ``request_id``'s deadline passed."""

    request_id: int


@dataclass(frozen=True, slots=True)
class Speculate:
    """Private: get ``request_id`` waited ``speculative_read_s`` for the replicas it
    asked (``read_fanout = "quorum"``): ask the others too."""

    request_id: int


@dataclass(frozen=True, slots=True)
class RingCheck:
    """Private: a failed member may have passed the ring's grace time."""


@dataclass(frozen=True, slots=True)
class LocalDone:
    """Private: the local store answered request ``request_id`` (``obj`` None: nothing
    stored under the key; ``error`` set: the operation failed and wrote nothing)."""

    request_id: int
    obj: bytes | None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class LocalKeys:
    """Private: the local store's keys for listing ``request_id``."""

    request_id: int
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplicaDone:
    """Private: a replica request from ``peer`` (their ``request_id``) was served by the
    local store; ``kind`` is ``put``, ``get`` or ``keys``."""

    kind: str
    peer: str
    request_id: int
    obj: bytes | None = None
    error: str = ""
    keys: tuple[str, ...] = ()
