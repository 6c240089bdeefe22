"""The key-value store's ring: partitions, their owners and preference lists. Pure values.

Rules (docs/kv-ring.md has the reasons and the measured figures):

- **Hashing** (Riak's chash): the key space is SHA-1 of ``ObjectKey.storage_key()``, cut into
  ``P`` equal partitions (P a power of two, 8..1024, default 64); the top ``log2(P)`` bits
  of the hash name the partition. Partition ``i`` covers ``[i * 2**160 / P, (i+1) * 2**160 / P)``.
- **Claim** (dynago.kv.claim): a function of the member names only, so every node that sees
  the same members builds the same ring; every member owns ``P // n`` or ``P // n + 1``
  partitions; joins and leaves move little beyond the joiner's or leaver's share.
- **Preference list** of partition ``p`` (Riak's rule): walk clockwise from ``p``
  (``p, p+1, ...`` modulo P) and take each owner not already taken, until ``n_val`` nodes
  (fewer when the ring has fewer members). The first is ``p``'s owner.
- **Zones** (Dynago and Riak do not do this): a member without a zone is a zone of its
  own. The walk first takes only nodes of a zone not yet used, until the list spans
  ``min(n_val, zones)`` zones; it then walks again from ``p`` and fills the list with the
  nodes it skipped, still in clockwise order. The list is ordered by walk position, so the
  owner stays first. With no zones at all this is exactly the plain rule.
- **Membership** (``select_members``): alive, suspect, and failed for less than the grace
  period are in the ring; left, and failed for at least the grace period, are out. A
  temporary failure must not move data: fallback replicas cover it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dynago.kv.claim import claim
from dynago.kv.model import ObjectKey

DEFAULT_PARTITIONS = 64
MIN_PARTITIONS = 8
MAX_PARTITIONS = 1024
DEFAULT_N_VAL = 3
MAX_N_VAL = 5

DEFAULT_GRACE_S = 3600.0
"""How long a failed member keeps its partitions (seconds) before the ring drops it.

