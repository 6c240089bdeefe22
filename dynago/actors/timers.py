"""Timers for actors: pykka has none, so ticks and delayed messages come from here.

A ``Scheduler`` runs callbacks later. The callbacks it runs must not block: they only
``tell`` an actor. ``ThreadScheduler`` runs them on one daemon thread per node;
``ManualScheduler`` runs them when a test advances its ManualClock.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from dynago.clock import ManualClock

_log = logging.getLogger(__name__)


class Timer(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Runs callbacks after a delay, or periodically. Thread-safe."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer: ...

    def call_every(self, interval_s: float, callback: Callable[[], None]) -> Timer: ...


class _Entry:
    __slots__ = ("callback", "interval", "cancelled")

    def __init__(self, callback: Callable[[], None], interval: float | None) -> None:
        self.callback = callback
        self.interval = interval
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _HeapScheduler:
    """Shared bookkeeping: a heap of (due time, sequence, entry)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()

    def _now(self) -> float:
        raise NotImplementedError

    def _push(self, due: float, entry: _Entry) -> None:
        with self._lock:
            heapq.heappush(self._heap, (due, next(self._seq), entry))
            if self._heap[0][2] is entry:
                self._lock.notify()  # it is due first: the waiting thread must wait less

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        entry = _Entry(callback, None)
        self._push(self._now() + max(0.0, delay_s), entry)
        return entry

    def call_every(self, interval_s: float, callback: Callable[[], None]) -> Timer:
        if interval_s <= 0:
            raise ValueError("interval_s must be greater than 0")
        entry = _Entry(callback, interval_s)
        self._push(self._now() + interval_s, entry)
        return entry

    def _pop_due(self, now: float) -> _Entry | None:
        with self._lock:
            while self._heap and self._heap[0][2].cancelled:
                heapq.heappop(self._heap)
            if not self._heap or self._heap[0][0] > now:
                return None
            due, _, entry = heapq.heappop(self._heap)
            if entry.interval is not None:
                # Periodic timers do not drift, and skip beats they missed.
                next_due = due + entry.interval
                if next_due <= now:
                    next_due = now + entry.interval
                heapq.heappush(self._heap, (next_due, next(self._seq), entry))
            return entry


class ThreadScheduler(_HeapScheduler):
    """Runs callbacks on one daemon thread. ``stop()`` ends the thread."""

    def __init__(self, name: str = "dynago-timers") -> None:
        super().__init__()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _now(self) -> float:
        return time.monotonic()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                wait = None
                if self._heap:
                    wait = max(0.0, self._heap[0][0] - self._now())
                if wait is None or wait > 0:
                    self._lock.wait(timeout=wait)
                    continue
            entry = self._pop_due(self._now() + 1e-9)
            if entry is not None and not entry.cancelled:
                try:
                    entry.callback()
                except Exception:  # a timer callback only tells; a failure is a bug
                    _log.exception("timer callback failed")

    def stop(self, timeout_s: float = 1.0) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)


class ManualScheduler(_HeapScheduler):
    """Runs due callbacks in the caller's thread when the test calls ``advance``."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock

    def _now(self) -> float:
        return self.clock.monotonic()

    def advance(self, seconds: float, step_s: float | None = None) -> None:
        """Advance the clock by ``seconds`` (in steps of ``step_s``), firing due timers."""
        remaining = seconds
        step = step_s or seconds
        while remaining > 1e-12:
            delta = min(step, remaining)
            self.clock.advance(delta)
            remaining -= delta
            self.run_due()

    def run_due(self) -> None:
        """Fire every timer that is due now."""
        for _ in range(100_000):
            # A timer set for exactly the time a run of steps adds up to fires, although
            # the float sum of the steps may read a hair earlier.
            entry = self._pop_due(self._now() + 1e-9)
            if entry is None:
                return
            if not entry.cancelled:
                entry.callback()
        raise RuntimeError("more than 100000 timers due at once: a periodic timer of 0?")
