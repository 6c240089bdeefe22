"""What a replica does with an object it is sent, and how far a default quorum reaches.
Pure rules shared by the KV actor (dynago.actors.kv, kv_reads, kv_coordinate) and the
deterministic simulator's KV layer (dynago.sim.kv_node), so both run the same code.
"""

from __future__ import annotations

from collections.abc import Callable

from dynago.kv import version


def merge_into(incoming: version.Object) -> Callable[[bytes | None], bytes | None]:
    """A storage update that merges ``incoming`` into the stored object (None: no change).

    The function raises ``ValueError`` if the stored bytes do not decode (the store's
    update then writes nothing and reports the error)."""

    def merge(current: bytes | None) -> bytes | None:
        if current is None:
            return version.encode(incoming)
        stored = version.decode(current)
        merged = version.merge(stored, incoming)
        return None if merged == stored else version.encode(merged)

    return merge


def capped_quorum(asked: int | None, resolved: int, preflist: tuple[str, ...]) -> int:
    """A default quorum counts out of the copies the cluster can hold: a cluster smaller
    than N keeps ``len(preflist)`` copies, so its default R and W are capped there (a
    one-node cluster answers at R = W = 1). A quorum the client asked for is never
    lowered: more than the copies there are fails with 503."""
    if asked is None and preflist:
        return min(resolved, len(preflist))
    return resolved
