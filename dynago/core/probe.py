"""SWIM probe bookkeeping (Das, Gupta, Motivala, "SWIM", DSN 2002, §3 and §4.3).

Which member to probe next (round-robin over a list shuffled anew each round, so every
member is probed within one round and first detection takes ~1.58 periods on average;
the shuffle is drawn lazily, one Fisher-Yates step per probe, so a round costs O(1) per
probe and one list copy, whatever the cluster size),
the probes in flight with their deadlines, and the indirect probes this node relays for
others. Pure data: MembershipCore decides what to send.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from dynago.core.nameset import below


@dataclass(slots=True)
class ActiveProbe:
    """A probe this node started: direct until ``timeout_at``, indirect until ``ends_at``."""

    seq: int
    target: str
    incarnation: int
    started: float
    timeout_at: float
    ends_at: float
    indirect: bool = False
    helpers: int = 0
    nacks: int = 0


@dataclass(slots=True)
class Relay:
    """An indirect probe this node runs for ``origin`` (a PingReq it received)."""

    origin: str
    origin_address: str
    origin_seq: int
    target: str
    deadline: float


class Prober:
    """Round-robin target order, probes in flight and relays, keyed by sequence number."""

    __slots__ = ("_rng", "_order", "_position", "_seq", "active", "by_target", "relays")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._order: list[str] = []
        self._position = 0
        self._seq = 0
        self.active: dict[int, ActiveProbe] = {}
        self.by_target: dict[str, int] = {}
        self.relays: dict[int, Relay] = {}

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def next_target(
        self, live: Callable[[], list[str]], is_live: Callable[[str], bool]
    ) -> str | None:
        """The next member to probe, or None if there is nobody (or all are in flight).

        ``live()`` returns a fresh list of the live members; it is called only when a new
        round begins. Members that stopped being live meanwhile are skipped.
        """
        for _refill in range(2):
            order = self._order
            end = len(order)
            while self._position < end:
                # One step of Fisher-Yates: a uniform pick among the members not yet
                # probed this round.
                position = self._position
                pick = position + below(self._rng, end - position)
                order[position], order[pick] = order[pick], order[position]
                self._position = position + 1
                name = order[position]
                if is_live(name) and name not in self.by_target:
                    return name
            self._order = live()
            self._position = 0
            if not self._order:
                return None
        return None

    def start(
        self, target: str, incarnation: int, now: float, timeout_s: float, period_s: float
    ) -> ActiveProbe:
        probe = ActiveProbe(
            seq=self.next_seq(),
            target=target,
            incarnation=incarnation,
            started=now,
            timeout_at=now + timeout_s,
            ends_at=now + period_s,
        )
        self.active[probe.seq] = probe
        self.by_target[target] = probe.seq
        return probe

    def finish(self, seq: int) -> ActiveProbe | None:
        """Remove and return probe ``seq`` (None if it is not in flight)."""
        probe = self.active.pop(seq, None)
        if probe is not None and self.by_target.get(probe.target) == seq:
            del self.by_target[probe.target]
        return probe

    def forget_target(self, target: str) -> None:
        """Drop a probe of ``target`` (it left, failed or was reaped meanwhile)."""
        seq = self.by_target.pop(target, None)
        if seq is not None:
            self.active.pop(seq, None)

    def relay(
        self, origin: str, origin_address: str, origin_seq: int, target: str, deadline: float
    ) -> int:
        seq = self.next_seq()
        self.relays[seq] = Relay(origin, origin_address, origin_seq, target, deadline)
        return seq
