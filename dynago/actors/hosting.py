"""LoopActor: a pykka actor hosted on an asyncio event loop instead of its own thread.

A ThreadingActor's mailbox is a ``queue.Queue`` drained by the actor's thread: every
``tell`` from another thread wakes that thread (a futex), and every message the actor
then writes to a gRPC stream wakes the transport's loop (``call_soon_threadsafe``, a
write to its self-pipe). For an actor whose traffic comes from and goes to the streams
(the KvActor: replica messages in, replica messages and acks out) that is two thread
hops per message, and they cost more than the work (docs/performance.md).

A LoopActor given a loop (the transport's) runs its ``on_start``, its messages and its
``on_stop`` as callbacks on that loop, one message at a time and in the order they were
put, exactly like a ThreadingActor's thread would:

* a ``tell`` from the loop's own thread (a stream's read callback) schedules the drain
  with ``call_soon``: no wake-up at all;
* a ``tell`` from another thread wakes the loop once per burst, not once per message:
  the drain is scheduled only when none is pending, and it takes everything queued;
* a drain handles at most ``DRAIN_LIMIT`` messages before it lets the loop run its other
  callbacks (reads and writes of the streams), so a flood cannot starve the transport.

pykka's semantics are kept: an exception in a ``tell``'s handler stops the actor
(``on_failure`` runs), one in an ``ask``'s goes back to the caller; ``stop`` handles what
was queued before it; asks still queued when it stops fail with ``ActorDeadError``.

The rule that comes with it: **code on the loop never blocks on an ask of an actor
hosted on the same loop** (it would wait for itself). The actors hosted here answer
through callbacks, as every actor of the transport's loop must (../shared/STACK.md).

Without a loop (``loop=None``: the in-memory transport of the tests) it is an ordinary
ThreadingActor.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import threading
from typing import Any

import pykka
from pykka._envelope import Envelope

log = logging.getLogger(__name__)

DRAIN_LIMIT = 64
"""Messages one drain handles before it yields the loop to its other callbacks."""


class LoopInbox:
    """An actor's mailbox drained on an asyncio loop (pykka's ``ActorInbox`` protocol).

    ``put`` may be called from any thread. ``get`` and ``empty`` are called only on the
    loop's thread, by the drain (and by pykka's teardown, after the actor stopped).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: collections.deque[Envelope[Any]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._drain: Any = None
        self.wakeups = 0
        """Drains scheduled from another thread (each is one wake-up of the loop)."""

    def bind(self, drain: Any) -> None:
        """Start draining with ``drain`` (the actor's start: schedules the first drain,
        which runs ``on_start``)."""
        with self._lock:
            self._drain = drain
            self._scheduled = True
        self.loop.call_soon_threadsafe(drain)

    def put(self, envelope: Envelope[Any], /) -> None:
        self._items.append(envelope)
        self.again()

    def _schedule(self, drain: Any) -> None:
        try:
            if asyncio.events._get_running_loop() is self.loop:
                self.loop.call_soon(drain)
            else:
                self.wakeups += 1
                self.loop.call_soon_threadsafe(drain)
        except RuntimeError:
            pass  # the loop is closed: the node is stopping, nothing will drain

    def taking(self) -> None:
        """The drain starts taking messages: a put from now on schedules another."""
        with self._lock:
            self._scheduled = False

    def again(self) -> None:
        """Schedule a drain unless one is pending (after a put, or when the drain stopped
        at its limit with messages left)."""
        with self._lock:
            if self._scheduled or self._drain is None:
                return
            self._scheduled = True
            drain = self._drain
        self._schedule(drain)

    def get(self) -> Envelope[Any]:
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        """Messages waiting (as ``queue.Queue.qsize``: the mailbox depth metrics)."""
        return len(self._items)


class LoopActor(pykka.ThreadingActor):
    """A pykka actor hosted on ``self.host_loop`` when it is set, else on a thread.

    A subclass sets ``self.host_loop`` **before** calling ``super().__init__()`` (pykka
    creates the mailbox there).
    """

    host_loop: asyncio.AbstractEventLoop | None = None

    def _create_actor_inbox(self) -> Any:  # type: ignore[override]
        if self.host_loop is None:
            return pykka.ThreadingActor._create_actor_inbox()
        return LoopInbox(self.host_loop)

    def _start_actor_loop(self) -> None:
        inbox = self.actor_inbox
        if not isinstance(inbox, LoopInbox):
            super()._start_actor_loop()
            return
        started = False

        def drain() -> None:
            nonlocal started
            if not started:
                started = True
                self._actor_loop_setup()
            inbox.taking()
            for _ in range(DRAIN_LIMIT):
                if self.actor_stopped.is_set() or inbox.empty():
                    break
                self._handle_one(inbox.get())
            if self.actor_stopped.is_set():
                self._actor_loop_teardown()
            elif not inbox.empty():
                inbox.again()

        inbox.bind(drain)

    def _handle_one(self, envelope: Envelope[Any]) -> None:
        """One message, as pykka's ``_actor_loop_running`` handles it on a thread."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:  # noqa: BLE001
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            # pykka stops every actor here; on the loop we must not block on that.
            log.error("%s stopped by %r", self, sys.exc_info()[1])
            self._stop()
            raise
