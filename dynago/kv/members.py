"""Which members hold the ring, as this node's KV layer hears of them. Pure: ``now`` is
passed in (monotonic seconds).

The KV actor feeds it the member map once and every membership event after; it keeps the
greatest record of each member by the membership's own precedence (incarnation, then
ALIVE < SUSPECT < FAILED < LEFT), so a snapshot and events may arrive in any order. The
ring (``dynago.kv.ring``) is rebuilt from ``select_members``: alive, suspect and members
failed for less than the grace time are in; members that left or stayed failed past it
are out. This node is always in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dynago.core.member import Status
from dynago.core.messages import MemberEvent
from dynago.core.tags import Tags
from dynago.kv.ring import Ring, RingCandidate, RingMember, select_members

ZONE_TAG = "zone"
"""The member tag that names a member's zone (preference lists span zones)."""

_RANK = {status.label: status.value for status in Status}


@dataclass(frozen=True, slots=True)
class SeenMember:
    """The greatest record of one member heard so far, and when its status began here."""

    name: str
    incarnation: int
    status: str
    zone: str | None
    since: float


def _zone(tags: Tags) -> str | None:
    for key, value in tags:
        if key == ZONE_TAG:
            return value
    return None


class RingKeeper:
    """Member records → the current ring; also answers "is that replica reachable?"."""

    def __init__(self, self_name: str, *, partitions: int, n_val: int, grace_s: float,
                 self_zone: str | None = None) -> None:
        self.self_name = self_name
        self.partitions = partitions
        self.n_val = n_val
        self.grace_s = grace_s
        self._members: dict[str, SeenMember] = {
            self_name: SeenMember(self_name, 0, "alive", self_zone, 0.0)}
        self.ring: Ring = Ring.build([RingMember(self_name, self_zone)],
                                     partitions=partitions, n_val=n_val)
        self.rebuilds = 0

    def note(self, name: str, incarnation: int, status: str, tags: Tags, now: float) -> None:
        """Take a record of ``name`` if it wins over the one held."""
        held = self._members.get(name)
        if held is not None and (incarnation, _RANK[status]) <= (held.incarnation,
                                                                 _RANK[held.status]):
            return  # tags, zone included, change only at a new incarnation
        if name == self.self_name:
            status = "alive"  # whatever others say, this node serves its partitions
        since = now if held is None or held.status != status else held.since
        self._members[name] = SeenMember(name, incarnation, status, _zone(tags), since)

    def seen(self, members: Iterable[tuple[str, int, str, Tags]], now: float) -> None:
        """The member map at subscription: (name, incarnation, status label, tags)."""
        for name, incarnation, status, tags in members:
            self.note(name, incarnation, status, tags, now)

    def remember(self, names: Iterable[tuple[str, str | None]], now: float) -> None:
        """Members this node's ring held before it restarted (read back from its data
        dir): they are taken as failed *now*, at an incarnation below any real record,
        so they keep their partitions for the grace time and count as unreachable until
        membership says otherwise. Without this a restarted node would see a ring of
        itself alone and, until it rejoined, answer reads and writes on its one copy."""
        for name, zone in names:
            if name != self.self_name and name not in self._members:
                self._members[name] = SeenMember(name, -1, "failed", zone, now)
        self.rebuild(now)

    def remembered(self) -> list[tuple[str, str | None]]:
        """(name, zone) of the ring's members, to keep in the data dir."""
        return [(m.name, m.zone) for m in self.ring.members]

    def changed(self, event: MemberEvent, now: float) -> None:
        member = event.member
        self.note(member.name, member.incarnation, member.status.label, member.tags, now)

    def status(self, name: str) -> str:
        """``alive``, ``suspect``, ``failed``, ``left`` or ``unknown``."""
        held = self._members.get(name)
        return held.status if held is not None else "unknown"

    def reachable(self, name: str) -> bool:
        """Worth sending a request to now: alive or suspect (a suspect may be alive)."""
        return self.status(name) in ("alive", "suspect")

    def _candidates(self, now: float) -> list[RingCandidate]:
        return [RingCandidate(m.name, m.status, m.zone,
                              now - m.since if m.status == "failed" else None)
                for m in self._members.values()]

    def rebuild(self, now: float) -> bool:
        """Rebuild the ring if its member set changed; True if it did."""
        members = select_members(self._candidates(now), grace_s=self.grace_s)
        if tuple(sorted(members, key=lambda m: m.name)) == tuple(
                sorted(self.ring.members, key=lambda m: m.name)):
            return False
        self.ring = Ring.build(members, partitions=self.partitions, n_val=self.n_val)
        self.rebuilds += 1
        return True

    def next_check_in(self, now: float) -> float | None:
        """Seconds until a failed member still in the ring passes the grace time."""
        waits = [m.since + self.grace_s - now for m in self._members.values()
                 if m.status == "failed" and now - m.since < self.grace_s]
        return max(0.0, min(waits)) + 1e-3 if waits else None
