"""Shared helpers for actor-level tests: the real actors, a fake transport, manual time.

How these tests work, and how to write your own against dynago:

* Start the real actor (``MembershipActor`` or ``PeerActor``) with a ``FakeTransport``,
  a ``ManualClock`` and a ``ManualScheduler``: time moves only when the test calls
  ``scheduler.advance(...)``, and a dial only succeeds or fails when the test says so.
* Put messages in with ``tell`` (fire and forget) or ``ask`` (always with a timeout).
  Messages one thread sends to one actor are handled in the order sent, so an ``ask``
  after a ``tell`` sees the effect of the ``tell``.
* When work crosses threads (an actor tells another actor, which writes to a stream),
  wait for it with ``eventually(...)``: it polls with a deadline. Never ``sleep`` a fixed
  time.
* Every actor started in a test is stopped when the test ends (``_stop_all_actors``).

pytest advises against ``import conftest`` (several conftest modules may share that
name), so the helpers are handed to tests as fixtures: ``eventually``, ``clock``,
``scheduler``, ``config``, ``transport``, ``start_membership``, ``me``, ``membership``,
``events``, ``recorder`` and ``start_peer``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka
import pytest

from dynago.actors import api
from dynago.actors.membership import MembershipActor
from dynago.actors.messages import Attach, StreamOpened, Tick
from dynago.actors.peer import PeerActor
from dynago.actors.timers import ManualScheduler, Timer
from dynago.clock import ManualClock
from dynago.config import Config
from dynago.core.member import Member
from dynago.core.messages import CoreMessage, MemberEvent
from dynago.transport.base import OnDialFailed, OnStream, Stream
from dynago.transport.memory import MemoryStream

T = TypeVar("T")

ME = "me"
"""Name of the node under test in these tests."""
ME_ADDRESS = "127.0.0.1:7000"

ASK_TIMEOUT_S = 5.0
"""Every ask in these tests is bounded; a hung actor fails the test instead of hanging it."""


def address(port: int) -> str:
    """A peer address. Nothing listens there: these tests never open a socket."""
    return f"127.0.0.1:{port}"


# --------------------------------------------------------------------------- waiting


def eventually(
    condition: Callable[[], T],
    timeout_s: float = 5.0,
    *,
    interval_s: float = 0.005,
    max_attempts: int | None = None,
) -> T:
    """Call ``condition`` until it returns a truthy value, and return that value.

    ``condition`` fails an attempt by returning something falsy or by raising
    AssertionError (so it can use plain ``assert`` statements and end with
    ``return <something truthy>``, e.g. the snapshot it checked). Gives up after
    ``timeout_s`` seconds or ``max_attempts`` attempts (default: as many as fit in
    ``timeout_s``), whichever comes first, and then raises the last AssertionError (with a
    note) or an AssertionError naming the last value.
    """
    if max_attempts is None:
        max_attempts = math.ceil(timeout_s / interval_s) + 1
    deadline = time.monotonic() + timeout_s
    last_value: Any = None
    last_error: AssertionError | None = None
    attempts = 0
    while attempts < max_attempts:
        attempts += 1
        try:
            value = condition()
        except AssertionError as error:
            last_error, last_value = error, None
        else:
            if value:
                return value
            last_error, last_value = None, value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)  # a polling interval, not a wait for something to happen
    summary = f"eventually: still failing after {attempts} attempts / {timeout_s} s"
    if last_error is not None:
        last_error.add_note(summary)
        raise last_error
    raise AssertionError(f"{summary}; last value {last_value!r}")


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Any]:
    """The ``eventually`` helper above."""
    return eventually


# --------------------------------------------------------------------------- fake transport


class RemoteEnd:
    """A stream as seen from the remote node, which the test plays.

    ``near`` is the end the actor got; ``far`` is the remote node's end. Everything the
    actor sends arrives in ``received`` (in order); ``send`` plays a message from the
    remote node to the actor; ``close`` hangs up from the remote side.
    """

    def __init__(self, near: MemoryStream, far: MemoryStream) -> None:
        self.near = near
        self.far = far
        self._lock = threading.Lock()
        self._received: list[CoreMessage] = []
        self.closed_reason: str | None = None
        # Bound before the actor sees ``near``, so nothing it sends is missed.
        far.bind(self._on_message, self._on_closed)

    def _on_message(self, message: CoreMessage) -> None:
        with self._lock:
            self._received.append(message)

    def _on_closed(self, reason: str) -> None:
        with self._lock:
            self.closed_reason = reason

    @property
    def received(self) -> list[CoreMessage]:
        """A copy of what the actor sent on this stream so far, oldest first."""
        with self._lock:
            return list(self._received)

    def received_of(self, kind: type[T]) -> list[T]:
        return [message for message in self.received if isinstance(message, kind)]

    @property
    def closed(self) -> bool:
        return self.near.closed

    def send(self, message: CoreMessage) -> None:
        self.far.send(message)

    def close(self) -> None:
        self.far.close("closed by the remote node")


@dataclass
class _Dial:
    address: str
    expected_name: str | None
    on_failed: OnDialFailed
    answered: bool = False


class FakeTransport:
    """A ``transport.base.Transport`` whose dials complete only when the test says so.

    ``dial`` records ``(address, expected_name)``; the test then answers dial ``i`` with
    ``fail(i, reason)`` (the dialler's ``on_failed`` runs) or ``connect(i, name,
    address)`` (a ``MemoryStream`` pair is made and the dialler's end goes to
    ``on_stream``, as a real transport does after a handshake). ``accept`` plays a
    remote node dialling us. ``serve`` gives the transport its identity and its
    ``on_stream`` callback, exactly as ``Node.start`` does with a real transport.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dials: list[_Dial] = []
        self.name = ""
        self.address = ""
        self._on_stream: OnStream | None = None

    def serve(self, name: str, address: str, on_stream: OnStream) -> None:
        self.name, self.address, self._on_stream = name, address, on_stream

    # The Transport protocol: called from the actors' threads.
    def dial(self, address: str, expected_name: str | None, on_failed: OnDialFailed) -> None:
        with self._lock:
            self._dials.append(_Dial(address, expected_name, on_failed))

    @property
    def dials(self) -> list[tuple[str, str | None]]:
        """``(address, expected_name)`` of every dial so far, in the order they came."""
        with self._lock:
            return [(d.address, d.expected_name) for d in self._dials]

    def dial_index(self, expected_name: str | None, address: str | None = None) -> int:
        """The index of the latest unanswered dial for this name (and address, if given).

        Raises AssertionError if there is none, so it can be polled with ``eventually``.
        """
        with self._lock:
            for index in reversed(range(len(self._dials))):
                dial = self._dials[index]
                if dial.answered or dial.expected_name != expected_name:
                    continue
                if address is None or dial.address == address:
                    return index
        raise AssertionError(f"no pending dial for {expected_name!r}; dials: {self.dials}")

    def _answer(self, index: int) -> _Dial:
        with self._lock:
            dial = self._dials[index]
            assert not dial.answered, f"dial {index} was already answered"
            dial.answered = True
            return dial

    def fail(self, index: int, reason: str = "UNAVAILABLE: connection refused") -> None:
        """Dial ``index`` did not produce a stream."""
        self._answer(index).on_failed(reason)

    def connect(self, index: int, remote_name: str, remote_address: str) -> RemoteEnd:
        """Dial ``index`` reached node ``remote_name``; returns the remote node's end.

        The actor's end is outbound and its ``dialed_address`` is the address dialled
        (``MemoryStream.pair`` takes it from ``remote_address``, hence they must match).
        """
        dial = self._answer(index)
        assert dial.expected_name in (None, remote_name), (
            f"dial {index} expected node {dial.expected_name!r}, not {remote_name!r}: a real "
            "transport would fail that dial; use fail() to test it"
        )
        assert remote_address == dial.address, (
            f"dial {index} went to {dial.address}, not {remote_address}"
        )
        near, far = MemoryStream.pair((self.name, self.address), (remote_name, remote_address))
        return self._open(near, far)

    def accept(self, remote_name: str, remote_address: str) -> RemoteEnd:
        """Node ``remote_name`` dialled us; returns its end of the new inbound stream."""
        far, near = MemoryStream.pair((remote_name, remote_address), (self.name, self.address))
        return self._open(near, far)

    def _open(self, near: MemoryStream, far: MemoryStream) -> RemoteEnd:
        assert self._on_stream is not None, "serve() the transport first"
        remote = RemoteEnd(near, far)
        self._on_stream(near)
        return remote


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


