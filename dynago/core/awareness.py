"""Lifeguard local health awareness (Lifeguard §IV-A "Local Health Multiplier").

A node that sees signs that *it* is the slow one — probes whose helpers did not even send
a nack, having to refute suspicions of itself — raises a score; successful probes lower
it. Probe interval and probe timeout are multiplied by ``score + 1``, so a struggling
node probes less often and waits longer before suspecting others, instead of accusing
healthy members.
"""

from __future__ import annotations


class Awareness:
    """The local health score, between 0 (healthy) and ``max_multiplier - 1``."""

    __slots__ = ("_max", "score")

    def __init__(self, max_multiplier: int) -> None:
        self._max = max(1, max_multiplier)
        self.score = 0

    def apply(self, delta: int) -> None:
        """Raise (positive) or lower (negative) the score, within its bounds."""
        self.score = min(self._max - 1, max(0, self.score + delta))

    def scale(self, seconds: float) -> float:
        """``seconds`` stretched by the current health multiplier."""
        return seconds * (self.score + 1)
