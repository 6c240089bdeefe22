"""SimCluster: N membership cores driven by an event queue on a virtual clock.

Each core is ticked only when it has something due (``MembershipCore.next_deadline``),
so an idle node costs nothing between its probes. Messages are delivered after the
network's latency unless lost or cut; a stream "opens" (``stream_opened``) when a node
first hears from a member it does not know, and when a node dials a seed. Everything
random comes from random.Random instances seeded from the run's seed and the node's
name, so the same seed gives the same run, event for event.

With ``workers > 1`` each of several processes runs the same scenario script but owns
only every ``workers``-th node; the processes advance in lock-step windows no longer
than the network latency (no message sent inside a window can arrive inside it), and
swap the messages that cross between them at the end of each window (conservative
parallel discrete-event simulation; see crossing for how messages and records cross).
Same seed and same number of workers: same run.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection
from typing import cast

from dynago.config import Config
from dynago.core.member import Member
from dynago.core.membership import MembershipCore
from dynago.core.messages import (
    CoreMessage,
    DialSeed,
    Effect,
    MemberEvent,
    Publish,
    Send,
)
from dynago.core.view import ConvergedView
from dynago.sim.crossing import Posted, WorkerLinks
from dynago.sim.network import NetworkModel
from dynago.sim.nodes import EventLog, Observer, SimNode, Traffic, node_address, node_name

__all__ = ["Observer", "SimCluster", "SimNode", "Traffic", "node_address", "node_name"]

_TICK = 0
_DELIVER = 1
_CONNECT = 2

MAX_TICKS_AT_ONE_INSTANT = 1000
"""A core ticked this often without time moving has a deadline it never clears: a bug."""

_Event = tuple[float, int, int, str, str, object]
"""(time, seq, kind, target, sender, payload): events run in (time, seq) order."""


class SimCluster:
    """Simulated nodes on one virtual clock (this worker's share of them)."""

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
        worker: int = 0,
        links: Sequence[Connection | None] = (None,),
    ) -> None:
        self.config = config
        self.seed = seed
        self.now = 0.0
        self.worker = worker
        self.workers = len(links)
        self._links = WorkerLinks(worker, links)
        self.network = NetworkModel(
            random.Random(f"{seed}/network/{worker}"), latency_s, loss)
        self.nodes: dict[str, SimNode] = {}
        """The nodes this worker runs."""
        self.addresses: dict[str, str] = {}
        """Every node's address, whichever worker runs it."""
        self._owner: dict[str, int] = {}
        self._down: set[str] = set()
        self._paused: set[str] = set()
        self._sent: dict[type, list[int]] = {}
        """Message kind -> [messages, bytes] the cores asked to send."""
        self._dropped = 0
        self._events = EventLog(observer, keep_lines=keep_log)
        self._message_size = message_size
        self._queue: list[_Event] = []
        """Ticks and stream notices: a heap."""
        self._inbox: deque[_Event] = deque()
        """Messages to this worker's nodes, in (time, seq) order. Each arrives one latency
        after it was sent and the clock never goes back, so appending what this worker's
        nodes send keeps the order (and what other workers send is merged in at each
        exchange): no heap needed for the bulk of the events."""
        self._seq = 0
        self._outbox: list[list[Posted]] = [[] for _ in range(self.workers)]
        self._by_address: dict[str, str] = {}
        self._ticks_now = 0
        self._ticks_at = -1.0
        self._max_ticks_now = MAX_TICKS_AT_ONE_INSTANT
        """Ticks allowed at one instant (grows with the nodes this worker runs)."""
        self.windows = 0

    # ------------------------------------------------------------------ set-up

    def owns(self, name: str) -> bool:
        return self._owner.get(name) == self.worker

    def add_node(
        self, name: str, address: str, *, seeds: Iterable[str] = (),
        view: ConvergedView | None = None,
    ) -> SimNode | None:
        """Start a node now (a new life if ``name`` ran before). Every worker calls this
        for every node; the one that owns it runs it (and gets it back)."""
        if name not in self._owner:
            self._owner[name] = len(self._owner) % self.workers
        self.addresses[name] = address
        self._by_address[address] = name
        self._down.discard(name)
        self._paused.discard(name)
        if not self.owns(name):
            return None
        rng = random.Random(f"{self.seed}/{name}/{self.now!r}")
        core = MembershipCore(name, address, self.config, rng, self.now, seeds)
        if view is not None:
            core.adopt_view(view, self.now)
        node = SimNode(name, address, core)
        self.nodes[name] = node
        self._max_ticks_now = MAX_TICKS_AT_ONE_INSTANT * len(self.nodes)
        self._run(node, [])
        return node

    def converged(self, count: int) -> list[str]:
        """Start ``count`` nodes that already know each other (a converged cluster);
        returns every node's name. With several workers, each calls this first, before
        anything crosses between them (their records are numbered alike, see crossing)."""
        members = [Member(node_name(i), node_address(i)) for i in range(count)]
        view = ConvergedView(members, self.now)
        if self.workers > 1:
            self._links.crossing.preregister(members)
        for member in members:
            self.add_node(member.name, member.address, view=view)
        return [member.name for member in members]

    # ------------------------------------------------------------------ faults

    def crash(self, name: str) -> None:
        """The node stops at once, silently: it neither sends nor answers."""
        self._down.add(name)
        node = self.nodes.get(name)
        if node is not None:
            node.up = False
            node.held.clear()

    def pause(self, name: str) -> None:
        """The node stops running; what is sent to it waits (as in its socket buffers)."""
        self._paused.add(name)
        node = self.nodes.get(name)
        if node is not None:
            node.paused = True

    def resume(self, name: str) -> None:
        self._paused.discard(name)
        node = self.nodes.get(name)
        if node is None:
            return
        node.paused = False
        held, node.held = node.held, []
        for sender, message in held:
            self._deliver(node, sender, message)
        node.due = self.now
        self._push(self.now, _TICK, name, "", None)

    def leave(self, name: str) -> None:
        """The node announces its leave (and keeps running, as during its exit)."""
        node = self.nodes.get(name)
        if node is not None:
            self._run(node, node.core.leave(self.now))

    # ------------------------------------------------------------------ running

    def run_until(self, until: float) -> None:
        """Process every event up to and including time ``until`` (on every worker)."""
        if self.workers == 1:
            self._process(until, inclusive=True)
        else:
            latency = self.network.latency_s
            while True:
                start = self._exchange()
                if start > until:
                    break
                end = start + latency
                if end > until:
                    self._process(until, inclusive=True)
                else:
                    self._process(end, inclusive=False)
                self.windows += 1
        self.now = max(self.now, until)

    def _exchange(self) -> float:
        """Swap crossing messages with every other worker; the earliest pending event
        time of all workers (every worker computes the same value)."""
        local_next = min(self._queue[0][0] if self._queue else math.inf,
                         self._inbox[0][0] if self._inbox else math.inf)
        sent_next = min((item[0] for box in self._outbox for item in box), default=math.inf)
        earliest, received = self._links.swap(min(local_next, sent_next), self._outbox)
        self._outbox = [[] for _ in range(self.workers)]
        arrivals: list[_Event] = []
        for time, kind, target, sender, payload in received:
            if kind == _DELIVER:
                self._seq += 1
                arrivals.append((time, self._seq, kind, target, sender, payload))
            else:
                self._push(time, kind, target, sender, payload)
        if arrivals:
            # Messages arrive one latency after they were sent, like this worker's own
            # that wait in the inbox: one sort (a merge of sorted runs) keeps the inbox
            # in (time, seq) order.
            merged = sorted([*self._inbox, *arrivals])
            self._inbox.clear()
            self._inbox.extend(merged)
        return earliest

    def _process(self, end: float, *, inclusive: bool) -> None:
        queue = self._queue
        inbox = self._inbox
        nodes = self.nodes
        heappop = heapq.heappop
        popleft = inbox.popleft
        # Before ``end`` is up to the float just below it.
        last = end if inclusive else math.nextafter(end, -math.inf)
        while True:
            # The earlier of the heap's first event and the inbox's first message
            # (seq numbers are unique, so the tuples never compare past them).
            if inbox and (not queue or inbox[0] < queue[0]):
                if inbox[0][0] > last:
                    break
                time, _seq, kind, target, sender, payload = popleft()
            elif queue:
                if queue[0][0] > last:
                    break
                time, _seq, kind, target, sender, payload = heappop(queue)
            else:
                break
            self.now = time
            node = nodes[target]
            if not node.up:
                continue
            if kind == _DELIVER:
                if node.paused:
                    node.held.append((sender, payload))  # type: ignore[arg-type]
                    continue
                core = node.core
                if core.get(sender) is None:
                    self._stream_from(node, sender)
                effects = core.handle(sender, payload, time)  # type: ignore[arg-type]
                if effects:
                    self._run(node, effects)
                else:  # most gossip changes nothing: only the deadline to check
                    due = core.next_deadline()
                    if due < node.due:
                        node.due = due if due > time else time
                        self._push(node.due, _TICK, target, "", None)
            elif kind == _TICK:
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
                if time != self._ticks_at:
                    self._ticks_at = time
                    self._ticks_now = 0
                self._ticks_now += 1
                if self._ticks_now > self._max_ticks_now:
                    raise RuntimeError(
                        f"{target} keeps ticking at t={time}: a deadline never clears")
                self._run(node, core.tick(time))
            else:
                self._connected(node, sender, cast(bool, payload))

    def _deliver(self, node: SimNode, sender: str, message: CoreMessage) -> None:
        """(What _process does inline for each message.)"""
        if node.paused:
            node.held.append((sender, message))
            return
        core = node.core
        if core.get(sender) is None:
            self._stream_from(node, sender)
        self._run(node, core.handle(sender, message, self.now))

    def _stream_from(self, node: SimNode, sender: str) -> None:
        """First word from a member ``node`` does not know: in a real node a stream
        opened first, and that starts a push-pull."""
        address = self.addresses.get(sender)
        if address is not None:
            self._run(node, node.core.stream_opened(sender, address, self.now))

    def _connected(self, node: SimNode, peer: str, dialled: bool) -> None:
        """A stream between ``node`` and ``peer`` opened; ``dialled`` if ``node`` dialled
        ``peer`` at its seed address. Each end runs on its owner's worker."""
        if node.paused or peer in self._down or peer in self._paused:
            return
        if not (self.network.reachable(node.name, peer)
                and self.network.reachable(peer, node.name)):
            return
        self._run(node, node.core.stream_opened(
            peer, self.addresses[peer], self.now, via_seed=dialled))

    def _run(self, node: SimNode, effects: list[Effect]) -> None:
        """Carry out a core's effects, then make sure its next deadline is scheduled.

        (The hot loop of the simulator: sends are routed inline.)"""
        if effects:
            sent = self._sent
            size_of = self._message_size
            by_address = self._by_address
            down = self._down
            network = self.network
            lossy = bool(network.loss or network.groups or network.one_way_cuts)
            arrive = self.now + network.latency_s
            name = node.name
            inbox_append = self._inbox.append
            owners = self._owner if self.workers > 1 else None
            last_message: object = None
            last_size = 0
            for effect in effects:
                kind = type(effect)
                if kind is Send:
                    message = effect.message  # type: ignore[union-attr]
                    counts = sent.get(type(message))
                    if counts is None:
                        counts = sent[type(message)] = [0, 0]
                    counts[0] += 1
                    if size_of is not None:
                        if message is not last_message:
                            last_message, last_size = message, size_of(message)
                        counts[1] += last_size
                    to = effect.to  # type: ignore[union-attr]
                    address = effect.address  # type: ignore[union-attr]
                    # An empty address: the member is not in the sender's map yet, but a
                    # stream to it is open (it reached us first): route by name.
                    if ((address and by_address.get(address) != to) or to in down
                            or (lossy and not network.delivers(name, to))):
                        self._dropped += 1
                        continue
                    if owners is not None:
                        owner = owners[to]
                        if owner != self.worker:
                            self._outbox[owner].append((arrive, _DELIVER, to, name, message))
                            continue
                    self._seq += 1
                    inbox_append((arrive, self._seq, _DELIVER, to, name, message))
                elif kind is Publish:
                    self._publish(name, effect.event)  # type: ignore[union-attr]
                elif kind is DialSeed:
                    self._dial(node, effect.address)  # type: ignore[union-attr]
        due = node.core.next_deadline()
        if due < node.due:
            now = self.now
            node.due = due if due > now else now
            self._push(node.due, _TICK, node.name, "", None)

    @property
    def traffic(self) -> Traffic:
        """Messages and bytes the cores asked to send, by kind, and how many were not
        delivered."""
        return Traffic.of(self._sent, self._dropped)

    def _dial(self, node: SimNode, address: str) -> None:
        target = self._by_address.get(address)
        if target is None or target == node.name or target in self._down:
            return
        # Connection set-up and handshake take one round trip; then both ends learn of
        # the stream.
        at = self.now + 2 * self.network.latency_s
        self._post(at, _CONNECT, node.name, target, True)
        self._post(at, _CONNECT, target, node.name, False)

    def _post(self, time: float, kind: int, target: str, sender: str, payload: object) -> None:
        owner = self._owner[target]
        if owner == self.worker:
            self._push(time, kind, target, sender, payload)
        else:
            self._outbox[owner].append((time, kind, target, sender, payload))

    def _push(self, time: float, kind: int, target: str, sender: str, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, target, sender, payload))

    def _publish(self, node: str, event: MemberEvent) -> None:
        self._events.publish(self.now, node, event)

    @property
    def events_published(self) -> int:
        return self._events.published

    @property
    def log(self) -> list[str] | None:
        """Every member event's log line, if kept (``keep_log``)."""
        return self._events.lines

    def log_digest(self) -> str:
        """SHA-256 of this worker's event log so far (every member event of its nodes,
        in order)."""
        return self._events.digest()
