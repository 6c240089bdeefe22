"""The gossip queue: which member records still need to be pushed, and how often.

Each changed record is sent in ``retransmit_mult * ceil(log10(N + 1))`` gossip rounds
(memberlist's rule), fewest-sent first, then dropped. A newer record of the same member
replaces the queued one and starts its count again.
"""

from __future__ import annotations

import math

from dynago.core.member import Member


def retransmit_limit(retransmit_mult: int, cluster_size: int) -> int:
    """Rounds a change is gossiped in a cluster of ``cluster_size`` members."""
    return retransmit_mult * max(1, math.ceil(math.log10(cluster_size + 1)))


class BroadcastQueue:
    """Pending member records with the number of rounds each has been sent in."""

    __slots__ = ("_pending", "_order")

    def __init__(self) -> None:
        self._pending: dict[str, tuple[Member, int]] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._pending)

    def enqueue(self, member: Member) -> None:
        """Queue ``member`` for gossip, replacing any older queued record of it."""
        self._pending[member.name] = (member, 0)

    def take(self, limit: int, retransmits: int) -> tuple[Member, ...]:
        """Pick up to ``limit`` records for one round and count the round against them.

        Records already sent in ``retransmits`` rounds are dropped.
        """
        if not self._pending:
            return ()
        chosen = sorted(self._pending.items(), key=lambda item: item[1][1])[:limit]
        out: list[Member] = []
        for name, (member, sent) in chosen:
            out.append(member)
            if sent + 1 >= retransmits:
                del self._pending[name]
            else:
                self._pending[name] = (member, sent + 1)
        return tuple(out)

    def pending(self) -> tuple[Member, ...]:
        """Every queued record (for inspection and tests)."""
        return tuple(member for member, _ in self._pending.values())
