"""Messages of the two actors. One union per actor; commands in the imperative, events in
the past tense; private messages (timer ticks, transport callbacks) start with nothing
special but are only sent by dynago itself.

Callers normally use the small functions in dynago.actors.api rather than these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dynago.core.member import Member
from dynago.core.messages import EventKind, MemberEvent
from dynago.core.tags import Tags
from dynago.transport.base import Stream, WireMessage

# ---------------------------------------------------------------- MembershipActor


@dataclass(frozen=True, slots=True)
class Add:
    """Merge one member record as if gossip had brought it. Ask: raises if invalid."""

    member: Member


@dataclass(frozen=True, slots=True)
class Remove:
    """Declare a member failed at its current incarnation (Serf's force-leave)."""

    name: str


@dataclass(frozen=True, slots=True)
class Merge:
    """Merge a batch of member records, all or nothing. Ask: raises if any is invalid."""

    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Ask for the current member map as a tuple of MemberView, sorted by name."""

    include_dead: bool = True


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Publish every later MemberEvent to ``subscriber`` (a callable or an ActorRef).

    A callable runs on the membership actor's thread and must not block. ``kinds``, if
    set, limits the events to those kinds. Ask: returns a token for Unsubscribe; with
    ``with_snapshot``, ``(token, snapshot)`` where the snapshot (every record, as
    Snapshot) is taken in the same turn, so no event falls between the two.
    """

    subscriber: Callable[[MemberEvent], None] | Any
    kinds: frozenset[EventKind] | None = None
    with_snapshot: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop publishing to the subscriber registered under ``token``."""

    token: int


@dataclass(frozen=True, slots=True)
class WatchLocalHealth:
    """Call ``watcher(score)`` with this node's Lifeguard local health score (0: healthy;
    higher: this node misses acks or is suspected, so it may be the slow one) now, and
    again each time it changes. The callable runs on the membership actor's thread and
    must not block (tell an actor). One that raises is dropped (and the error logged)."""

    watcher: Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Leave:
    """Announce that this node leaves. Ask: returns futures to wait on (see api.leave)."""


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask for counters (dict of name -> int)."""


@dataclass(frozen=True, slots=True)
class SetTags:
    """This node's tags become ``tags`` (canonical, core.tags); it raises its incarnation.
    Ask: raises ValueError if they are invalid or the node is leaving."""

    tags: Tags


@dataclass(frozen=True, slots=True)
class UpdateTags:
    """Change this node's tags by a merge patch: a string value sets that key, None
    removes it (core.tags.apply_patch). Ask: returns the new tags; raises ValueError if
    the result is invalid or the node is leaving (nothing changes then)."""

    patch: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class GetHistory:
    """Ask for the history of member ``name``: a tuple of core.history.HistoryEntry, oldest
    first. Raises KeyError if this node neither holds nor remembers that member."""

    name: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Private: a timer tick; the core runs what is due. ``at``: the time the tick was
    set for (a self-scheduled tick), so that what was due then runs even if the clock
    reads a hair earlier (the float sum of a manual clock's steps)."""

    at: float | None = None


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """Private: the transport has a new handshaken stream (either direction)."""

    stream: Stream


@dataclass(frozen=True, slots=True)
class PeerMessage:
    """A peer actor hands on what its stream delivered, to the actor its class is routed
    to (actors.routing.RouteTable); that actor calls ``done`` once it handled it."""

    sender: str
    address: str
    message: WireMessage
    done: Callable[[], None] | None = field(default=None, compare=False)
    """Called once the message is handled (the stream's backpressure), if set."""


@dataclass(frozen=True, slots=True)
class DialSeedFailed:
    """Private: a dial to a seed failed (seed retries are the core's business)."""

    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerConnectivity:
    """Private: a peer's stream came up or went down. A hint, never a verdict."""

    name: str
    connected: bool


MembershipMessage = (
    Add
    | Remove
    | Merge
    | Snapshot
    | Subscribe
    | Unsubscribe
    | Leave
    | GetStats
    | SetTags
    | UpdateTags
    | GetHistory
    | Tick
    | StreamOpened
    | PeerMessage
    | DialSeedFailed
    | PeerConnectivity
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """The answer to a command that failed: ``error`` says why. Nothing was changed.

    The actor answers instead of raising, because an exception while handling a *told*
    message would stop it. The functions in dynago.actors.api raise ``error``.
    """

    error: Exception


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member as the admin API and the CLI show it."""

    name: str
    address: str
    status: str
    incarnation: int
    since: float
    """Wall-clock time (Unix seconds, this node's clock) at which this node saw the change."""
    tags: Tags = ()


# ---------------------------------------------------------------- PeerActor


@dataclass(frozen=True, slots=True)
class Deliver:
    """Send ``message`` to the peer: written now if the stream is up, else buffered."""

    message: WireMessage


@dataclass(frozen=True, slots=True)
class Attach:
    """A handshaken stream to this peer exists; keep it unless a better one is kept."""

    stream: Stream


@dataclass(frozen=True, slots=True)
class SetAddress:
    """The peer is now reached at ``address`` (it restarted elsewhere)."""

    address: str


@dataclass(frozen=True, slots=True)
class Flush:
    """Ask: returns a concurrent future done when what was queued so far is written."""


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """Private: the stream ``stream_id`` closed."""

    stream_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class DialFailed:
    """Private: this actor's dial failed."""

    reason: str


@dataclass(frozen=True, slots=True)
class Redial:
    """Private: the backoff delay before redialling is over."""


PeerMessageType = Deliver | Attach | SetAddress | Flush | StreamClosed | DialFailed | Redial
