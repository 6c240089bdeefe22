"""EventQueue: membership events for a consumer on another thread, never slowing the node.

A subscriber callable runs on the membership actor's thread, so it must not block. An
EventQueue is such a callable: it puts each event (stamped with the wall time it was
published) into a bounded queue and returns at once. When the consumer falls
``capacity`` events behind, the queue stops taking events and marks itself
``overflowed``: the consumer has lost events and should start over (the admin API's
event stream disconnects such a client). The node itself never waits for a consumer.

    with EventQueue.subscribe(node.membership, capacity=256) as (queue, snapshot):
        for event in queue.iter(timeout_s=1.0):
            ...
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from dynago.actors import api
from dynago.actors.messages import MemberView
from dynago.core.messages import EventKind, MemberEvent

DEFAULT_CAPACITY = 256


class EventQueue:
    """A bounded queue of ``(wall_time, MemberEvent)`` fed by the membership actor."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._queue: queue.Queue[tuple[float, MemberEvent]] = queue.Queue(capacity)
        self._overflowed = threading.Event()
        self._ref: api.Ref | None = None
        self._token: int | None = None

    # Called by the membership actor, on its thread: never blocks.
    def __call__(self, event: MemberEvent) -> None:
        if self._overflowed.is_set():
            return
        try:
            self._queue.put_nowait((time.time(), event))
        except queue.Full:
            self._overflowed.set()

    @property
    def overflowed(self) -> bool:
        """True once an event was dropped because the consumer was ``capacity`` behind."""
        return self._overflowed.is_set()

    def get(self, timeout_s: float) -> tuple[float, MemberEvent] | None:
        """The next event and when it was published; None if none came in ``timeout_s``."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def take(self, limit: int) -> list[tuple[float, MemberEvent]]:
        """Up to ``limit`` events that are queued now, without waiting."""
        taken: list[tuple[float, MemberEvent]] = []
        while len(taken) < limit:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return taken

    def iter(self, timeout_s: float) -> Iterator[tuple[float, MemberEvent]]:
        """Events until none comes for ``timeout_s`` or the queue overflows."""
        while not self.overflowed:
            item = self.get(timeout_s)
            if item is None:
                return
            yield item

    @classmethod
    def subscribe(
        cls,
        ref: api.Ref,
        *,
        capacity: int = DEFAULT_CAPACITY,
        kinds: Iterable[EventKind] | None = None,
        timeout_s: float = 5.0,
    ) -> _Subscription:
        """Subscribe a new EventQueue to ``ref``; use as a context manager, which gives
        ``(queue, snapshot)`` and unsubscribes on exit."""
        events = cls(capacity)
        token, snapshot = api.subscribe_with_snapshot(ref, events, kinds=kinds,
                                                      timeout_s=timeout_s)
        events._ref, events._token = ref, token
        return _Subscription(events, snapshot)

    def close(self, timeout_s: float = 2.0) -> None:
        """Unsubscribe (if subscribed through ``subscribe``); safe to call twice, and on a
        stopped node."""
        ref, token = self._ref, self._token
        self._ref = self._token = None
        if ref is None or token is None:
            return
        try:
            api.unsubscribe(ref, token, timeout_s=timeout_s)
        except Exception:  # noqa: BLE001 - the node may be stopping: nothing to undo then
            pass


class _Subscription:
    """Context manager returned by EventQueue.subscribe."""

    def __init__(self, events: EventQueue, snapshot: tuple[MemberView, ...]) -> None:
        self.events = events
        self.snapshot = snapshot

    def __enter__(self) -> tuple[EventQueue, tuple[MemberView, ...]]:
        return self.events, self.snapshot

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> Any:
        self.events.close()
        return None
