"""Fault injection for transports: drop a fraction of messages, delay them, cut traffic to
or from named nodes (one way or both), then heal.

Used by the gRPC and in-memory transports (and by tests and simulators). Off unless a
node is started with fault injection enabled. Decisions use a seeded ``random.Random``;
rules may change at any time from any thread.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["both", "out", "in"]

DROP = -1.0
"""``Faults.outbound`` result: drop the message."""


class FaultError(ValueError):
    """A fault rule that makes no sense (rate outside 0..1, negative delay, bad direction)."""


@dataclass(frozen=True, slots=True)
class FaultRules:
    """The rules in force; ``cut_out`` / ``cut_in`` hold node names."""

    drop_rate: float = 0.0
    delay_s: float = 0.0
    cut_out: frozenset[str] = field(default_factory=frozenset)
    cut_in: frozenset[str] = field(default_factory=frozenset)

    def as_dict(self) -> dict[str, object]:
        return {
            "drop_rate": self.drop_rate,
            "delay_s": self.delay_s,
            "cut_out": sorted(self.cut_out),
            "cut_in": sorted(self.cut_in),
        }


class Faults:
    """Thread-safe holder of the fault rules of one node."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules = FaultRules()
        self.dropped_out = 0
        self.dropped_in = 0

    @property
    def rules(self) -> FaultRules:
        with self._lock:
            return self._rules

    def set_loss(self, drop_rate: float | None = None, delay_s: float | None = None) -> None:
        """Drop outgoing messages with probability ``drop_rate``; delay the rest."""
        with self._lock:
            rules = self._rules
            if drop_rate is not None:
                if not 0.0 <= drop_rate <= 1.0:
                    raise FaultError(f"drop_rate must be between 0 and 1, got {drop_rate}")
                rules = FaultRules(drop_rate, rules.delay_s, rules.cut_out, rules.cut_in)
            if delay_s is not None:
                if not 0.0 <= delay_s <= 60.0:
                    raise FaultError(f"delay_s must be between 0 and 60, got {delay_s}")
                rules = FaultRules(rules.drop_rate, delay_s, rules.cut_out, rules.cut_in)
            self._rules = rules

    def cut(self, peer: str, direction: Direction = "both") -> None:
        """Drop traffic to (``out``), from (``in``) or to and from (``both``) ``peer``."""
        if direction not in ("both", "out", "in"):
            raise FaultError(f"direction must be both, out or in, got {direction!r}")
        if not peer:
            raise FaultError("a cut needs a node name")
        with self._lock:
            rules = self._rules
            cut_out = rules.cut_out | {peer} if direction in ("both", "out") else rules.cut_out
            cut_in = rules.cut_in | {peer} if direction in ("both", "in") else rules.cut_in
            self._rules = FaultRules(rules.drop_rate, rules.delay_s, cut_out, cut_in)

    def heal(self, peer: str | None = None) -> None:
        """Remove the cuts to and from ``peer``, or every rule if ``peer`` is None."""
        with self._lock:
            if peer is None:
                self._rules = FaultRules()
                return
            rules = self._rules
            self._rules = FaultRules(rules.drop_rate, rules.delay_s,
                                     rules.cut_out - {peer}, rules.cut_in - {peer})

    def outbound(self, peer: str) -> float:
        """For a message to ``peer``: DROP, or the delay in seconds (0: send now)."""
        with self._lock:
            rules = self._rules
            if peer in rules.cut_out or (
                rules.drop_rate and self._rng.random() < rules.drop_rate
            ):
                self.dropped_out += 1
                return DROP
            return rules.delay_s

    def inbound(self, peer: str) -> bool:
        """True if a message from ``peer`` must be dropped."""
        with self._lock:
            if peer in self._rules.cut_in:
                self.dropped_in += 1
                return True
            return False
