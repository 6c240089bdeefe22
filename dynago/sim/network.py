"""The simulated network: who can reach whom, how late, and what gets lost.

Every message takes ``latency_s`` (a stream is FIFO, so one fixed latency keeps each
pair's messages in order) and is lost with probability ``loss``. A partition puts
nodes in groups; nothing crosses between groups. A one-way cut drops what one node
sends to another but not the answer. All draws come from one seeded ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class NetworkModel:
    """Latency, loss and reachability between simulated nodes."""

    rng: random.Random
    latency_s: float = 0.001
    loss: float = 0.0
    groups: dict[str, int] = field(default_factory=dict)
    """Node -> partition group; nodes not listed are in group 0."""
    one_way_cuts: set[tuple[str, str]] = field(default_factory=set)
    """(sender, receiver) pairs whose messages are dropped."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), not {self.loss}")
        if self.latency_s <= 0:
            raise ValueError(f"latency must be positive, not {self.latency_s}")

    def reachable(self, sender: str, receiver: str) -> bool:
        """Whether ``sender``'s messages can reach ``receiver`` at all (no loss draw)."""
        if self.groups and self.groups.get(sender, 0) != self.groups.get(receiver, 0):
            return False
        return not (self.one_way_cuts and (sender, receiver) in self.one_way_cuts)

    def delivers(self, sender: str, receiver: str) -> bool:
        """Whether one message from ``sender`` to ``receiver`` arrives (draws the loss)."""
        if not self.reachable(sender, receiver):
            return False
        return not (self.loss and self.rng.random() < self.loss)

    def partition(self, *groups: list[str]) -> None:
        """Split the named nodes into ``groups``; the rest stay in group 0 with the first."""
        self.groups = {name: index for index, group in enumerate(groups) for name in group}

    def heal(self) -> None:
        """Remove every partition and one-way cut."""
        self.groups = {}
        self.one_way_cuts = set()
