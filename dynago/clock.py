"""Clocks: a real one and a manual one for tests.

Only the actors and the node read a clock; the pure core is handed ``now``. ``monotonic``
orders local events; ``wall`` is only ever used to *display* when this node saw a change.
No wall time of another node is ever compared with ours.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """A source of time. Implementations must be safe to call from any thread."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch, for display only."""
        ...


class SystemClock:
    """The machine's clocks, optionally with the wall clock shifted by ``wall_offset_s``."""

    def __init__(self, wall_offset_s: float = 0.0) -> None:
        self.wall_offset_s = wall_offset_s

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time() + self.wall_offset_s


class ManualClock:
    """A clock that moves only when told to (``advance``)."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = start
        self._wall_delta = wall_start - start

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> float:
        with self._lock:
            return self._now + self._wall_delta

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new monotonic time."""
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        with self._lock:
            self._now += seconds
            return self._now
