"""MembershipCore: a node's member map, and ``_apply``, the one place where it changes.

Every transition of the member map is made by ``_apply`` here; the rules that decide
what to apply and what to send live in core.rules, one file per question (see
core/rules/__init__.py: receiving and refuting, gossip, push-pull and joining, SWIM
probing, Lifeguard suspicion, healing and tombstones, the schedule and its deadline
cache, local input). The surface methods below are those rule functions, bound as
methods. Inputs are plain calls carrying ``now`` (seconds on the caller's monotonic
clock); outputs are lists of effects (core.messages) that the caller carries out in
order. Each rule is tested in tests/core/.

Laws kept here: records merge by precedence (core.member), which is commutative,
associative and idempotent; ``_records``, ``_me``, ``_live``, ``_failed``,
``_tombstones``, the seed-address index and the suspicion timers change together, in
``_apply``, so they never disagree; every change that wins is queued for gossip (unless
``gossip`` is False) and published as at most one event.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from dynago.config import Config
from dynago.core.awareness import Awareness
from dynago.core.broadcast import BroadcastQueue
from dynago.core.member import Member, MemberRecord, Status
from dynago.core.messages import Effect, EventKind, MemberEvent, Publish
from dynago.core.nameset import NameSet
from dynago.core.probe import Prober
from dynago.core.rules import inbound, local, probe, schedule, sync
from dynago.core.rules.lifeguard import track_suspicion
from dynago.core.rules.sync import track_seed_address
from dynago.core.suspicion import Suspicion
from dynago.core.tags import Tags


@dataclass(slots=True)
class CoreCounters:
    """Things a node counts about its membership traffic."""

    invalid_records: int = 0
    """Records from peers dropped because they broke the rules of core.member."""
    refutations: int = 0
    """Times this node raised its incarnation to win over a record of itself."""
    unrefutable: int = 0
    """Records of this node it could not refute (incarnation at its maximum)."""
    gossip_messages_sent: int = 0
    sync_exchanges_started: int = 0
    probes_sent: int = 0
    """Direct probes (Pings) this node started."""
    indirect_probes_sent: int = 0
    """PingReqs this node sent because a direct probe timed out."""
    acks_received: int = 0
    nacks_received: int = 0
    nacks_sent: int = 0
    probes_failed: int = 0
    """Probes that ended with no ack: the target became suspect."""
    suspicions_raised: int = 0
    """Members this node itself suspected."""
    failures_declared: int = 0
    """Suspects whose timeout ran out on this node."""
    tombstones_reaped: int = 0
    members_refused_cap: int = 0
    """New members dropped because the map held max_members already."""
    members_refused_rate: int = 0
    """New members dropped because their sender exceeded its allowance of new members."""


class MembershipCore:
    """The member map of one node; the rules that change it are in core.rules."""

    def __init__(
        self,
        name: str,
        address: str,
        config: Config,
        rng: random.Random,
        now: float,
        seeds: Iterable[str] = (),
        tags: Tags = (),
    ) -> None:
        me = Member(name, address, 0, Status.ALIVE, tags=tags)
        problem = me.problem()
        if problem:
            raise ValueError(problem)
        self.name = name
        self.config = config
        self.counters = CoreCounters()
        self._rng = rng
        self._records: dict[str, MemberRecord] = {name: MemberRecord(me, now)}
        self._me = me
        """This node's own current record (kept in step with ``_records`` by _apply)."""
        self._live = NameSet()
        """Live members other than this node."""
        self._failed = NameSet()
        """Members held as FAILED (candidates for a reconnect attempt)."""
        self._tombstones: dict[str, float] = {}
        """FAILED and LEFT members -> when their record last changed, oldest first."""

        self._broadcasts = BroadcastQueue()
        self._broadcasts.enqueue(me)
        self._leaving = False
        self._seeds = tuple(seeds)
        self._at_seed: dict[str, set[str]] = {seed: set() for seed in self._seeds}
        """Seed address -> live members (this node included) held at that address."""
        if address in self._at_seed:
            self._at_seed[address].add(name)
        self._seed_peers: set[str] = set()
        self._synced = not self._seeds
        self._seed_backoff = config.reconnect_initial_backoff_s
        self._next_seed_attempt = now
        self._next_gossip = now + config.gossip_interval_s
        self._next_anti_entropy = now + config.anti_entropy_interval_s * (0.5 + rng.random())
        self._now = now
        """The latest time any input carried."""
        self._due: float | None = None
        """next_deadline(), cached; dropped by whatever changes what it is computed from:
        every input except a Ping, Gossip or Nack that changes no record and confirms no
        suspicion, and arrives while nothing is overdue (see handle)."""
        self._prober = Prober(rng)
        self.awareness = Awareness(config.awareness_max_multiplier)
        self._suspicions: dict[str, Suspicion] = {}
        self._next_probe = now + config.probe_interval_s * rng.random()
        self._next_reconnect = now + config.reconnect_interval_s
        self._last_tick = now
        self._pause_threshold = max(3 * config.tick_interval_s, config.probe_timeout_s)
        """A tick this late after its deadline means this node did not run meanwhile."""
        self._notified: dict[str, float] = {}
        self._returned: dict[str, float] = {}
        """Members that came back from FAILED -> when (see _doubtful_origin)."""
        self._allowances: dict[str, tuple[float, float]] = {}

    # ------------------------------------------------------------------ queries

    @property
    def local_member(self) -> Member:
        """This node's own current record."""
        return self._me

    @property
    def synced(self) -> bool:
        """True once this node has completed a full-state exchange with a seed (or has
        no seeds): it has joined."""
        return self._synced

    @property
    def leaving(self) -> bool:
        return self._leaving

    @property
    def seeds(self) -> tuple[str, ...]:
        return self._seeds

    def get(self, name: str) -> MemberRecord | None:
        return self._records.get(name)

    def records(self) -> list[MemberRecord]:
        """Every record this node holds, sorted by name."""
        return [self._records[name] for name in sorted(self._records)]

    def live_peer_names(self) -> list[str]:
        """Names of live members other than this node (unordered)."""
        return self._live.names()

    def pending_broadcasts(self) -> tuple[Member, ...]:
        return self._broadcasts.pending()

    def suspicion_deadline(self, name: str) -> float | None:
        """When the running suspicion of ``name`` runs out, or None if there is none."""
        suspicion = self._suspicions.get(name)
        return suspicion.due if suspicion is not None else None

    def probing(self, name: str) -> bool:
        """True while a probe of ``name`` is in flight."""
        return name in self._prober.by_target

    def _is_live_peer(self, name: str) -> bool:
        record = self._records.get(name)
        return record is not None and record.member.status.is_live and name != self.name

    # ------------------------------------------------------------------ inputs
    # Each is a rule function (core.rules.*) bound as a method: no extra call on the hot
    # paths (handle, next_deadline, tick).

    tick = schedule.tick
    next_deadline = schedule.next_deadline
    _compute_next_deadline = schedule.compute_next_deadline
    handle = inbound.handle
    peer_unreachable = probe.peer_unreachable
    stream_opened = sync.stream_opened
    adopt_view = sync.adopt_view
    add = local.add
    merge = local.merge
    remove = local.remove
    leave = local.leave
    set_tags = local.set_tags

    # ------------------------------------------------------------------ the transition

    def _apply(self, member: Member, now: float, effects: list[Effect],
               reporter: str = "self", detail: str = "", *, gossip: bool = True) -> None:
        """The only transition of the member map: store, gossip (unless ``gossip`` is
        False) and publish one record."""
        self._due = None  # a change of the map may move any deadline
        held = self._records.get(member.name)
        previous = held.member if held is not None else None
        name = member.name
        self._records[name] = MemberRecord(member, now)
        if name == self.name:
            self._me = member
        if self._at_seed:
            track_seed_address(self, previous, member)
        if name != self.name:
            was_live = previous is not None and previous.status.is_live
            if member.status.is_live:
                if not was_live:
                    self._live.add(name)
                self._tombstones.pop(name, None)
            else:
                if was_live:
                    self._live.discard(name)
                self._prober.forget_target(name)
                self._tombstones.pop(name, None)
                self._tombstones[name] = now  # re-inserted: the dict stays oldest first
            was_failed = previous is not None and previous.status is Status.FAILED
            if member.status is Status.FAILED:
                if not was_failed:
                    self._failed.add(name)
            elif was_failed:
                self._failed.discard(name)
                if member.status.is_live:
                    self._returned[name] = now
            track_suspicion(self, member, now)
        if gossip:
            self._broadcasts.enqueue(member)
        kind = _event_kind(previous, member)
        if kind is not None:
            effects.append(Publish(MemberEvent(kind, member, previous, reporter, detail)))


def _event_kind(previous: Member | None, current: Member) -> EventKind | None:
    """Which event a change from ``previous`` to ``current`` is, if any."""
    if (previous is not None and previous.status == current.status
            and previous.incarnation == current.incarnation
            and previous.address == current.address and previous.tags == current.tags):
        return None  # only the origin changed: the same news from someone else
    was_live = previous is not None and previous.status.is_live
    if current.status is Status.ALIVE:
        return EventKind.CHANGED if was_live else EventKind.JOINED
    if current.status is Status.SUSPECT:
        return EventKind.SUSPECTED if was_live else EventKind.JOINED
    if previous is None or previous.status == current.status:
        return None  # a tombstone we never knew as live, or a dead record re-numbered
    return EventKind.FAILED if current.status is Status.FAILED else EventKind.LEFT
