"""Sloppy quorum: which nodes stand in for unhealthy primaries, and where hints live.
Pure: no I/O, no clock.

Rules (the Dynamo paper's sloppy quorum, as Riak does it):

- A primary of the preference list is **healthy** when membership holds it ``alive``. A
  ``suspect`` is not: Lifeguard's suspicion comes before the failure timeout, so a
  fallback takes over before requests to a dead node time out. Only when this node's own
  local health is degraded (``trust_suspicion=False``: it may be the slow one, and its
  suspicions with it) does a suspect count as healthy. ``failed``, ``left`` and
  ``unknown`` are never healthy. This node itself is always healthy.
- Each unhealthy primary, in preference-list order, is replaced by the first healthy node
  of the clockwise walk from the partition (distinct owners in ring order) that is not a
  primary and not already standing in for another: a **fallback**, paired with the
  primary it stands in for (its ``hint_for``). When none is left, the primary is
  **uncovered**: the coordinator keeps the hint itself.
- The result never names a node twice; fallbacks appear only for unhealthy primaries;
  the same input gives the same output.

A fallback stores what it is sent under ``hint_key(owner, storage_key)``, in the
node-local key space (``NUL h NUL``), so listings and anti-entropy never see it as an
object of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from dynago.kv.ring import Ring

HINT_PREFIX = b"\x00h\x00"
"""Every hint's engine key starts with this (the node-local ``NUL`` bucket, ``h``)."""


@dataclass(frozen=True, slots=True)
class Replica:
    """One entry of a sloppy preference list: ``node`` holds the copy; ``hint_for`` is
    the unhealthy primary it stands in for ("" when ``node`` is a primary itself)."""

    node: str
    hint_for: str = ""


@dataclass(frozen=True, slots=True)
class SloppyList:
    """The nodes a request goes to, in preference-list order, and the unhealthy
    primaries no node could stand in for (``uncovered``)."""

    replicas: tuple[Replica, ...]
    uncovered: tuple[str, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(r.node for r in self.replicas)

    @property
    def primaries(self) -> frozenset[str]:
        """The healthy primaries (the only ones that count toward PW / PR)."""
        return frozenset(r.node for r in self.replicas if not r.hint_for)

    def owner_of(self, node: str) -> str:
        """The primary ``node`` stands in for ("" if it is a primary or not listed)."""
        for r in self.replicas:
            if r.node == node:
                return r.hint_for
        return ""


def healthy_status(status: str, *, trust_suspicion: bool = True) -> bool:
    """Whether a node of this membership status takes a copy itself (see the rules)."""
    if status == "alive":
        return True
    return status == "suspect" and not trust_suspicion


def sloppy_list(primaries: Sequence[str], clockwise: Iterable[str],
                healthy: Callable[[str], bool]) -> SloppyList:
    """The sloppy preference list of a partition whose preference list is ``primaries``
    and whose distinct owners, walking clockwise from it, are ``clockwise``.

    Raises ValueError if ``primaries`` names a node twice.
    """
    if len(set(primaries)) != len(primaries):
        raise ValueError(f"a preference list names a node twice: {list(primaries)}")
    used = set(primaries)
    spares = (name for name in clockwise if name not in used and healthy(name))
    replicas: list[Replica] = []
    uncovered: list[str] = []
    for primary in primaries:
        if healthy(primary):
            replicas.append(Replica(primary))
            continue
        spare = next(spares, None)
        if spare is None:
            uncovered.append(primary)
        else:
            used.add(spare)
            replicas.append(Replica(spare, primary))
    return SloppyList(tuple(replicas), tuple(uncovered))


def clockwise_owners(ring: Ring, partition: int) -> tuple[str, ...]:
    """The distinct owners met walking the ring clockwise from ``partition``."""
    size = ring.partitions
    seen: dict[str, None] = {}
    for step in range(size):
        seen.setdefault(ring.owner((partition + step) % size), None)
        if len(seen) == len(ring.members):
            break
    return tuple(seen)


def for_partition(ring: Ring, partition: int, healthy: Callable[[str], bool],
                  primaries: Sequence[str] | None = None) -> SloppyList:
    """``sloppy_list`` of ``partition`` of ``ring`` (``primaries``: its preference list
    unless given, e.g. a coordinator that put itself first)."""
    pref = ring.preference_list(partition) if primaries is None else primaries
    return sloppy_list(pref, clockwise_owners(ring, partition), healthy)


def hint_targets(owner: str, ring: Ring, partition: int) -> tuple[str, ...]:
    """Where a hint held for ``owner`` of a key in ``partition`` goes: to ``owner`` while
    it is a member of ``ring``; once it is not (it left, or failed past the grace time),
    to the partition's preference list in ``ring``, the nodes that own the key now (a
    hint for a node that will never come back is still an acknowledged write)."""
    if any(member.name == owner for member in ring.members):
        return (owner,)
    return ring.preference_list(partition)


def hint_key(owner: str, storage_key: bytes) -> bytes:
    """The engine key of the hint for ``owner`` of the object at ``storage_key``.

    Raises ValueError for an empty owner or one holding a NUL (it could not be read back).
    """
    raw = owner.encode()
    if not raw or b"\x00" in raw:
        raise ValueError(f"a hint's owner must be a non-empty name without NUL: {owner!r}")
    return HINT_PREFIX + raw + b"\x00" + storage_key


def parse_hint_key(key: bytes) -> tuple[str, bytes]:
    """(owner, storage key) of a hint's engine key; ValueError if it is not one."""
    if not key.startswith(HINT_PREFIX):
        raise ValueError("not a hint key")
    owner, sep, storage_key = key[len(HINT_PREFIX):].partition(b"\x00")
    if not sep or not owner or not storage_key:
        raise ValueError("a hint key without an owner or an object key")
    return owner.decode(), storage_key


HINT_REQUEST_BASE = 1 << 62
"""Request ids of hand-backs start here, so a node's hand-back acknowledgements (which
come back to its KvActor as ReplicaPutAck) are told apart from its coordinated puts'."""


class TokenBucket:
    """At most ``rate`` takes per second on average, ``burst`` at once. ``now`` is
    monotonic seconds, passed in."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not rate > 0 or not burst >= 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, "
                             f"not {rate} and {burst}")
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a token is there (0 if one is)."""
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self.rate)
