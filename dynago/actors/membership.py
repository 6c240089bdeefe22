"""MembershipActor: owns the node's member map (a MembershipCore) and nothing else does.

Each message is dispatched to a named method that calls the pure core and carries out
the effects it returns: ``Send`` goes to the PeerActor of that member (started on first
use, see actors.peer_actors), ``Publish`` goes to the subscribers, ``DialSeed`` goes to
the transport. The actor never waits on another actor or on the network.

Routing: when it starts, it registers the membership messages in the node's RouteTable
(actors.routing) and hands that table to every PeerActor it starts; it keeps the node's
PeerDirectory in step with the peer actors it runs.

Message protocol: see dynago.actors.messages (Add, Remove, Merge, Snapshot, Subscribe,
Unsubscribe, Leave, GetStats, SetTags, GetHistory, WatchLocalHealth; and the private Tick,
StreamOpened, PeerMessage, DialSeedFailed, PeerConnectivity).

Every published event is also kept in a bounded per-member history (core.history), with
this node's wall time, for ``GetHistory`` ("why is X dead?").

Ticks: with ``self_tick`` (what a Node uses) the actor schedules its own next ``Tick``
after every message, on the grid of ``tick_interval_s`` but only at the grid point where
the core next has work (``MembershipCore.next_deadline``): the timing of a ticker that
ticks every ``tick_interval_s``, without waking an idle node twenty times a second for
nothing. Without it, ticks come from outside (tests drive them).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
from collections.abc import Callable
from typing import Any

import pykka

from dynago.actors.health import LocalHealthWatchers
from dynago.actors.hosting import LoopActor
from dynago.actors.messages import (
    Add,
    Attach,
    DialSeedFailed,
    Flush,
    GetHistory,
    GetStats,
    Leave,
    MemberView,
    Merge,
    PeerConnectivity,
    PeerMessage,
    Rejected,
    Remove,
    SetAddress,
    SetTags,
    Snapshot,
    StreamOpened,
    Subscribe,
    Tick,
    Unsubscribe,
    UpdateTags,
    WatchLocalHealth,
)
from dynago.actors.peer_actors import PeerActors
from dynago.actors.refs import mailbox_depth, tell_quietly
from dynago.actors.routing import MEMBERSHIP_MESSAGES, PeerDirectory, RouteTable, deliver
from dynago.actors.timers import Scheduler, Timer
from dynago.clock import Clock
from dynago.config import Config
from dynago.core.history import History
from dynago.core.member import Status
from dynago.core.membership import MembershipCore
from dynago.core.messages import DialSeed, Effect, EventKind, MemberEvent, Publish, Send
from dynago.core.tags import Tags, apply_patch
from dynago.transport.base import Stream, Transport

log = logging.getLogger(__name__)


class MembershipActor(LoopActor):
    """The single owner of this node's member map.

    Hosted on ``loop`` when given (the transport's: a received membership message is
    handled with no thread hop, and what it sends is queued on the stream directly,
    actors/hosting.py), else on its own thread.
    """

    def __init__(
        self,
        *,
        name: str,
        address: str,
        config: Config,
        transport: Transport,
        clock: Clock,
        scheduler: Scheduler,
        seeds: tuple[str, ...] = (),
        seed: int | None = None,
        tags: Tags = (),
        history: History | None = None,
        self_tick: bool = False,
        routes: RouteTable | None = None,
        peers: PeerDirectory | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``routes`` and ``peers`` are the node's route table and peer directory (None:
        this actor's own)."""
        self.host_loop = loop  # before pykka's __init__, which makes the mailbox
        super().__init__()
        self._config = config
        self._transport = transport
        self._clock = clock
        self._scheduler = scheduler
        self._rng = random.Random(seed)
        self.core = MembershipCore(
            name, address, config, random.Random(self._rng.getrandbits(64)),
            clock.monotonic(), seeds=seeds, tags=tags,
        )
        self.name = name
        self.routes = routes if routes is not None else RouteTable()
        self._peers = PeerActors(
            local_name=name, transport=transport, routes=self.routes,
            directory=peers if peers is not None else PeerDirectory(),
            scheduler=scheduler, config=config, clock=clock, rng=self._rng,
        )
        self._subscribers: dict[
            int, tuple[Callable[[MemberEvent], None] | Any, frozenset[EventKind] | None]
        ] = {}
        self._history = history or History(per_member=config.history_per_member,
                                           max_members=config.history_max_members)
        self._history.record(MemberEvent(EventKind.JOINED, self.core.local_member, None,
                                         "self", "this node started"), clock.wall())
        self._tokens = itertools.count(1)
        self._handler_errors = 0
        self._seed_dial_failures = 0
        self._unroutable = 0
        self._next_sweep = clock.monotonic()
        self._self_tick = self_tick
        self._tick_origin = clock.monotonic()
        self._tick_timer: Timer | None = None
        self._tick_at = math.inf
        self._health = LocalHealthWatchers()

    # ------------------------------------------------------------------ pykka

    def on_start(self) -> None:
        self.routes.register(MEMBERSHIP_MESSAGES, self.actor_ref)
        log.info("node %s (%s) started; cluster %r",
                 self.name, self.core.local_member.address, self._config.cluster)
        if self._self_tick:
            self._schedule_tick()

    def on_stop(self) -> None:
        if self._tick_timer is not None:
            self._tick_timer.cancel()
            self._tick_timer = None
        self.routes.unregister(self.actor_ref)
        # Stopping is the one time this actor waits on others (see PeerActors.stop_all).
        self._peers.stop_all(timeout_s=2.0)

    def on_receive(self, message: Any) -> Any:
        try:
            return self._receive(message)
        finally:
            self._health.update(self.core.awareness.score)
            if self._self_tick:
                if isinstance(message, Tick) and message.at == self._tick_at:
                    self._tick_timer = None
                    self._tick_at = math.inf
                self._schedule_tick()

    def _schedule_tick(self) -> None:
        """Make sure a Tick comes at the first grid point of ``tick_interval_s`` at or
        after the core's next deadline, and after now (what fell due since the last tick
        waits for the next grid point, as with a periodic ticker)."""
        now = self._clock.monotonic()
        if self._tick_at <= now:
            return  # a tick is due already and on its way: moving it would starve the core
        due = min(self.core.next_deadline(), self._next_sweep)
        step = self._config.tick_interval_s
        origin = self._tick_origin
        slot = max(math.ceil((due - origin) / step - 1e-9),
                   math.floor((now - origin) / step) + 1)
        at = max(origin + slot * step, due)
        if at == self._tick_at:
            return
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        me = self.actor_ref
        self._tick_at = at
        self._tick_timer = self._scheduler.call_later(
            at - now, lambda: tell_quietly(me, Tick(at)))

    def _receive(self, message: Any) -> Any:
        # Nothing may escape: pykka stops an actor whose *told* message raised, and this
        # actor cannot know whether it was asked or told.
        if isinstance(message, Add | Merge | Remove | SetTags | UpdateTags | GetHistory):
            try:
                return self._dispatch(message)
            except (ValueError, KeyError) as error:
                return Rejected(error)  # the caller's mistake: api.* raises it
        try:
            return self._dispatch(message)
        except Exception as error:
            self._handler_errors += 1
            log.exception("membership: failed to handle %r", message)
            return Rejected(error)

    def _dispatch(self, message: Any) -> Any:
        now = self._clock.monotonic()
        match message:
            case Tick(at):
                if at is not None and at > now:
                    now = at  # set for then; the clock's float sum reads a hair less
                self._run(self.core.tick(now))
                if now >= self._next_sweep:
                    self._next_sweep = now + self._config.reconnect_interval_s
                    self._sweep_peers(now)
            case PeerMessage(sender, address, payload, done):
                try:
                    if isinstance(payload, MEMBERSHIP_MESSAGES):
                        self._run(self.core.handle(sender, payload, now))
                    else:  # routed here by mistake (see actors.routing)
                        self._unroutable += 1
                finally:
                    if done is not None:
                        done()
            case StreamOpened(stream):
                self._stream_opened(stream, now)
            case Add(member):
                self._run(self.core.add(member, now))
            case Merge(members):
                self._run(self.core.merge(members, now))
            case Remove(name):
                self._run(self.core.remove(name, now))
            case Snapshot(include_dead):
                return self._snapshot(include_dead, now)
            case Subscribe(subscriber, kinds, with_snapshot):
                token = next(self._tokens)
                self._subscribers[token] = (subscriber, kinds)
                if with_snapshot:
                    return token, self._snapshot(True, now)
                return token
            case SetTags(tags):
                self._run(self.core.set_tags(tags, now))
            case UpdateTags(patch):
                tags = apply_patch(self.core.local_member.tags, dict(patch))
                self._run(self.core.set_tags(tags, now))
                return tags
            case GetHistory(name):
                history = self._history.of(name)
                if history is None and self.core.get(name) is None:
                    raise KeyError(f"no member named {name!r}")
                return history or ()
            case WatchLocalHealth(watcher):
                self._health.add(watcher, self.core.awareness.score)
            case Unsubscribe(token):
                self._subscribers.pop(token, None)
            case Leave():
                return self._leave(now)
            case GetStats():
                return self._stats()
            case DialSeedFailed(address, reason):
                self._seed_dial_failures += 1
                log.debug("seed %s unreachable: %s", address, reason)
            case PeerConnectivity(name, connected):
                log.debug("stream to %s %s", name, "up" if connected else "down")
                if not connected:
                    self._run(self.core.peer_unreachable(name, now))
            case _:
                raise TypeError(f"MembershipActor got an unknown message {message!r}")
        return None

    # ------------------------------------------------------------------ handlers

    def _stream_opened(self, stream: Stream, now: float) -> None:
        peer = self._peer(stream.remote_name, stream.remote_address)
        peer.tell(Attach(stream))
        via_seed = stream.dialed_address is not None and stream.dialed_address in self.core.seeds
        self._run(self.core.stream_opened(
            stream.remote_name, stream.remote_address, now, via_seed=via_seed
        ))

    def _leave(self, now: float) -> list[pykka.Future[Any]]:
        log.info("node %s is leaving the cluster", self.name)
        self._run(self.core.leave(now))
        # Non-blocking asks: the caller (never an actor) waits on them, bounded.
        return [peer.ask(Flush(), block=False) for peer in self._peers.refs()]

    def _snapshot(self, include_dead: bool, now: float) -> tuple[MemberView, ...]:
        wall_now = self._clock.wall()
        views = []
        for record in self.core.records():
            member = record.member
            if not include_dead and not member.status.is_live:
                continue
            views.append(MemberView(
                name=member.name,
                address=member.address,
                status=member.status.label,
                incarnation=member.incarnation,
                since=wall_now - (now - record.since),
                tags=member.tags,
            ))
        return tuple(views)

    def _stats(self) -> dict[str, int]:
        counters = self.core.counters
        depths = [mailbox_depth(peer) for peer in self._peers.refs()]
        return {
            "members_alive": sum(
                1 for r in self.core.records() if r.member.status is Status.ALIVE
            ),
            "peer_actors": len(self._peers),
            "invalid_records": counters.invalid_records,
            "refutations": counters.refutations,
            "gossip_messages_sent": counters.gossip_messages_sent,
            "sync_exchanges_started": counters.sync_exchanges_started,
            "probes_sent": counters.probes_sent,
            "indirect_probes_sent": counters.indirect_probes_sent,
            "acks_received": counters.acks_received,
            "nacks_received": counters.nacks_received,
            "nacks_sent": counters.nacks_sent,
            "probes_failed": counters.probes_failed,
            "suspicions_raised": counters.suspicions_raised,
            "failures_declared": counters.failures_declared,
            "tombstones_reaped": counters.tombstones_reaped,
            "members_refused_cap": counters.members_refused_cap,
            "members_refused_rate": counters.members_refused_rate,
            "unrefutable": counters.unrefutable,
            "local_health_score": self.core.awareness.score,
            "handler_errors": self._handler_errors + self._health.errors,
            "unroutable_messages": self._unroutable,
            "seed_dial_failures": self._seed_dial_failures,
            "peer_mailbox_depth_max": max(depths, default=0),
            "peer_mailbox_depth_sum": sum(depths),
        }

    # ------------------------------------------------------------------ effects

    def _run(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(to, address, message):
                    if to == self.name:
                        continue
                    peer = self._peers.get(to)
                    if peer is None or not peer.is_alive():
                        record = self.core.get(to)
                        if record is not None and record.member.status is Status.LEFT:
                            continue  # it said goodbye; a new life will dial us
                        peer = self._peer(to, address)
                    # It may stop between the check and the tell (node shutdown, sweep
                    # of a member no longer live): the message is lost like any other.
                    deliver(self._peers.directory, to, peer, message)
                case Publish(event):
                    self._publish(event)
                case DialSeed(address):
                    self._dial_seed(address)

    def _dial_seed(self, address: str) -> None:
        me = self.actor_ref
        self._transport.dial(
            address, None, lambda reason: tell_quietly(me, DialSeedFailed(address, reason))
        )

    def _peer(self, name: str, address: str) -> pykka.ActorRef[Any]:
        """The PeerActor for ``name``, started on first use."""
        peer = self._peers.get(name)
        if peer is not None and peer.is_alive():
            return peer
        if not address:
            record = self.core.get(name)
            address = record.member.address if record else ""
        return self._peers.start(name, address, self.actor_ref)

    def _sweep_peers(self, now: float) -> None:
        """Stop the peer actors of members that are no longer live (failed or left)."""
        def gone(name: str) -> bool:
            record = self.core.get(name)
            # Unknown: connected before its record arrived; kept, like a live member.
            return record is not None and not record.member.status.is_live

        self._peers.sweep(now, gone)

    def _publish(self, event: MemberEvent) -> None:
        member = event.member
        log.info("member %s (%s) is now %s, incarnation %d [%s]",
                 member.name, member.address, member.status.label,
                 member.incarnation, event.kind.value,
                 extra={"event": event.kind.value, "member": member.name,
                        "address": member.address, "status": member.status.label,
                        "incarnation": member.incarnation})
        self._history.record(event, self._clock.wall())
        previous = event.previous
        if member.name != self.name:
            peer = self._peers.get(member.name)
            if peer is not None and previous is not None and previous.address != member.address:
                peer.tell(SetAddress(member.address))
            if member.status is Status.LEFT and peer is not None:
                # It said goodbye: stop redialling it. A new life gets a new actor.
                self._peers.stop(member.name)
        for token, (subscriber, kinds) in list(self._subscribers.items()):
            if kinds is not None and event.kind not in kinds:
                continue
            try:
                if hasattr(subscriber, "tell"):
                    subscriber.tell(event)
                else:
                    subscriber(event)
            except Exception:
                log.exception("membership subscriber %d failed; unsubscribed", token)
                self._subscribers.pop(token, None)
