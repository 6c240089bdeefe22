"""When a tombstone may be reaped, and what reaping leaves. Pure.

A client delete writes a *tombstone* (a version with ``Content.deleted``) whose clock
covers everything the delete saw. Reaping replaces it, in place, by its **reaped
marker**: ``Object(tombstone.clock, ())`` — the same clock with no version standing,
DVV's own "everything seen is superseded" state. The marker is the tombstone minus its
contents (value, type, metadata); it stays under the key's own storage key.

Rules (tests/kv/test_kv_reap.py and tests/actors/test_actor_kv_aae.py check them):

1. **Causal stability before reaping.** A replica reaps key K only after every node of
   K's preference list (all of them, none unreachable) confirmed in an exchange that it
   holds an object of the same hash as this replica's tombstone (``may_reap``) — never
   on a timer alone. The reap itself re-checks, inside the store's atomic update, that
   the stored object is still that tombstone (``reap_update``).
2. **No resurrection.** ``merge(marker, x)`` drops every version of ``x`` the tombstone's
   clock covers — exactly what ``merge(tombstone, x)`` drops — so a stale replica, a late
   ReplicaPut, hint or handoff carrying a pre-delete value cannot bring it back; a
   version the delete never saw (a concurrent or later write) survives, as it must.
3. **No dot reuse.** A write coordinated on a marker continues the clock's counters
   (``version.coordinate`` starts from the stored clock), so a new write is never covered
   by an old clock somewhere else. (Deleting the key outright would forget the clock:
   a new write would restart at counter 1 and be dropped by stale clocks, and a late
   stale copy would merge into nothing and come back.)
4. **Convergence.** The marker is an ordinary object: anti-entropy spreads it, and
   ``merge(tombstone, marker) == marker`` on the replicas that still hold the tombstone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from dynago.kv import version
from dynago.kv.tictac import object_hash


def is_tombstone(obj: version.Object) -> bool:
    """A deleted key that still carries tombstone versions (a marker has none)."""
    return bool(obj.versions) and all(v.content.deleted for v in obj.versions)


def is_marker(obj: version.Object) -> bool:
    """A reaped tombstone: a clock and nothing standing."""
    return bool(obj.clock) and not obj.versions


def marker_of(tombstone: version.Object) -> version.Object:
    """The reaped marker of ``tombstone`` (ValueError if it is not one)."""
    if not is_tombstone(tombstone):
        raise ValueError("only a tombstone is reaped")
    return version.Object(tombstone.clock, ())


def may_reap(replicas: Sequence[str], confirmed: Mapping[str, int | None],
             tombstone_hash: int) -> bool:
    """Rule 1: every node of the key's preference list ``replicas`` confirmed an object
    of hash ``tombstone_hash`` (``confirmed``: node → the hash it reported, None if it
    holds nothing). A node missing from ``confirmed`` has not confirmed."""
    return bool(replicas) and all(confirmed.get(name, None) == tombstone_hash
                                  for name in replicas)


def reap_update(tombstone_hash: int) -> Callable[[bytes | None], bytes | None]:
    """A storage update reaping the stored tombstone if it still hashes
    ``tombstone_hash`` (a write since the confirmation changes nothing: None)."""

    def reap(current: bytes | None) -> bytes | None:
        if current is None or object_hash(current) != tombstone_hash:
            return None
        obj = version.decode(current)
        return version.encode(marker_of(obj)) if is_tombstone(obj) else None

    return reap
