"""PeerActor: one actor per remote node, owning that node's stream.

What the stream delivers is routed by its class (actors.routing.RouteTable: membership
messages to the MembershipActor, a service's to its actor) as a PeerMessage, whose
``done`` the handling actor calls. The routing runs in the stream's own callback, on the
transport's thread, straight to the handling actor: the peer's actor owns the stream
(binds it, replaces it, closes it) but a received message does not pass through its
mailbox — that thread hop cost ~55 µs of CPU per message (docs/performance.md,
"Message cost");
what must go out (Deliver, from any actor: see routing.send_to_peer) is queued to the
stream's writer, or buffered (bounded, oldest dropped first) while there is no stream.

One stream per node pair: when two streams to the same peer exist (both nodes dialled at
once), both nodes keep the one dialled by the node with the smaller name and close the
other; of two streams dialled by the same node the newer wins. A lost stream is redialled
with capped exponential backoff and full jitter; losing it is only a hint to the
membership layer. A node never reached is not redialled on a timer: its next message
dials, no sooner than the backoff allows. Nothing here blocks on the network: dial and
send only queue work.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import random
from collections.abc import Callable
from typing import Any

import pykka

from dynago.actors.messages import (
    Attach,
    Deliver,
    DialFailed,
    Flush,
    PeerConnectivity,
    PeerMessage,
    Redial,
    SetAddress,
    StreamClosed,
)
from dynago.actors.refs import tell_if_alive, tell_quietly
from dynago.actors.routing import PeerDirectory, RouteTable
from dynago.actors.timers import Scheduler
from dynago.config import Config
from dynago.transport.base import Stream, Transport, WireMessage

log = logging.getLogger(__name__)


class PeerActor(pykka.ThreadingActor):
    """Owns the stream to the remote node ``peer_name``."""

    def __init__(
        self,
        *,
        local_name: str,
        peer_name: str,
        address: str,
        transport: Transport,
        membership: pykka.ActorRef[Any],
        scheduler: Scheduler,
        config: Config,
        seed: int,
        routes: RouteTable | None = None,
        directory: PeerDirectory | None = None,
    ) -> None:
        """``membership`` hears of the stream's ups and downs; ``routes`` says who
        handles what the stream delivers (None: everything membership handles goes to
        ``membership``); ``directory`` is where this actor publishes its stream while it is
        up, for senders to write to it directly (None: they all go through Deliver)."""
        super().__init__()
        self.local_name = local_name
        self.peer_name = peer_name
        self.address = address
        self._transport = transport
        self._membership = membership
        self._routes = routes if routes is not None else RouteTable.to_membership(membership)
        self._directory = directory
        self._scheduler = scheduler
        self._config = config
        self._rng = random.Random(seed)
        self._stream: Stream | None = None
        self._pending: collections.deque[WireMessage] = collections.deque(
            maxlen=config.outbound_buffer_size
        )
        self._bound: dict[int, Stream] = {}
        self._ever_connected = False
        self._dialing = False
        self._redial_timer: Any = None
        self._failures = 0
        self.dropped = 0
        self.dials = 0
        self.unrouted = 0
        """Messages from the peer of a class no actor is routed for (dropped)."""

    # ------------------------------------------------------------------ pykka

    def on_start(self) -> None:
        log.debug("peer actor for %s (%s) started", self.peer_name, self.address)

    def on_stop(self) -> None:
        self._publish(None)
        if self._redial_timer is not None:
            self._redial_timer.cancel()
        if self._stream is not None:
            self._stream.close()
        self._stream = None

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        except Exception:
            # A bug in handling one message must not kill the peer's actor (a tell would).
            log.exception("peer %s: failed to handle %r", self.peer_name, message)
            return None

    def _dispatch(self, message: Any) -> Any:
        match message:
            case Deliver(payload):
                self._deliver(payload)
            case Attach(stream):
                self._attach(stream)
            case StreamClosed(stream_id, reason):
                self._closed(stream_id, reason)
            case DialFailed(reason):
                self._dial_failed(reason)
            case Redial():
                self._redial_timer = None
                if self._ever_connected or self._pending:
                    self._ensure_connecting()
            case SetAddress(address):
                self.address = address
            case Flush():
                return self._flush()
            case _:
                raise TypeError(f"PeerActor got an unknown message {message!r}")
        return None

    # ------------------------------------------------------------------ handlers

    def _inbound(self, stream: Stream) -> Callable[[WireMessage], None]:
        """``stream``'s on_message: route each message to its handler from the transport's
        thread (it only reads the lock-free route table and this actor's ``address``, a
        str replaced whole, and counts ``unrouted``, which no other thread writes)."""
        routes, name, done = self._routes, self.peer_name, stream.processed

        def on_message(payload: WireMessage) -> None:
            target = routes.route(payload)
            if target is not None and tell_if_alive(
                    target, PeerMessage(name, self.address, payload, done)):
                return  # the target calls done() once it handled it
            if target is None:
                self.unrouted += 1
                log.warning("peer %s: no actor handles %s; dropped",
                            name, type(payload).__name__)
            done()  # nobody will: keep the stream's window open

        return on_message

    def _deliver(self, payload: WireMessage) -> None:
        if self._stream is not None:
            self._stream.send(payload)
            return
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(payload)
        self._ensure_connecting()

    def _attach(self, stream: Stream) -> None:
        if stream.outbound:
            self._dialing = False
        current = self._stream
        if current is not None and not self._prefer(stream, current):
            log.debug("peer %s: keeping stream %d, closing duplicate %d",
                      self.peer_name, current.stream_id, stream.stream_id)
            stream.close()
            return
        me = self.actor_ref
        sid = stream.stream_id
        self._bound[sid] = stream
        stream.bind(
            self._inbound(stream),
            lambda reason: tell_quietly(me, StreamClosed(sid, reason)),
        )
        if current is not None:
            log.debug("peer %s: stream %d replaces %d", self.peer_name, sid, current.stream_id)
            current.close()
        self._stream = stream
        self._ever_connected = True
        self._failures = 0
        if self._redial_timer is not None:
            self._redial_timer.cancel()
            self._redial_timer = None
        if stream.remote_address and stream.outbound:
            self.address = stream.remote_address
        while self._pending:
            stream.send(self._pending.popleft())
        self._publish(stream)  # after what waited: new sends go after it
        tell_quietly(self._membership, PeerConnectivity(self.peer_name, True))

    def _publish(self, stream: Stream | None) -> None:
        if self._directory is not None:
            self._directory.publish_stream(self.peer_name, self.actor_ref, stream)

    def _prefer(self, new: Stream, current: Stream) -> bool:
        """Whether ``new`` should replace ``current``; both nodes decide alike."""
        if new.outbound == current.outbound:
            return True  # the same node dialled both: the newer one is the live one
        preferred_dialler = min(self.local_name, self.peer_name)
        new_dialler = self.local_name if new.outbound else self.peer_name
        return new_dialler == preferred_dialler

    def _closed(self, stream_id: int, reason: str) -> None:
        self._bound.pop(stream_id, None)
        if self._stream is None or self._stream.stream_id != stream_id:
            return
        log.debug("peer %s: stream %d closed: %s", self.peer_name, stream_id, reason)
        self._stream = None
        self._publish(None)
        tell_quietly(self._membership, PeerConnectivity(self.peer_name, False))
        self._schedule_redial()

    def _dial_failed(self, reason: str) -> None:
        self._dialing = False
        log.debug("peer %s: dial to %s failed: %s", self.peer_name, self.address, reason)
        if not self._ever_connected:
            # Never reached: what waits is stale by the next try (probes and gossip are
            # resent anyway), and a member that only exists in someone's claims must
            # not be dialled on a timer. The next message dials, after the backoff.
            self.dropped += len(self._pending)
            self._pending.clear()
        if self._stream is None:
            self._schedule_redial()

    def _flush(self) -> concurrent.futures.Future[None]:
        if self._stream is not None:
            return self._stream.flush()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        return done

    # ------------------------------------------------------------------ dialling

    def _ensure_connecting(self) -> None:
        if self._stream is not None or self._dialing or self._redial_timer is not None:
            return
        self._dialing = True
        self.dials += 1
        me = self.actor_ref
        self._transport.dial(
            self.address, self.peer_name, lambda reason: tell_quietly(me, DialFailed(reason))
        )

    def _schedule_redial(self) -> None:
        if self._redial_timer is not None or self._dialing:
            return
        delay = self.backoff_delay(self._failures)
        self._failures += 1
        me = self.actor_ref
        self._redial_timer = self._scheduler.call_later(
            delay, lambda: tell_quietly(me, Redial())
        )

    def backoff_delay(self, failures: int) -> float:
        """Capped exponential backoff with jitter: in [d/2, d], d = initial * 2**failures."""
        cap = self._config.reconnect_max_backoff_s
        delay = min(cap, self._config.reconnect_initial_backoff_s * (2 ** min(failures, 32)))
        return float(delay * (0.5 + self._rng.random() / 2))
