"""LoopActor (actors/hosting.py): a pykka actor hosted on an asyncio loop keeps pykka's
semantics — order, asks, failures, stop — and wakes the loop once per burst of tells."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from dynago.actors.hosting import DRAIN_LIMIT, LoopActor, LoopInbox
from tests.actors.test_actor_kv import eventually


class Recorder(LoopActor):
    def __init__(self, loop: asyncio.AbstractEventLoop | None,
                 seen: list[Any] | None = None,
                 stopped: threading.Event | None = None,
                 failures: list[str] | None = None) -> None:
        self.host_loop = loop
        super().__init__()
        self.seen: list[Any] = seen if seen is not None else []
        self.threads: set[int] = set()
        self.failures: list[str] = failures if failures is not None else []
        self.stopped = stopped or threading.Event()

    def on_start(self) -> None:
        self.threads.add(threading.get_ident())

    def on_stop(self) -> None:
        self.stopped.set()

    def on_failure(self, *exc_info: Any) -> None:
        self.failures.append(repr(exc_info[1]))

    def on_receive(self, message: Any) -> Any:
        self.threads.add(threading.get_ident())
        if message == "boom":
            raise ValueError("boom")
        if message == "seen":
            return list(self.seen)
        if message == "threads":
            return set(self.threads)
        self.seen.append(message)
        return None


@pytest.fixture
def loop() -> Iterator[tuple[asyncio.AbstractEventLoop, int]]:
    loop = asyncio.new_event_loop()
    ident: list[int] = []
    ready = threading.Event()

    def run() -> None:
        ident.append(threading.get_ident())
        ready.set()
        loop.run_forever()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert ready.wait(5)
    yield loop, ident[0]
    pykka.ActorRegistry.stop_all(timeout=5)
    loop.call_soon_threadsafe(loop.stop)
    runner.join(timeout=5)
    loop.close()


def inbox_of(ref: pykka.ActorRef[Any]) -> LoopInbox:
    inbox = ref.actor_inbox
    assert isinstance(inbox, LoopInbox)
    return inbox


def test_messages_run_on_the_loop_in_order_and_asks_answer(loop: Any) -> None:
    host, host_thread = loop
    ref = Recorder.start(host)
    for i in range(500):
        ref.tell(i)
    assert ref.ask("seen", timeout=5) == list(range(500))
    assert ref.ask("threads", timeout=5) == {host_thread}


def test_without_a_loop_it_is_a_threading_actor(loop: Any) -> None:
    _host, host_thread = loop
    ref = Recorder.start(None)
    ref.tell("x")
    assert ref.ask("seen", timeout=5) == ["x"]
    threads = ref.ask("threads", timeout=5)
    assert host_thread not in threads and threading.get_ident() not in threads
    assert not isinstance(ref.actor_inbox, LoopInbox)


def test_a_burst_of_tells_from_another_thread_wakes_the_loop_once(loop: Any) -> None:
    host, _ = loop
    ref = Recorder.start(host)
    ref.ask("seen", timeout=5)  # started
    wakeups = inbox_of(ref).wakeups
    hold, held = threading.Event(), threading.Event()

    def busy() -> None:  # the loop is busy with something else meanwhile
        held.set()
        hold.wait(5)

    host.call_soon_threadsafe(busy)
    assert held.wait(5)
    for i in range(3 * DRAIN_LIMIT + 5):  # more than one drain takes
        ref.tell(i)
    hold.set()
    eventually(lambda: len(ref.ask("seen", timeout=5)) == 3 * DRAIN_LIMIT + 5, "all handled")
    assert ref.ask("seen", timeout=5) == list(range(3 * DRAIN_LIMIT + 5))
    # one wake-up for the burst, one for each ask after it
    assert inbox_of(ref).wakeups - wakeups <= 4


def test_tells_from_the_loop_thread_wake_nothing(loop: Any) -> None:
    host, _ = loop
    ref = Recorder.start(host)
    ref.ask("seen", timeout=5)
    wakeups = inbox_of(ref).wakeups
    host.call_soon_threadsafe(lambda: [ref.tell(i) for i in range(50)])
    eventually(lambda: len(ref.ask("seen", timeout=5)) == 50, "all handled")
    assert inbox_of(ref).wakeups - wakeups <= 3  # the asks' own, not the 50 tells'


def test_an_ask_that_raises_answers_the_caller_and_the_actor_lives(loop: Any) -> None:
    host, _ = loop
    ref = Recorder.start(host)
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=5)
    ref.tell("after")
    assert ref.ask("seen", timeout=5) == ["after"]


def test_a_tell_that_raises_stops_the_actor_with_on_failure(loop: Any) -> None:
    host, _ = loop
    failures: list[str] = []
    ref = Recorder.start(host, None, None, failures)
    assert ref.ask("seen", timeout=5) == []
    ref.tell("boom")
    eventually(lambda: not ref.is_alive(), "the actor stopped")
    eventually(lambda: failures == ["ValueError('boom')"], "on_failure ran")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("seen", timeout=5)


def test_stop_handles_what_was_queued_before_it(loop: Any) -> None:
    host, _ = loop
    seen: list[Any] = []
    stopped = threading.Event()
    ref = Recorder.start(host, seen, stopped)
    hold, held = threading.Event(), threading.Event()

    def busy() -> None:
        held.set()
        hold.wait(5)

    ref.ask("seen", timeout=5)
    host.call_soon_threadsafe(busy)
    assert held.wait(5)
    for i in range(10):
        ref.tell(i)
    stopping = ref.stop(block=False)
    hold.set()
    stopping.get(timeout=5)
    assert stopped.is_set()
    assert seen == list(range(10))
    assert not ref.is_alive()
