"""The gossip queue: which member records still need to be pushed, and how often.

Each changed record is sent in ``retransmit_mult * ceil(log10(N + 1))`` gossip rounds
(memberlist's rule), fewest-sent first, then dropped. A newer record of the same member
replaces the queued one and starts its count again.

Records are kept in buckets by how often they were sent, so that a round costs
O(records taken), not a sort of the whole queue: a node that just joined a cluster of
thousands holds thousands of new records at once.
"""

from __future__ import annotations

import math
from itertools import islice

from dynago.core.member import Member

PUSH_PULL_SCALE_THRESHOLD = 32
"""Cluster size above which the anti-entropy period grows (memberlist's threshold)."""


def retransmit_limit(retransmit_mult: int, cluster_size: int) -> int:
    """Rounds a change is gossiped in a cluster of ``cluster_size`` members."""
    return retransmit_mult * max(1, math.ceil(math.log10(cluster_size + 1)))


def anti_entropy_scale(cluster_size: int) -> int:
    """Multiplier of the anti-entropy period in a cluster of ``cluster_size`` members.

    1 up to 32 members, then ``ceil(log2(N) - log2(32)) + 1`` (memberlist's
    pushPullScale): each exchange carries all N records, so larger clusters exchange less
    often, and the bytes a node spends on anti-entropy grow like N / log N, not N.
    """
    if cluster_size <= PUSH_PULL_SCALE_THRESHOLD:
        return 1
    return math.ceil(math.log2(cluster_size) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1


class BroadcastQueue:
    """Pending member records with the number of rounds each has been sent in."""

    __slots__ = ("_pending", "_buckets")

    def __init__(self) -> None:
        self._pending: dict[str, tuple[Member, int]] = {}
        """Name -> (record, rounds sent). Non-empty exactly when there is gossip to send."""
        self._buckets: list[dict[str, None]] = [{}]
        """``_buckets[k]``: names of the records sent in k rounds, oldest first."""

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def queued(self) -> dict[str, tuple[Member, int]]:
        """The queue itself, read-only by contract (a cheap emptiness test)."""
        return self._pending

    def enqueue(self, member: Member) -> None:
        """Queue ``member`` for gossip, replacing any older queued record of it."""
        name = member.name
        queued = self._pending.get(name)
        if queued is not None:
            del self._buckets[queued[1]][name]
        self._pending[name] = (member, 0)
        self._buckets[0][name] = None

    def take(self, limit: int, retransmits: int) -> tuple[Member, ...]:
        """Pick up to ``limit`` records for one round and count the round against them.

        Records already sent in ``retransmits`` rounds are dropped.
        """
        pending = self._pending
        if not pending:
            return ()
        buckets = self._buckets
        # Fewest-sent first, oldest first within a bucket: (rounds sent, names) per
        # bucket that gives any.
        chosen: list[tuple[int, list[str]]] = []
        room = limit
        unseen = len(pending)
        for sent, bucket in enumerate(buckets):
            if not bucket:
                continue
            names = list(bucket) if len(bucket) <= room else list(islice(bucket, room))
            chosen.append((sent, names))
            room -= len(names)
            unseen -= len(bucket)
            if room <= 0 or not unseen:
                break
        out: list[Member] = []
        for _sent, names in chosen:
            out.extend([pending[name][0] for name in names])
        # Move each record up one bucket, the highest bucket first: what moves into a
        # bucket lands after what stays there, as it would moving one by one.
        for sent, names in reversed(chosen):
            bucket = buckets[sent]
            if len(names) == len(bucket):
                bucket.clear()
            else:
                for name in names:
                    del bucket[name]
            after = sent + 1
            if after >= retransmits:
                for name in names:
                    del pending[name]
                continue
            if after == len(buckets):
                buckets.append({})
            following = buckets[after]
            for name in names:
                pending[name] = (pending[name][0], after)
                following[name] = None
        return tuple(out)

    def pending(self) -> tuple[Member, ...]:
        """Every queued record (for inspection and tests)."""
        return tuple(member for member, _ in self._pending.values())
