"""Anti-entropy messages between the replicas of a partition (dynago.actors.kv_aae).

Frozen dataclasses, one per wire kind (dynago/proto/membership.proto ``KvAae*``, Envelope
kinds 20–25); dynago/transport/kv_aae_codec.py converts them at the edge and bounds what
one message may carry. ``exchange_id`` is the initiator's, unique per initiator; every
answer carries the id of the ask it answers. Repairs themselves travel as ordinary
``ReplicaPut`` (origin "anti-entropy"), which the receiver's KvActor merges.

One exchange, initiator I and responder R, of partition P::

    I → R  AaeHashesAsk(level=ROOT)              R → I  AaeHashes(ROOT, [root])
    I → R  AaeHashesAsk(level=BRANCHES)          R → I  AaeHashes(BRANCHES, 32 hashes)
    I → R  AaeHashesAsk(level=SEGMENTS, branches) R → I AaeHashes(SEGMENTS, their segments)
    I → R  AaeKeysAsk(segments)                  R → I  AaeKeys(key, object hash pairs)
    I → R  ReplicaPut of each key I must send;   I → R  AaePush(keys R must send)
                                                 R → I  ReplicaPut of each of those keys

Equal roots end it after one round trip. ``AaeKeysAsk`` with ``keys`` (no segments) is
also how a replica asks the others to confirm a tombstone before reaping it. A responder
that is not a replica of P, or whose tree is not built yet, answers ``AaeRefused``.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT, BRANCHES, SEGMENTS = 0, 1, 2
"""The levels of ``AaeHashesAsk``."""


@dataclass(frozen=True, slots=True)
class AaeHashesAsk:
    """Send me your hashes of partition ``partition`` at ``level``: the root, all
    branches, or the segments under branches ``ids``."""

    exchange_id: int
    partition: int
    level: int
    ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class AaeHashes:
    """The hashes asked for: ``ids[i]`` (root 0, branch or segment id) has ``hashes[i]``."""

    exchange_id: int
    partition: int
    level: int
    ids: tuple[int, ...]
    hashes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AaeKeysAsk:
    """Send me (storage key, object hash) of every key you hold in ``segments``, and of
    each of ``keys`` you hold."""

    exchange_id: int
    partition: int
    segments: tuple[int, ...] = ()
    keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class AaeKeys:
    """The keys asked for that the sender holds, with their object hashes (a key asked
    for and missing here is not held)."""

    exchange_id: int
    partition: int
    keys: tuple[bytes, ...]
    hashes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AaePush:
    """Send me your objects of ``keys`` (as ReplicaPut, origin "anti-entropy")."""

    exchange_id: int
    partition: int
    keys: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AaeRefused:
    """The ask ``exchange_id`` is not served here, and why."""

    exchange_id: int
    reason: str


AaeMessage = AaeHashesAsk | AaeHashes | AaeKeysAsk | AaeKeys | AaePush | AaeRefused
"""Every anti-entropy message, as routed to the AntiEntropyActor."""

AAE_MESSAGE_TYPES: tuple[type, ...] = (AaeHashesAsk, AaeHashes, AaeKeysAsk, AaeKeys, AaePush,
                                       AaeRefused)

AAE_REQUEST_BASE = 2**62 + 2**61
"""Request ids of the ReplicaPuts anti-entropy sends start here (above the hand-backs'
``HINT_REQUEST_BASE`` = 2**62): the KvActor drops their acks, never counting them toward
a client's W. Repairs are not waited on; the next exchange finds what did not land."""
