"""SimCluster: N membership cores driven by one event queue on a virtual clock.

Each core is ticked only when it has something due (``MembershipCore.next_deadline``),
so an idle node costs nothing between its probes. Messages are delivered after the
network's latency unless lost or cut; a stream "opens" (``stream_opened``) when a node
first hears from a member it does not know, and when a node dials a seed. Everything
random comes from random.Random instances seeded from the run's seed and the node's
name, so the same seed gives the same run, event for event.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from dynago.config import Config
from dynago.core.membership import MembershipCore
from dynago.core.messages import CoreMessage, DialSeed, Effect, MemberEvent, Publish, Send
from dynago.core.view import ConvergedView
from dynago.sim.network import NetworkModel

_TICK = 0
_DELIVER = 1
_CONNECT = 2

MAX_TICKS_AT_ONE_INSTANT = 1000
"""A core ticked this often without time moving has a deadline it never clears: a bug."""

Observer = Callable[[float, str, MemberEvent], None]
"""Called with (time, node, event) for every member event any node publishes."""


@dataclass(slots=True)
class SimNode:
    """One simulated node: its core and what the simulator knows about it."""

    name: str
    address: str
    core: MembershipCore
    due: float = math.inf
    """When its one valid tick event is scheduled (other tick events are stale)."""
    up: bool = True
    paused: bool = False
    held: list[tuple[str, CoreMessage]] = field(default_factory=list)
    """Messages that arrived while paused, delivered in order on resume."""


@dataclass(slots=True)
class Traffic:
    """Messages and bytes sent, by message kind."""

    messages: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    dropped: int = 0

    def total_messages(self) -> int:
        return sum(self.messages.values())

    def total_bytes(self) -> int:
        return sum(self.bytes.values())


def node_name(index: int) -> str:
    return f"node-{index:05d}"


def node_address(index: int) -> str:
    """A distinct, valid address per index (nothing is ever bound to it)."""
    return f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}:7946"


class SimCluster:
    """Simulated nodes on one virtual clock."""

    def __init__(
        self,
        config: Config,
        seed: int,
        *,
        latency_s: float = 0.001,
        loss: float = 0.0,
        observer: Observer | None = None,
        message_size: Callable[[CoreMessage], int] | None = None,
        keep_log: bool = False,
    ) -> None:
        self.config = config
        self.seed = seed
        self.now = 0.0
        self.network = NetworkModel(random.Random(f"{seed}/network"), latency_s, loss)
        self.nodes: dict[str, SimNode] = {}
        self.traffic = Traffic()
        self.events_published = 0
        self._observer = observer
        self._message_size = message_size
        self._queue: list[tuple[float, int, int, str, str, object]] = []
        self._seq = 0
        self._by_address: dict[str, str] = {}
        self._digest = hashlib.sha256()
        self.log: list[str] | None = [] if keep_log else None
        self._ticks_now = 0
        self._ticks_at = -1.0

    # ------------------------------------------------------------------ set-up

    def add_node(
        self, name: str, address: str, *, seeds: Iterable[str] = (),
        view: ConvergedView | None = None,
    ) -> SimNode:
        """Start a node now (a new life if ``name`` ran before)."""
        rng = random.Random(f"{self.seed}/{name}/{self.now!r}")
        core = MembershipCore(name, address, self.config, rng, self.now, seeds)
        if view is not None:
            core.adopt_view(view, self.now)
        node = SimNode(name, address, core)
        self.nodes[name] = node
        self._by_address[address] = name
        self._run(node, [])
        return node

    def converged(self, count: int) -> list[SimNode]:
        """Start ``count`` nodes that already know each other (a converged cluster)."""
        from dynago.core.member import Member

        members = [Member(node_name(i), node_address(i)) for i in range(count)]
        view = ConvergedView(members, self.now)
        return [self.add_node(m.name, m.address, view=view) for m in members]

    # ------------------------------------------------------------------ faults

    def crash(self, name: str) -> None:
        """The node stops at once, silently: it neither sends nor answers."""
        node = self.nodes[name]
        node.up = False
        node.held.clear()

    def pause(self, name: str) -> None:
        """The node stops running; what is sent to it waits (as in its socket buffers)."""
        self.nodes[name].paused = True

    def resume(self, name: str) -> None:
        node = self.nodes[name]
        node.paused = False
        held, node.held = node.held, []
        for sender, message in held:
            self._deliver(node, sender, message)
        node.due = math.inf
        self._push(self.now, _TICK, name, "", None)
        node.due = self.now

    def leave(self, name: str) -> None:
        """The node announces its leave (and keeps running, as during its exit)."""
        node = self.nodes[name]
        self._run(node, node.core.leave(self.now))

    # ------------------------------------------------------------------ running

    def run_until(self, until: float) -> None:
        """Process every event up to and including time ``until``."""
        queue = self._queue
        nodes = self.nodes
        while queue and queue[0][0] <= until:
            time, _seq, kind, target, sender, payload = heapq.heappop(queue)
            self.now = time
            node = nodes[target]
            if not node.up:
                continue
            if kind == _TICK:
                if time != node.due or node.paused:
                    continue  # stale: the node was rescheduled, or it is paused
                node.due = math.inf
                core = node.core
                due = core.next_deadline()
                if due > time:
                    # What was due was settled meanwhile (an ack came in time): no tick.
                    node.due = due
                    self._push(due, _TICK, target, "", None)
                    continue
                self._count_tick(target)
                self._run(node, core.tick(time))
            elif kind == _DELIVER:
                self._deliver(node, sender, cast(CoreMessage, payload))
            else:
                self._connect(nodes[sender], node, payload)
        self.now = max(self.now, until)

    def _count_tick(self, name: str) -> None:
        if self.now != self._ticks_at:
            self._ticks_at = self.now
            self._ticks_now = 0
        self._ticks_now += 1
        if self._ticks_now > MAX_TICKS_AT_ONE_INSTANT * max(1, len(self.nodes)):
            raise RuntimeError(f"{name} keeps ticking at t={self.now}: a deadline never clears")

    def _deliver(self, node: SimNode, sender: str, message: CoreMessage) -> None:
        if node.paused:
            node.held.append((sender, message))
            return
        core = node.core
        if core.get(sender) is None:
            # First word from a member this node does not know: in a real node a stream
            # opened first, and that starts a push-pull.
            origin = self.nodes.get(sender)
            if origin is not None:
                self._run(node, core.stream_opened(sender, origin.address, self.now))
        self._run(node, core.handle(sender, message, self.now))

    def _connect(self, dialer: SimNode, acceptor: SimNode, address: object) -> None:
        if not (dialer.up and acceptor.up) or dialer.paused or acceptor.paused:
            return
        if not (self.network.reachable(dialer.name, acceptor.name)
                and self.network.reachable(acceptor.name, dialer.name)):
            return
        self._run(dialer, dialer.core.stream_opened(
            acceptor.name, str(address), self.now, via_seed=True))
        self._run(acceptor, acceptor.core.stream_opened(dialer.name, dialer.address, self.now))

    def _run(self, node: SimNode, effects: list[Effect]) -> None:
        """Carry out a core's effects, then make sure its next deadline is scheduled."""
        if effects:
            last_message: object = None
            last_size = 0
            for effect in effects:
                if isinstance(effect, Send):
                    message = effect.message
                    kind = type(message).__name__
                    self.traffic.messages[kind] += 1
                    if self._message_size is not None:
                        if message is not last_message:
                            last_message, last_size = message, self._message_size(message)
                        self.traffic.bytes[kind] += last_size
                    self._send(node, effect)
                elif isinstance(effect, Publish):
                    self._publish(node.name, effect.event)
                elif isinstance(effect, DialSeed):
                    self._dial(node, effect.address)
        due = node.core.next_deadline()
        if due < node.due:
            node.due = max(due, self.now)
            self._push(node.due, _TICK, node.name, "", None)

    def _send(self, node: SimNode, send: Send) -> None:
        # An empty address: the member is not in the sender's map yet, but a stream to it
        # is open (it reached us first), so the message goes by name.
        target = self._by_address.get(send.address) if send.address else send.to
        if target != send.to or not self.network.delivers(node.name, send.to):
            self.traffic.dropped += 1
            return
        self._push(self.now + self.network.latency_s, _DELIVER, send.to, node.name,
                   send.message)

    def _dial(self, node: SimNode, address: str) -> None:
        target = self._by_address.get(address)
        if target is None or target == node.name:
            return
        # Connection set-up and handshake: one round trip.
        self._push(self.now + 2 * self.network.latency_s, _CONNECT, target, node.name, address)

    def _push(self, time: float, kind: int, target: str, sender: str, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, target, sender, payload))

    def _publish(self, node: str, event: MemberEvent) -> None:
        self.events_published += 1
        member = event.member
        line = (f"{self.now:.6f} {node} {event.kind.name} {member.name} "
                f"{member.incarnation} {member.status.name} {member.origin}\n")
        self._digest.update(line.encode())
        if self.log is not None:
            self.log.append(line)
        if self._observer is not None:
            self._observer(self.now, node, event)

    def log_digest(self) -> str:
        """SHA-256 of the event log so far (every member event of every node, in order)."""
        return self._digest.hexdigest()