# --------------------------------------------------------------------------- time


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


class RecordingScheduler(ManualScheduler):
    """A ManualScheduler that also records the delay of every ``call_later`` and counts
    those that fired."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self._delays_lock = threading.Lock()
        self._delays: list[float] = []
        self._fired = 0

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        def fire() -> None:
            with self._delays_lock:
                self._fired += 1
            callback()

        timer = super().call_later(delay_s, fire)
        # Recorded once the timer is set, so a test that saw the delay can advance past it.
        with self._delays_lock:
            self._delays.append(delay_s)
        return timer

    @property
    def delays(self) -> list[float]:
        with self._delays_lock:
            return list(self._delays)

    @property
    def fired(self) -> int:
        """How many ``call_later`` timers fired (cancelled ones do not)."""
        with self._delays_lock:
            return self._fired


@pytest.fixture
def scheduler(clock: ManualClock) -> RecordingScheduler:
    """Timers fire only inside ``scheduler.advance(seconds)``, in the test's thread."""
    return RecordingScheduler(clock)


@pytest.fixture
def config() -> Config:
    return Config.local().validate()


# --------------------------------------------------------------------------- actors


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Whatever a test started, no actor thread outlives it."""
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


@pytest.fixture
def start_membership(
    transport: FakeTransport,
    clock: ManualClock,
    scheduler: RecordingScheduler,
    config: Config,
) -> Callable[..., pykka.ActorRef[Any]]:
    """Start a MembershipActor the way ``Node.start`` does, with fakes for the outside.

    The node is ``ME`` at ``ME_ADDRESS``. Like ``Node.start``, it serves the transport
    (each new stream becomes ``StreamOpened``). Ticks come from a periodic timer, or with
    ``self_tick`` (as in a Node) the actor schedules its own; either way they fire only
    when the test advances the scheduler.
    """

    def start(
        *, seeds: tuple[str, ...] = (), seed: int = 1, self_tick: bool = False
    ) -> pykka.ActorRef[Any]:
        ref = MembershipActor.start(
            name=ME,
            address=ME_ADDRESS,
            config=config,
            transport=transport,
            clock=clock,
            scheduler=scheduler,
            seeds=seeds,
            seed=seed,
            self_tick=self_tick,
        )

        def on_stream(stream: Stream) -> None:
            ref.tell(StreamOpened(stream))

        transport.serve(ME, ME_ADDRESS, on_stream)
        if not self_tick:
            scheduler.call_every(config.tick_interval_s, lambda: ref.tell(Tick()))
        return ref

    return start


@pytest.fixture
def me() -> Member:
    """The node under test's own record as it starts: ``ME`` at ``ME_ADDRESS``, alive, 0."""
    return Member(ME, ME_ADDRESS)


