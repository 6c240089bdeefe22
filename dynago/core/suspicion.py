"""Lifeguard suspicion timeouts (Dadgar et al., "Lifeguard: Local Health Awareness for
More Accurate Failure Detection", 2018, §IV-B "Dynamic Suspicion Timeouts").

A suspicion starts with a long timeout and shrinks it as *independent* members confirm it
(suspect messages from distinct origins), down to a minimum scaled with log10(N):

    min = suspicion_mult * max(1, log10(N)) * probe_interval
    max = suspicion_max_timeout_mult * min
    k   = max(0, min(suspicion_mult - 2, N - 2))      # confirmations expected
    timeout(c) = max(min, max - (max - min) * log(c + 1) / log(k + 1))

with ``c`` the confirmations received after the first suspicion (memberlist's rule).
"""

from __future__ import annotations

import math


def suspicion_bounds(
    suspicion_mult: int, max_timeout_mult: int, probe_interval_s: float, cluster_size: int
) -> tuple[float, float]:
    """(minimum, maximum) suspicion timeout in seconds for a cluster of ``cluster_size``."""
    scale = max(1.0, math.log10(max(1, cluster_size)))
    minimum = suspicion_mult * scale * probe_interval_s
    return minimum, max_timeout_mult * minimum


def expected_confirmations(suspicion_mult: int, cluster_size: int) -> int:
    """How many independent confirmations shrink a suspicion to its minimum timeout."""
    return max(0, min(suspicion_mult - 2, cluster_size - 2))


def suspicion_timeout(minimum: float, maximum: float, k: int, confirmations: int) -> float:
    """The Lifeguard timeout after ``confirmations`` independent confirmations."""
    if k < 1:
        return minimum
    fraction = math.log(confirmations + 1) / math.log(k + 1)
    return max(minimum, maximum - (maximum - minimum) * fraction)


class Suspicion:
    """One running suspicion of one member at one incarnation."""

    __slots__ = ("incarnation", "started", "minimum", "maximum", "k", "origins", "due")

    def __init__(
        self, incarnation: int, started: float, minimum: float, maximum: float, k: int
    ) -> None:
        self.incarnation = incarnation
        self.started = started
        self.minimum = minimum
        self.maximum = maximum
        self.k = k
        self.origins: set[str] = set()
        self.due = started + maximum if k >= 1 else started + minimum
        """When the suspect is declared failed unless it refutes first."""

    def confirm(self, origin: str) -> bool:
        """Count a suspicion from ``origin``; True if it was a new, independent one."""
        if not origin or origin in self.origins:
            return False
        self.origins.add(origin)
        self.due = self.started + suspicion_timeout(
            self.minimum, self.maximum, self.k, self.confirmations
        )
        return True

    def postpone(self, delay: float) -> None:
        """Move the start (and so the deadline) by ``delay`` seconds."""
        self.started += delay
        self.due += delay

    @property
    def confirmations(self) -> int:
        """Independent confirmations after the first suspicion."""
        return max(0, len(self.origins) - 1)
