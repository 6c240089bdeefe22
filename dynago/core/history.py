"""Per-member history of state changes, to answer "why is X dead?".

Pure and bounded: the MembershipActor feeds it every event it publishes, stamped with its
wall clock; it keeps the last ``per_member`` changes of each member and the histories of
at most ``max_members`` members (when a new member would exceed that, the member whose
latest change is the oldest is forgotten first). Nothing here is ever sent to other
nodes: it is this node's own account of what it saw, who told it, and when.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from dynago.core.member import Status
from dynago.core.messages import EventKind, MemberEvent
from dynago.core.tags import Tags

DEFAULT_PER_MEMBER = 32
DEFAULT_MAX_MEMBERS = 2048


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of one member's record, as this node saw it."""

    name: str
    at: float
    """Wall-clock time (Unix seconds, this node's clock) of the change."""
    kind: EventKind
    address: str
    address_before: str | None
    status: Status
    incarnation: int
    status_before: Status | None
    """None when the member was not known before."""
    incarnation_before: int | None
    reporter: str
    """The peer whose message carried the record, "self" or "local" (see MemberEvent)."""
    origin: str
    """Who suspected (SUSPECT) or declared (FAILED) the member, per the record."""
    detail: str
    tags: Tags
    tags_before: Tags


class History:
    """The bounded histories of every member this node has seen change."""

    def __init__(
        self, *, per_member: int = DEFAULT_PER_MEMBER, max_members: int = DEFAULT_MAX_MEMBERS
    ) -> None:
        if per_member < 1 or max_members < 1:
            raise ValueError("per_member and max_members must be at least 1")
        self.per_member = per_member
        self.max_members = max_members
        self._entries: OrderedDict[str, deque[HistoryEntry]] = OrderedDict()
        self.forgotten_members = 0
        """Histories dropped to stay within ``max_members``."""

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, event: MemberEvent, at: float) -> HistoryEntry:
        """Append ``event`` (seen at wall time ``at``) to its member's history."""
        member, previous = event.member, event.previous
        detail = event.detail
        entries = self._entries.get(member.name)
        if event.kind is EventKind.FAILED and event.reporter == "self" and not detail:
            detail = _suspicion_detail(entries, member.incarnation, at)
        entry = HistoryEntry(
            name=member.name,
            at=at,
            kind=event.kind,
            address=member.address,
            address_before=previous.address if previous is not None else None,
            status=member.status,
            incarnation=member.incarnation,
            status_before=previous.status if previous is not None else None,
            incarnation_before=previous.incarnation if previous is not None else None,
            reporter=event.reporter,
            origin=member.origin,
            detail=detail,
            tags=member.tags,
            tags_before=previous.tags if previous is not None else (),
        )
        if entries is None:
            while len(self._entries) >= self.max_members:
                self._entries.popitem(last=False)
                self.forgotten_members += 1
            entries = deque(maxlen=self.per_member)
            self._entries[member.name] = entries
        else:
            self._entries.move_to_end(member.name)
        entries.append(entry)
        return entry

    def of(self, name: str) -> tuple[HistoryEntry, ...] | None:
        """The history of ``name``, oldest first; None if this node kept none."""
        entries = self._entries.get(name)
        return tuple(entries) if entries is not None else None


def _suspicion_detail(
    entries: deque[HistoryEntry] | None, incarnation: int, at: float
) -> str:
    """Words for a failure this node declared: how long the suspicion ran."""
    for entry in reversed(entries or ()):
        if entry.status is Status.SUSPECT and entry.incarnation == incarnation:
            return (f"the suspicion ran out after {max(0.0, at - entry.at):.1f} s "
                    "with no refutation")
        if entry.incarnation != incarnation:
            break
    return "the suspicion ran out with no refutation"