@pytest.fixture
def self_tick() -> bool:
    """Whether ``membership`` schedules its own ticks, as in a Node (a test may
    parametrize this name to run both ways)."""
    return False


@pytest.fixture
def membership(
    start_membership: Callable[..., pykka.ActorRef[Any]], self_tick: bool
) -> pykka.ActorRef[Any]:
    """A MembershipActor with no seeds: a cluster of one until the test adds members."""
    return start_membership(self_tick=self_tick)


class EventLog:
    """A subscriber: a callable that keeps every MemberEvent it is given.

    The membership actor calls it on its own thread, hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[MemberEvent] = []

    def __call__(self, event: MemberEvent) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[MemberEvent]:
        with self._lock:
            return list(self._events)

    def about(self, name: str) -> list[MemberEvent]:
        return [event for event in self.events if event.member.name == name]


@pytest.fixture
def events(membership: pykka.ActorRef[Any]) -> EventLog:
    """Every event ``membership`` publishes from now on."""
    log = EventLog()
    api.subscribe(membership, log, timeout_s=ASK_TIMEOUT_S)
    return log


# --------------------------------------------------------------------------- peer actors


class Recorder:
    """Stands in for the MembershipActor a PeerActor reports to: keeps what it is told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Any] = []

    def tell(self, message: Any) -> None:
        with self._lock:
            self._messages.append(message)

    @property
    def messages(self) -> list[Any]:
        with self._lock:
            return list(self._messages)

    def of_type(self, kind: type[T]) -> list[T]:
        return [message for message in self.messages if isinstance(message, kind)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def start_peer(
    transport: FakeTransport,
    recorder: Recorder,
    scheduler: RecordingScheduler,
    config: Config,
) -> Callable[..., pykka.ActorRef[Any]]:
    """Start a PeerActor for node ``peer`` on node ``local`` (default ``ME`` -> ``a``).

    Its membership is the ``recorder``. Streams the transport opens go straight to the
    peer actor as ``Attach``, which is what the MembershipActor does with them.
    """

    def start(
        *,
        local: str = ME,
        local_address: str = ME_ADDRESS,
        peer: str = "a",
        peer_address: str = address(7001),
        peer_config: Config | None = None,
        seed: int = 1,
    ) -> pykka.ActorRef[Any]:
        ref = PeerActor.start(
            local_name=local,
            peer_name=peer,
            address=peer_address,
            transport=transport,
            membership=recorder,
            scheduler=scheduler,
            config=(peer_config or config).validate(),
            seed=seed,
        )
        transport.serve(local, local_address, lambda stream: ref.tell(Attach(stream)))
        return ref

    return start
