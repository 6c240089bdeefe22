"""A converged member list, prepared once and adopted by many cores.

The simulator starts its crash, leave and partition scenarios from a cluster that has
already converged. Letting N cores each merge N records would cost N² record merges
(10⁸ at N = 10,000) before the scenario even begins; instead the list is checked and
indexed once here, and each core copies the prepared tables (a few C-level copies).
"""

from __future__ import annotations

from collections.abc import Iterable

from dynago.core.member import Member, MemberRecord, Status
from dynago.core.nameset import NameSet


class ConvergedView:
    """Every member's record as every node of a converged cluster holds it."""

    __slots__ = ("records", "live", "failed", "tombstones", "by_address", "_live_at")

    def __init__(self, members: Iterable[Member], now: float) -> None:
        self.records: dict[str, MemberRecord] = {}
        self.live = NameSet()
        self.failed = NameSet()
        self.tombstones: dict[str, float] = {}
        self.by_address: dict[str, set[str]] = {}
        self._live_at: dict[str, int] = {}
        """Live member -> its position in ``live``."""
        for member in members:
            problem = member.problem()
            if problem:
                raise ValueError(problem)
            if member.name in self.records:
                raise ValueError(f"member {member.name!r} is listed twice")
            self.records[member.name] = MemberRecord(member, now)
            if member.status.is_live:
                self._live_at[member.name] = len(self.live)
                self.live.add(member.name)
                self.by_address.setdefault(member.address, set()).add(member.name)
            else:
                self.tombstones[member.name] = now
            if member.status is Status.FAILED:
                self.failed.add(member.name)

    def __len__(self) -> int:
        return len(self.records)

    def live_without(self, name: str) -> NameSet:
        """A copy of ``live`` without ``name``: the set ``live.copy()`` then
        ``discard(name)`` gives, in the same order, without searching for ``name``."""
        names = self.live.names()
        position = self._live_at.get(name)
        if position is not None:
            last = names.pop()
            if position < len(names):
                names[position] = last
        return NameSet(names)
