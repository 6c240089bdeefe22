"""Member records and the merge that every node applies to them.

Laws (checked by property tests in tests/core/test_core_merge_laws.py):

* A member is identified by its ``name``. Its record carries the ``address`` it is
  reached at, an ``incarnation`` that only the member itself increases, and a ``status``.
* Records of one member are totally ordered by ``(incarnation, status rank, address,
  origin, tags)``: a higher incarnation wins; at equal incarnation SUSPECT beats ALIVE,
  FAILED beats SUSPECT and LEFT beats everything (so LEFT is final for that incarnation);
  the address, the origin (who suspected or declared the failure) and the tags only
  break ties between records that carry the same news.
* Only the member itself changes its tags, and it raises its incarnation when it does,
  so a tag change wins like a refutation (core.tags, MembershipCore.set_tags).
* ``merge_member`` keeps the greater record, so merging is commutative, associative and
  idempotent: every node that has seen the same records holds the same view, whatever the
  order or repetition of messages. No wall clock of any node takes part in it.
* A member that hears a record of itself that would win over its own raises its
  incarnation above it (see MembershipCore). That is how a restarted node, which starts
  again at incarnation 0, wins over its own previous life.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from dynago.core.address import is_valid_address
from dynago.core.tags import Tags, tags_problem

_WHITESPACE = re.compile(r"\s")
"""What str.isspace() accepts (``\\s`` in a str pattern is the same test)."""

MAX_NAME_LENGTH = 255
MAX_INCARNATION = (1 << 64) - 1
"""Incarnations travel as uint64. A member at this value cannot refute any more."""


class Status(IntEnum):
    """Member status; the integer value is its precedence at equal incarnation."""

    ALIVE = 0
    SUSPECT = 1
    FAILED = 2
    LEFT = 3

    @property
    def is_live(self) -> bool:
        """ALIVE and SUSPECT members are still members; FAILED and LEFT are not."""
        return self <= 1  # ALIVE or SUSPECT (an int comparison: no member lookups)

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True, order=False)
class Member:
    """What every node knows of one member, exactly as it travels between nodes."""

    name: str
    address: str
    incarnation: int = 0
    status: Status = Status.ALIVE
    origin: str = ""
    """Who suspected (SUSPECT) or declared (FAILED) this member; empty for ALIVE and LEFT,
    which only the member itself announces. Lifeguard counts distinct origins as
    independent confirmations of a suspicion."""
    tags: Tags = ()
    """The member's key/value metadata, sorted by key (core.tags). Only the member itself
    changes them, at a new incarnation; other records of it (suspect, failed) carry them on."""

    def precedence(self) -> tuple[int, int, str, str, Tags]:
        """The key that decides which of two records of one member wins."""
        return (self.incarnation, int(self.status), self.address, self.origin, self.tags)

    def supersedes(self, other: Member) -> bool:
        """True if this record wins over ``other`` (a record of the same member)."""
        return self.precedence() > other.precedence()

    def problem(self) -> str | None:
        """Why this record may not enter a member map, or None if it may."""
        if not self.name or len(self.name) > MAX_NAME_LENGTH:
            return f"member name must be 1 to {MAX_NAME_LENGTH} characters"
        if not self.name.isprintable() or _WHITESPACE.search(self.name):
            return f"member name {self.name!r} has whitespace or unprintable characters"
        if not is_valid_address(self.address):
            return f"member {self.name!r} has an invalid address {self.address!r}"
        if not 0 <= self.incarnation <= MAX_INCARNATION:
            return f"member {self.name!r} has incarnation {self.incarnation} out of range"
        if not isinstance(self.status, Status):
            return f"member {self.name!r} has unknown status {self.status!r}"
        if self.origin:
            if self.status in (Status.ALIVE, Status.LEFT):
                return f"member {self.name!r}: an {self.status.label} record has no origin"
            if (len(self.origin) > MAX_NAME_LENGTH or not self.origin.isprintable()
                    or _WHITESPACE.search(self.origin)):
                return f"member {self.name!r} has an invalid origin {self.origin!r}"
        if self.tags != ():
            problem = tags_problem(self.tags)
            if problem:
                return f"member {self.name!r}: {problem}"
        return None


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A member as one node holds it: the record plus when this node last saw it change.

    ``since`` is on the holding node's own monotonic clock; it is never sent to anyone.
    """

    member: Member
    since: float


def merge_member(a: Member, b: Member) -> Member:
    """The winning record of two records of the same member."""
    if a.name != b.name:
        raise ValueError(f"cannot merge records of different members {a.name!r}, {b.name!r}")
    return a if a.precedence() >= b.precedence() else b


def merge_views(a: Mapping[str, Member], b: Mapping[str, Member]) -> dict[str, Member]:
    """Pointwise merge of two views (name -> record): the least view holding both."""
    merged = dict(a)
    for name, member in b.items():
        held = merged.get(name)
        merged[name] = member if held is None else merge_member(held, member)
    return merged


def view_of(members: Iterable[Member]) -> dict[str, Member]:
    """Fold records into a view, merging records of the same member."""
    view: dict[str, Member] = {}
    for member in members:
        held = view.get(member.name)
        view[member.name] = member if held is None else merge_member(held, member)
    return view
