"""What goes into and comes out of the core: peer messages, effects and events.

All are frozen dataclasses. Peer messages are what nodes exchange (the transport turns
them into protobuf at the edge); effects are what the core asks its caller to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dynago.core.member import Member


@dataclass(frozen=True, slots=True)
class Gossip:
    """Recent changes to member records, pushed to a few random members per round."""

    updates: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class StateSync:
    """One chunk of a node's full member list (anti-entropy and join).

    ``reply_wanted`` on the ``last`` chunk asks the receiver to answer with its own full
    list (push-pull).
    """

    members: tuple[Member, ...]
    reply_wanted: bool
    last: bool


@dataclass(frozen=True, slots=True)
class Ping:
    """SWIM probe. ``target`` is the target's record as the prober holds it, so a suspect
    learns of the suspicion from the probe itself and can refute at once (Lifeguard)."""

    seq: int
    target: Member


@dataclass(frozen=True, slots=True)
class Ack:
    """Answer to a Ping (or relayed answer to a PingReq): ``member`` is the probed member's
    own current record, so a refutation travels back with the ack."""

    seq: int
    member: Member


@dataclass(frozen=True, slots=True)
class PingReq:
    """SWIM indirect probe: please probe ``target`` for me and relay its ack (or a Nack)."""

    seq: int
    target: Member


@dataclass(frozen=True, slots=True)
class Nack:
    """Lifeguard: the helper of PingReq ``seq`` got no ack from the target in time."""

    seq: int


CoreMessage = Gossip | StateSync | Ping | Ack | PingReq | Nack


class EventKind(Enum):
    """Kinds of membership event a node publishes to its subscribers."""

    JOINED = "joined"
    """A member not known, or known as failed or left, is now alive."""
    CHANGED = "changed"
    """A live member's record changed (incarnation, address, tags, or back to alive)."""
    SUSPECTED = "suspected"
    """A live member is suspected of having failed."""
    FAILED = "failed"
    """A member was declared failed."""
    LEFT = "left"
    """A member announced that it left."""


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A change of one member's record as seen by this node."""

    kind: EventKind
    member: Member
    previous: Member | None
    reporter: str = ""
    """Who brought the change: the peer whose message carried the record, ``"self"`` when
    this node's own rules made it (its probe, its suspicion timeout, its refutation) and
    ``"local"`` when a local caller did (add, merge, remove, leave, set_tags)."""
    detail: str = ""
    """What this node's own rules saw, in words, when it made the change (e.g. the probe
    that got no ack); empty otherwise."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to member ``to`` at ``address``.

    ``address`` is empty when the member is not in the map yet (a stream to it is open:
    the caller routes by name).
    """

    to: str
    address: str
    message: CoreMessage


@dataclass(frozen=True, slots=True)
class Publish:
    """Tell subscribers about a membership event."""

    event: MemberEvent


@dataclass(frozen=True, slots=True)
class DialSeed:
    """Open a stream to the seed at ``address`` (its name is learnt from its handshake)."""

    address: str


Effect = Send | Publish | DialSeed