Dropping a member moves about 1/n of the data (its partitions, to the others), and putting
it back moves that again: an hour covers a restart, a reboot, a kernel upgrade or a network
cut without two full handoffs, while fallback replicas (hinted handoff) keep N copies of
new writes meanwhile. Lower it when nodes are replaced rather than repaired and the copies
held by a dead node must be rebuilt sooner; raise it for long planned maintenance."""

STATUSES = ("alive", "suspect", "failed", "left")


def check_ring_params(partitions: int, n_val: int) -> None:
    """Raise ValueError, in plain words, unless ``partitions`` is a power of two in
    8..1024 and ``n_val`` is in 1..5."""
    if (isinstance(partitions, bool) or not isinstance(partitions, int)
            or not MIN_PARTITIONS <= partitions <= MAX_PARTITIONS
            or partitions & (partitions - 1)):
        raise ValueError(f"ring size must be a power of two from {MIN_PARTITIONS} to "
                         f"{MAX_PARTITIONS} partitions, not {partitions!r}")
    if isinstance(n_val, bool) or not isinstance(n_val, int) or not 1 <= n_val <= MAX_N_VAL:
        raise ValueError(f"replica count n_val must be from 1 to {MAX_N_VAL}, not {n_val!r}")


def ring_params_mismatch(local: tuple[int, int], remote: tuple[int, int]) -> str | None:
    """None if a peer's ring (partitions, n_val) matches ours, else the one-line reason to
    refuse it: nodes that cut the key space differently, or keep a different number of
    copies, would send requests to the wrong replicas."""
    (p_ours, n_ours), (p_peer, n_peer) = local, remote
    if p_peer != p_ours:
        return f"ring size {p_peer} partitions differs from ours ({p_ours} partitions)"
    if n_peer != n_ours:
        return f"replica count n_val {n_peer} differs from ours (n_val {n_ours})"
    return None


def partition_of(key: ObjectKey, partitions: int) -> int:
    """The partition of ``key``: the top ``log2(partitions)`` bits of SHA-1 of its storage key.

    ``partitions`` must be a power of two of at most 65536 (a ring's are 8..1024).
    """
    bits = partitions.bit_length() - 1
    head = int.from_bytes(hashlib.sha1(key.storage_key()).digest()[:2], "big")
    return head >> (16 - bits)


@dataclass(frozen=True, slots=True)
class RingMember:
    """A node in the ring. ``zone`` (a rack, a datacenter room): copies spread over zones."""

    name: str
    zone: str | None = None


@dataclass(frozen=True, slots=True)
class RingCandidate:
    """What membership knows of a node, for ``select_members``.

    ``status`` is one of "alive", "suspect", "failed", "left"; ``failed_for_s`` is how long
    it has been failed (seconds, required when failed, ignored otherwise).
    """

    name: str
    status: str
    zone: str | None = None
    failed_for_s: float | None = None


def select_members(candidates: Iterable[RingCandidate], *,
                   grace_s: float = DEFAULT_GRACE_S) -> tuple[RingMember, ...]:
    """The members of the ring, sorted by name: every candidate alive, suspect, or failed
    for less than ``grace_s``. Raises ValueError on a bad status, a failed candidate without
    a non-negative ``failed_for_s``, a negative grace, or a name given twice."""
    if not grace_s >= 0:
        raise ValueError(f"grace_s must be a non-negative number of seconds, not {grace_s!r}")
    chosen: list[RingMember] = []
    seen: set[str] = set()
    for c in candidates:
        if c.name in seen:
            raise ValueError(f"candidate {c.name!r} is given twice")
        seen.add(c.name)
        if c.status not in STATUSES:
            raise ValueError(f"candidate {c.name!r} has status {c.status!r}, not one of "
                             f"{', '.join(STATUSES)}")
        if c.status == "failed":
            if c.failed_for_s is None or not c.failed_for_s >= 0:
                raise ValueError(f"failed candidate {c.name!r} needs failed_for_s >= 0, "
                                 f"not {c.failed_for_s!r}")
            if c.failed_for_s >= grace_s:
                continue
        elif c.status == "left":
            continue
        chosen.append(RingMember(c.name, c.zone))
    return tuple(sorted(chosen, key=lambda m: m.name))


class Ring:
    """An immutable ring: owners and preference lists of every partition, computed once.

    Build it with ``Ring.build``; equal member sets give equal rings (``==`` compares the
    members and parameters).
    """

    __slots__ = ("_members", "_partitions", "_n_val", "_owners", "_prefs", "_held", "_bits")

    def __init__(self, members: tuple[RingMember, ...], partitions: int, n_val: int,
                 owners: tuple[str, ...], prefs: tuple[tuple[str, ...], ...]) -> None:
        """Use ``Ring.build``: this only stores what it computed."""
        self._members = members
        self._partitions = partitions
        self._n_val = n_val
        self._owners = owners
        self._prefs = prefs
        self._bits = partitions.bit_length() - 1
        held: dict[str, list[int]] = {m.name: [] for m in members}
        for p, name in enumerate(owners):
            held[name].append(p)
        self._held = {name: tuple(ps) for name, ps in held.items()}

    @classmethod
    def build(cls, members: Iterable[RingMember], *, partitions: int = DEFAULT_PARTITIONS,
              n_val: int = DEFAULT_N_VAL) -> Ring:
        """The ring of ``members`` (any order; at least one; distinct names).

        Raises ValueError on bad parameters, no members, or a name given twice.
        Cost: O(P * n) hashes plus the balancing: ~6 ms at P=64, n=20; 0.6 s at P=1024, n=64.
        """
        check_ring_params(partitions, n_val)
        ordered = tuple(sorted(members, key=lambda m: m.name))
        if not ordered:
            raise ValueError("a ring needs at least one member")
        names = [m.name for m in ordered]
        if len(set(names)) != len(names):
            dup = next(n for i, n in enumerate(names) if n in names[:i])
            raise ValueError(f"member {dup!r} is given twice")
        owners = tuple(names[i] for i in claim(names, partitions))
        zone_of = {m.name: m.zone if m.zone is not None else ("", m.name) for m in ordered}
        prefs = tuple(_preference_list(owners, p, n_val, zone_of) for p in range(partitions))
        return cls(ordered, partitions, n_val, owners, prefs)

    @property
    def members(self) -> tuple[RingMember, ...]:
        """The members, sorted by name."""
        return self._members

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def n_val(self) -> int:
        return self._n_val

    def owner(self, partition: int) -> str:
        """The name of the node that owns ``partition`` (IndexError if out of range)."""
        return self._owners[self._index(partition)]

    def preference_list(self, partition: int) -> tuple[str, ...]:
        """``min(n_val, members)`` distinct node names; the first is the owner."""
        return self._prefs[self._index(partition)]

    def preference_list_for(self, key: ObjectKey) -> tuple[str, ...]:
        """The preference list of ``key``'s partition: one SHA-1 and a tuple lookup."""
        head = int.from_bytes(hashlib.sha1(key.storage_key()).digest()[:2], "big")
        return self._prefs[head >> (16 - self._bits)]

    def partitions_of(self, name: str) -> tuple[int, ...]:
        """The partitions ``name`` owns, ascending (empty for a non-member)."""
        return self._held.get(name, ())

    def share(self, name: str) -> float:
        """The fraction of partitions ``name`` owns (0.0 for a non-member)."""
        return len(self.partitions_of(name)) / self._partitions

    def _index(self, partition: int) -> int:
        if not 0 <= partition < self._partitions:
            raise IndexError(f"partition {partition} is outside 0..{self._partitions - 1}")
        return partition

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return (self._members, self._partitions, self._n_val) == (
            other._members, other._partitions, other._n_val)

    def __hash__(self) -> int:
        return hash((self._members, self._partitions, self._n_val))

    def __repr__(self) -> str:
        return (f"Ring({len(self._members)} members, partitions={self._partitions}, "
                f"n_val={self._n_val})")


def _preference_list(owners: tuple[str, ...], start: int, n_val: int,
                     zone_of: Mapping[str, object]) -> tuple[str, ...]:
    """The zone-spreading clockwise walk described in the module docstring."""
    size = len(owners)
    # Only owners are met on the walk (more members than partitions leaves some without).
    present = set(owners)
    want = min(n_val, len(present))
    zones_wanted = min(want, len({zone_of[name] for name in present}))
    taken: dict[str, int] = {}  # name -> walk position
    zones: set[object] = set()
    for step in range(size):
        if len(zones) == zones_wanted:
            break
        name = owners[(start + step) % size]
        if name not in taken and zone_of[name] not in zones:
            taken[name] = step
            zones.add(zone_of[name])
    for step in range(size):
        if len(taken) == want:
            break
        name = owners[(start + step) % size]
        if name not in taken:
            taken[name] = step
    return tuple(sorted(taken, key=taken.__getitem__))
