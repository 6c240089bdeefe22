"""MembershipCore: the one place where a node's member map changes.

Every transition of the member map is made here, by ``_apply``; every other method
decides what to apply and what to send. Inputs are plain calls carrying ``now`` (seconds
on the caller's monotonic clock); outputs are lists of effects (core.messages) that the
caller carries out in order.

Rules (each tested in tests/core/):

* Records merge by precedence (core.member): commutative, associative, idempotent.
* Only a member raises its own incarnation. When it hears a record of itself that wins
  over its own (a suspicion, a failure, or its own previous life after a restart), it
  takes an incarnation above that record and gossips that it is alive (SWIM refutation).
* Every change that wins is queued for gossip (except what a node that has not joined
  yet learns from a full list: news to it alone): ``gossip_fanout`` random live members
  per round, each change for ``retransmit_mult * ceil(log10(N+1))`` rounds, at most
  ``max_updates_per_message`` records per message.
* Every ``anti_entropy_interval_s`` the node exchanges its full list with one random live
  member (push-pull), in chunks of ``max_members_per_sync_message`` records.
* A node joins by push-pull: when a stream to a member it does not know yet opens (or it
  has not joined yet), it sends its full list and asks for the other's. It has joined
  once an exchange with one of its seeds completed; until then it retries its seeds with
  capped backoff. (An exchange with a node that dialled *us* does not count: in a chain
  B→A, C→B, B may hear from C before it reached A, and must still go on to A.)
* Failure detection is SWIM with Lifeguard (core.probe, core.suspicion, core.awareness):
  each protocol period one member, round-robin, gets a Ping; no Ack within the probe
  timeout → PingReq to ``indirect_checks`` others, who relay the Ack or answer Nack; no
  Ack by the end of the period → the member is SUSPECT (origin: this node) and that is
  gossiped. A suspicion becomes FAILED after its Lifeguard timeout unless the member
  refutes; independent confirmations shrink the timeout. A lost stream is only a hint:
  it makes this node probe that member now.
* In a peer's full list (push-pull), a FAILED record of a member this node holds live
  counts only as a suspicion from the node that declared it (memberlist's rule): a node
  that was cut off brings back stale verdicts in the exchange that reconnects it, and
  they must not fail members the others can reach. A gossiped verdict is a suspicion
  too while its origin is held failed here or came back from failed lately (it may
  still be pushing out what it queued while cut off); other gossiped verdicts apply as
  they are; an operator's removal (no origin) always stands. A node with no
  live member to gossip to still counts its rounds, so what it queued while cut off
  (verdicts on everyone) expires instead of being pushed out when it reconnects.
* Time this node did not run (a gap between ticks longer than the probe timeout) does
  not count against others: probe and suspicion deadlines move by the gap.
* A message from a member this node holds as failed is answered with that record, so a
  paused or cut-off member learns of its fate at once and refutes. (Not for left: a
  member that left says so itself, and a new life of it learns by joining.)
* Every ``reconnect_interval_s`` the node tries one failed member (with probability
  failed / live, so the cluster as a whole tries each failed member about once per
  period), and a seed that is not a live member, with a push-pull: partitions heal with
  no operator action. Failed and left records are reaped after ``tombstone_retention_s``.
* Records that break the rules of core.member (from a peer) are dropped and counted;
  the same records handed in by the local user raise ValueError and change nothing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter

from dynago.config import Config
from dynago.core.awareness import Awareness
from dynago.core.broadcast import BroadcastQueue, anti_entropy_scale, retransmit_limit
from dynago.core.member import MAX_INCARNATION, Member, MemberRecord, Status
from dynago.core.messages import (
    Ack,
    CoreMessage,
    DialSeed,
    Effect,
    EventKind,
    Gossip,
    MemberEvent,
    Nack,
    Ping,
    PingReq,
    Publish,
    Send,
    StateSync,
)
from dynago.core.nameset import NameSet
from dynago.core.probe import ActiveProbe, Prober
from dynago.core.suspicion import Suspicion, expected_confirmations, suspicion_bounds
from dynago.core.tags import Tags
from dynago.core.view import ConvergedView

_member_of = attrgetter("member")
_SUSPECT = Status.SUSPECT
_FAILED = Status.FAILED
"""(Looking a member up on the Status class costs as much as the test that uses it.)"""


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
    """The member map of one node and the rules that change it."""

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

    # ------------------------------------------------------------------ inputs

    def tick(self, now: float) -> list[Effect]:
        """Advance time: run what is due — seed retries, the gossip round, anti-entropy,
        the next probe, probe and suspicion deadlines, reconnects and reaping."""
        effects: list[Effect] = []
        late = now - self.next_deadline()
        self._due = None  # what runs below moves the next deadline
        self._last_tick = now
        if now > self._now:
            self._now = now
        if late > self._pause_threshold:
            # This node did not run for a while (paused, starved of CPU): it ticks long
            # after something was due. What it waited for may be sitting unread in its
            # mailbox: judge nobody on time it slept.
            self._postpone_deadlines(late - self.config.tick_interval_s)
        if not self._synced and self._seeds and now >= self._next_seed_attempt:
            effects.extend(DialSeed(address) for address in self._seeds)
            self._next_seed_attempt = now + self._seed_backoff * (0.5 + self._rng.random() / 2)
            self._seed_backoff = min(self._seed_backoff * 2, self.config.reconnect_max_backoff_s)
        if now >= self._next_gossip:
            self._next_gossip = _next_due(self._next_gossip, self.config.gossip_interval_s, now)
            effects.extend(self._gossip_round())
        if now >= self._next_anti_entropy:
            self._next_anti_entropy = _next_due(
                self._next_anti_entropy, self._anti_entropy_interval(), now)
            if self._live:
                effects.extend(self._full_state(self._live.pick(self._rng), reply_wanted=True))
        if not self._leaving:
            if now >= self._next_probe:
                self._next_probe = _next_due(
                    self._next_probe, self.awareness.scale(self.config.probe_interval_s), now)
                next_target = self._prober.next_target(self._live.names, self._is_live_peer)
                if next_target is not None:
                    self._start_probe(next_target, now, effects)
            if self._prober.active or self._prober.relays:
                self._run_probe_deadlines(now, effects)
            if self._suspicions:
                self._run_suspicion_deadlines(now, effects)
            if now >= self._next_reconnect:
                self._next_reconnect = _next_due(
                    self._next_reconnect, self.config.reconnect_interval_s, now)
                self._reconnect(now, effects)
        return effects

    def next_deadline(self) -> float:
        """The earliest time at which ``tick`` has something to do.

        A driver that ticks only then (the simulator) sees exactly what one that ticks
        every ``tick_interval_s`` sees, up to that rounding. Gossip rounds with nothing to
        send are not deadlines; they keep to their grid (see ``_gossip_due``).
        """
        if self._due is not None:
            return self._due
        self._due = self._compute_next_deadline()
        return self._due

    def _compute_next_deadline(self) -> float:
        due = self._next_anti_entropy
        if self._broadcasts.queued:
            gossip = self._gossip_due()
            if gossip < due:
                due = gossip
        if not self._synced and self._seeds and self._next_seed_attempt < due:
            due = self._next_seed_attempt
        if self._leaving:
            return due  # a leaving node neither probes, suspects nor reconnects
        if self._next_probe < due:
            due = self._next_probe
        if self._next_reconnect < due:
            due = self._next_reconnect
        prober = self._prober
        if prober.active:
            for probe in prober.active.values():
                deadline = probe.ends_at if probe.indirect else probe.timeout_at
                if deadline < due:
                    due = deadline
        if prober.relays:
            for relay in prober.relays.values():
                if relay.deadline < due:
                    due = relay.deadline
        for suspicion in self._suspicions.values():
            if suspicion.due < due:
                due = suspicion.due
        return due

    def _gossip_due(self) -> float:
        """The next gossip round on the grid of ``gossip_interval_s`` that is not before
        the latest input: a change that arrives while the queue was empty waits for the
        next round, as it would with a ticker."""
        due = self._next_gossip
        if due < self._now:
            interval = self.config.gossip_interval_s
            due += interval * math.ceil((self._now - due) / interval)
            self._next_gossip = due
        return due

    def _anti_entropy_interval(self) -> float:
        return self.config.anti_entropy_interval_s * anti_entropy_scale(len(self._live) + 1)

    def _postpone_deadlines(self, delay: float) -> None:
        for probe in self._prober.active.values():
            probe.timeout_at += delay
            probe.ends_at += delay
        for relay in self._prober.relays.values():
            relay.deadline += delay
        for suspicion in self._suspicions.values():
            suspicion.postpone(delay)

    def peer_unreachable(self, name: str, now: float) -> list[Effect]:
        """Hint: the stream to ``name`` was lost. Not a verdict: probe it now."""
        self._due = None  # whatever follows may move the next deadline
        effects: list[Effect] = []
        if not self._leaving and self._is_live_peer(name) and not self.probing(name):
            self._start_probe(name, now, effects)
        return effects

    def handle(self, sender: str, message: CoreMessage, now: float) -> list[Effect]:
        """A message from member ``sender`` arrived."""
        if now > self._now:
            self._now = now
            if self._due is not None and self._due < now:
                # Overdue (no tick yet): a later ``_now`` can move the gossip round on its
                # grid (see _gossip_due).
                self._due = None
        if not isinstance(message, (Ping, Gossip, Nack)):
            # Acks, relays and full lists change probes, relays or the join state. Pings,
            # gossip and nacks move a deadline only through a record that changes
            # (_apply) or a suspicion confirmed (_receive), which drop the cache there.
            self._due = None
        effects: list[Effect] = []
        incarnation_before = self._me.incarnation
        if isinstance(message, Ping):
            self._on_ping(sender, message, now, effects)
        elif isinstance(message, Ack):
            self._on_ack(sender, message, now, effects)
        elif isinstance(message, Gossip):
            self._receive_all(message.updates, now, effects, sender, full_state=False)
        elif isinstance(message, StateSync):
            self._receive_all(message.members, now, effects, sender, full_state=True)
            if message.last:
                if sender in self._seed_peers:
                    self._synced = True
                if message.reply_wanted:
                    effects.extend(self._full_state(sender, reply_wanted=False))
        elif isinstance(message, PingReq):
            self._on_ping_req(sender, message, now, effects)
        elif isinstance(message, Nack):
            probe = self._prober.active.get(message.seq)
            if probe is not None:
                probe.nacks += 1
                self.counters.nacks_received += 1
        else:  # pragma: no cover - the type union is closed
            raise TypeError(f"unknown core message {message!r}")
        held = self._records.get(sender)
        if sender == self.name or held is None:
            return effects
        me = self._me
        if me.incarnation != incarnation_before and not isinstance(message, Ping):
            # We refuted something the sender told us: it is the first who must know.
            effects.append(Send(sender, held.member.address, Gossip((me,))))
        if held.member.status is _FAILED:
            # It talks, so it runs: tell it how we hold it, so that it can refute. At most
            # once per protocol period: two nodes that hold each other failed must not
            # bounce notices forever.
            last = self._notified.get(sender)
            if last is None or now - last >= self.config.probe_interval_s:
                self._notified[sender] = now
                effects.append(Send(sender, held.member.address, Gossip((held.member,))))
        return effects

    def stream_opened(
        self, peer: str, address: str, now: float, *, via_seed: bool = False
    ) -> list[Effect]:
        """A stream to member ``peer`` (reached at ``address``) opened, in either direction;
        ``via_seed`` if this node dialled it at one of its seed addresses.

        If we do not know ``peer`` yet, or have not joined yet, push our full list and ask
        for theirs: this is how a node joins, and how a restarted node learns of its
        previous life in time to outbid it.
        """
        self._due = None  # whatever follows may move the next deadline
        if peer == self.name:
            return []
        if via_seed:
            self._seed_peers.add(peer)
        elif peer in self._records and self._synced:
            return []
        return self._full_state(peer, reply_wanted=True, address=address)

    def adopt_view(self, view: ConvergedView, now: float) -> None:
        """Start from the converged member list ``view``, as if a full exchange with a seed
        had just completed, with no events and nothing to gossip (everyone holds it).

        Only for a node that has not exchanged anything yet; ``view`` must hold this
        node's own record exactly as the node holds it. Raises ValueError otherwise.
        """
        self._due = None  # whatever follows may move the next deadline
        held = view.records.get(self.name)
        if held is None or held.member != self.local_member:
            raise ValueError(f"the view does not hold {self.name!r} as this node holds itself")
        if len(self._records) != 1 or len(self._broadcasts) > 1:
            raise ValueError("only a node that has not exchanged anything can adopt a view")
        if len(view) > self.config.max_members:
            raise ValueError(f"the view exceeds {self.config.max_members} members")
        self._records = view.records.copy()
        self._live = view.live_without(self.name)
        self._failed = view.failed.copy()
        self._tombstones = view.tombstones.copy()
        for seed, holders in self._at_seed.items():
            holders.update(view.by_address.get(seed, ()))
        self._broadcasts = BroadcastQueue()
        self._synced = True
        self._now = max(self._now, now)
        self._next_anti_entropy = now + self._anti_entropy_interval() * (
            0.5 + self._rng.random())

    def add(self, member: Member, now: float) -> list[Effect]:
        """Merge one record handed in locally. Raises ValueError if it is invalid or the
        map is full."""
        self._due = None  # whatever follows may move the next deadline
        problem = member.problem()
        if problem:
            raise ValueError(problem)
        if member.name not in self._records and len(self._records) >= self.config.max_members:
            raise ValueError(f"the member map is full ({self.config.max_members} members)")
        effects: list[Effect] = []
        self._receive(member, now, effects)
        return effects

    def merge(self, members: Iterable[Member], now: float) -> list[Effect]:
        """Merge records handed in locally; all-or-nothing: raises if any is invalid."""
        self._due = None  # whatever follows may move the next deadline
        batch = list(members)
        for member in batch:
            problem = member.problem()
            if problem:
                raise ValueError(problem)
        new = {m.name for m in batch if m.name not in self._records}
        if len(self._records) + len(new) > self.config.max_members:
            raise ValueError(f"the member map would exceed {self.config.max_members} members")
        effects: list[Effect] = []
        for member in batch:
            self._receive(member, now, effects)
        return effects

    def remove(self, name: str, now: float) -> list[Effect]:
        """Declare member ``name`` failed at its current incarnation, like Serf's
        force-leave. If it is in fact alive it refutes and comes back."""
        self._due = None  # whatever follows may move the next deadline
        if name == self.name:
            raise ValueError("a node cannot remove itself; use leave")
        record = self._records.get(name)
        if record is None:
            raise KeyError(f"no member named {name!r}")
        effects: list[Effect] = []
        if record.member.status.is_live:
            failed = Member(name, record.member.address, record.member.incarnation, Status.FAILED,
                            tags=record.member.tags)
            self._apply(failed, now, effects, "local")
        return effects

    def leave(self, now: float) -> list[Effect]:
        """This node leaves: mark itself LEFT and tell every live member at once."""
        self._due = None  # whatever follows may move the next deadline
        me = self.local_member
        effects: list[Effect] = []
        if self._leaving:
            return effects
        self._leaving = True
        left = Member(me.name, me.address, me.incarnation, Status.LEFT, tags=me.tags)
        self._apply(left, now, effects, "local")
        notice = Gossip((left,))
        for peer in self._live.names():
            effects.append(Send(peer, self._records[peer].member.address, notice))
        return effects

    def set_tags(self, tags: Tags, now: float) -> list[Effect]:
        """This node's tags become ``tags`` (canonical, see core.tags): it raises its
        incarnation, as a refutation does, so that its new record wins everywhere. Raises
        ValueError for invalid tags, while leaving, or at the maximum incarnation."""
        self._due = None  # whatever follows may move the next deadline
        me = self.local_member
        if tags == me.tags:
            return []
        updated = Member(me.name, me.address, me.incarnation + 1, Status.ALIVE, tags=tags)
        problem = updated.problem()
        if problem:
            raise ValueError(problem)
        if self._leaving:
            raise ValueError("this node is leaving; its tags no longer change")
        effects: list[Effect] = []
        self._apply(updated, now, effects, "local")
        return effects

    # ------------------------------------------------------------------ rules

    def _receive(
        self, member: Member, now: float, effects: list[Effect], sender: str | None = None,
        *, full_state: bool = False,
    ) -> None:
        """Take in one record from outside: validate, refute if it is about us, merge.

        A record of a member not held yet must fit under ``max_members``, and, from a peer,
        within that peer's allowance of new members (a token bucket of
        ``new_members_burst`` refilled at ``new_members_per_peer_per_s``): a peer that
        makes up members by the million fills neither memory nor the map, and no real
        member is ever pushed out for them.
        """
        held = self._records.get(member.name)
        if held is not None and (held.member is member or held.member == member):
            return  # news we hold already (and checked when it came in)
        if member.problem() is not None:
            self.counters.invalid_records += 1
            return
        if member.name == self.name:
            self._consider_self(member, now, effects)
            return
        if member.name not in self._records and not self._admit_new(sender, now):
            return
        if (member.status is _FAILED and member.origin
                and held is not None and held.member.status.is_live
                and member.incarnation >= held.member.incarnation
                and (full_state or self._doubtful_origin(member.origin, now))):
            # In another node's full list, its verdict on a member we hold live is a
            # suspicion here, from the node that declared it (memberlist's push-pull
            # rule): our own Lifeguard timer decides, and the member may refute first. A
            # node that was cut off brings its stale verdicts back in the push-pull that
            # reconnects it; they fail no one that the rest of the cluster can reach. The
            # same holds for the verdicts it still had queued for gossip, so a gossiped
            # verdict is a suspicion too while its origin is failed here or came back
            # only lately. (A verdict with no origin is an operator's removal: it stands.)
            member = Member(member.name, member.address, member.incarnation,
                            Status.SUSPECT, member.origin, member.tags)
        if member.status is _SUSPECT:
            suspicion = self._suspicions.get(member.name)
            if (suspicion is not None and suspicion.incarnation == member.incarnation
                    and suspicion.confirm(member.origin)):
                self._due = None  # Lifeguard: an independent confirmation shortens it
        if held is None or member.supersedes(held.member):
            # A node that has not joined yet learns the cluster from a seed's full list:
            # that news is news to it alone (the seed and its cluster hold it already),
            # and gossiping all N records on would cost every join O(N) messages.
            self._apply(member, now, effects, sender if sender is not None else "local",
                        gossip=self._synced or not full_state)

    def _receive_all(
        self, members: tuple[Member, ...], now: float, effects: list[Effect], sender: str,
        *, full_state: bool,
    ) -> None:
        records = self._records
        for member in members:
            held = records.get(member.name)
            if held is not None and held.member is member:
                continue  # the very record we hold (an in-process peer: the simulator)
            self._receive(member, now, effects, sender, full_state=full_state)

    def _doubtful_origin(self, origin: str, now: float) -> bool:
        """Whether ``origin``'s verdicts may be stale: it is held failed (or left) here,
        or it came back from failed within twice the time a gossiped record lives
        (retransmit rounds x gossip interval), so whatever it queued while cut off may
        still be on its way, also relayed once."""
        record = self._records.get(origin)
        if record is None or origin == self.name:
            return False
        if not record.member.status.is_live:
            return True
        returned = self._returned.get(origin)
        if returned is None:
            return False
        window = 2.0 * self.config.gossip_interval_s * retransmit_limit(
            self.config.retransmit_mult, len(self._live) + 1)
        if now - returned <= window:
            return True
        del self._returned[origin]
        return False

    def _admit_new(self, sender: str | None, now: float) -> bool:
        """Whether one more member may enter the map (see _receive)."""
        if len(self._records) >= self.config.max_members:
            self.counters.members_refused_cap += 1
            return False
        if sender is None or (not self._synced and sender in self._seed_peers):
            # The operator named the seed: a node that has not joined yet takes the
            # whole cluster from it (only the map's cap applies). Everyone else may
            # introduce members only at their allowance.
            return True
        burst = float(self.config.new_members_burst)
        tokens, since = self._allowances.get(sender, (burst, now))
        tokens = min(burst, tokens + (now - since) * self.config.new_members_per_peer_per_s)
        if tokens < 1.0:
            self._allowances[sender] = (tokens, now)
            self.counters.members_refused_rate += 1
            return False
        if len(self._allowances) >= self.config.max_members and sender not in self._allowances:
            self._allowances.clear()  # bounded: forget allowances rather than grow
        self._allowances[sender] = (tokens - 1.0, now)
        return True

    def _consider_self(self, member: Member, now: float, effects: list[Effect]) -> None:
        """Someone says something about us. If it would win over our own record, outbid it."""
        me = self.local_member
        if not member.supersedes(me):
            return
        if member.incarnation >= MAX_INCARNATION:
            self.counters.unrefutable += 1
            return
        status = Status.LEFT if self._leaving else Status.ALIVE
        self.counters.refutations += 1
        if member.status in (Status.SUSPECT, Status.FAILED):
            self.awareness.apply(+1)  # Lifeguard: being suspected hints that we are slow
        self._apply(Member(me.name, me.address, member.incarnation + 1, status, tags=me.tags),
                    now, effects)

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
            self._track_seed_address(previous, member)
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
            self._track_suspicion(member, now)
        if gossip:
            self._broadcasts.enqueue(member)
        kind = _event_kind(previous, member)
        if kind is not None:
            effects.append(Publish(MemberEvent(kind, member, previous, reporter, detail)))

    def _is_live_peer(self, name: str) -> bool:
        record = self._records.get(name)
        return record is not None and record.member.status.is_live and name != self.name

    def _track_seed_address(self, previous: Member | None, member: Member) -> None:
        if previous is not None and previous.status.is_live:
            holders = self._at_seed.get(previous.address)
            if holders is not None:
                holders.discard(previous.name)
        if member.status.is_live:
            holders = self._at_seed.get(member.address)
            if holders is not None:
                holders.add(member.name)

    def _track_suspicion(self, member: Member, now: float) -> None:
        """Start, keep or end the Lifeguard timer of ``member`` as its record changes."""
        if member.status is not Status.SUSPECT:
            self._suspicions.pop(member.name, None)
            return
        running = self._suspicions.get(member.name)
        if running is not None and running.incarnation >= member.incarnation:
            running.confirm(member.origin)
            return
        size = len(self._live) + 1
        minimum, maximum = suspicion_bounds(
            self.config.suspicion_mult,
            self.config.suspicion_max_timeout_mult,
            self.config.probe_interval_s,
            size,
        )
        suspicion = Suspicion(
            member.incarnation, now, minimum, maximum,
            expected_confirmations(self.config.suspicion_mult, size),
        )
        suspicion.confirm(member.origin or "?")
        self._suspicions[member.name] = suspicion

    # ------------------------------------------------------------------ SWIM probing

    def _start_probe(self, target: str, now: float, effects: list[Effect]) -> None:
        record = self._records[target].member
        probe = self._prober.start(
            target, record.incarnation, now,
            self.awareness.scale(self.config.probe_timeout_s),
            self.awareness.scale(self.config.probe_interval_s),
        )
        self.counters.probes_sent += 1
        effects.append(Send(target, record.address, Ping(probe.seq, record)))

    def _run_probe_deadlines(self, now: float, effects: list[Effect]) -> None:
        for probe in list(self._prober.active.values()):
            if now >= probe.ends_at:
                self._prober.finish(probe.seq)
                self._probe_failed(probe, now, effects)
            elif now >= probe.timeout_at and not probe.indirect:
                probe.indirect = True
                record = self._records.get(probe.target)
                if record is None:
                    continue
                helpers = [n for n in self._live.sample(
                    self._rng, self.config.indirect_checks + 1) if n != probe.target]
                helpers = helpers[: self.config.indirect_checks]
                probe.helpers = len(helpers)
                self.counters.indirect_probes_sent += len(helpers)
                for helper in helpers:
                    effects.append(Send(helper, self._records[helper].member.address,
                                        PingReq(probe.seq, record.member)))
        for seq, relay in list(self._prober.relays.items()):
            if now >= relay.deadline:
                del self._prober.relays[seq]
                self.counters.nacks_sent += 1
                effects.append(Send(relay.origin, relay.origin_address, Nack(relay.origin_seq)))

    def _probe_failed(self, probe: ActiveProbe, now: float, effects: list[Effect]) -> None:
        self.counters.probes_failed += 1
        if probe.helpers == 0 or probe.nacks < probe.helpers:
            # Lifeguard: helpers that did not even nack suggest that we are the slow one.
            self.awareness.apply(+1)
        record = self._records.get(probe.target)
        if record is None or record.member.incarnation != probe.incarnation:
            return  # gone, or it refuted meanwhile
        member = record.member
        if member.status is Status.SUSPECT:
            # Lifeguard: our own failed probe is an independent confirmation of a suspicion
            # we heard from others; gossip it so that they count it too.
            suspicion = self._suspicions.get(member.name)
            if suspicion is not None and suspicion.confirm(self.name):
                mine = Member(member.name, member.address, member.incarnation,
                              Status.SUSPECT, self.name, member.tags)
                if mine.supersedes(member):
                    self._apply(mine, now, effects)
                else:
                    self._broadcasts.enqueue(mine)
            return
        if member.status is not Status.ALIVE:
            return
        self.counters.suspicions_raised += 1
        suspect = Member(member.name, member.address, member.incarnation, Status.SUSPECT,
                         self.name, member.tags)
        self._apply(suspect, now, effects, detail=f"our probe got no ack, direct or via "
                    f"{probe.helpers} helper(s) ({probe.nacks} nacked)")

    def _run_suspicion_deadlines(self, now: float, effects: list[Effect]) -> None:
        for name, suspicion in list(self._suspicions.items()):
            if now < suspicion.due:
                continue
            del self._suspicions[name]
            record = self._records.get(name)
            if record is None:
                continue
            member = record.member
            if member.status is Status.SUSPECT and member.incarnation == suspicion.incarnation:
                self.counters.failures_declared += 1
                failed = Member(name, member.address, member.incarnation, Status.FAILED,
                                self.name, member.tags)
                self._apply(failed, now, effects)

    def _on_ping(self, sender: str, ping: Ping, now: float, effects: list[Effect]) -> None:
        if ping.target.name == self.name:
            self._receive(ping.target, now, effects)  # a suspect refutes at once
        held = self._records.get(sender)
        address = held.member.address if held is not None else ""
        effects.append(Send(sender, address, Ack(ping.seq, self._me)))

    def _on_ack(self, sender: str, ack: Ack, now: float, effects: list[Effect]) -> None:
        self.counters.acks_received += 1
        relay = self._prober.relays.pop(ack.seq, None)
        if relay is not None:
            if ack.member.name == relay.target:
                effects.append(Send(relay.origin, relay.origin_address,
                                    Ack(relay.origin_seq, ack.member)))
        else:
            probe = self._prober.active.get(ack.seq)
            if probe is not None and ack.member.name == probe.target:
                self._prober.finish(ack.seq)
                self.awareness.apply(-1)
        self._receive(ack.member, now, effects, sender)

    def _on_ping_req(self, sender: str, req: PingReq, now: float, effects: list[Effect]) -> None:
        target = req.target
        if target.name == self.name or target.problem() is not None:
            return
        self._receive(target, now, effects, sender)  # carries a suspicion on to the target
        held = self._records.get(sender)
        origin_address = held.member.address if held is not None else ""
        timeout = self.awareness.scale(self.config.probe_timeout_s)
        seq = self._prober.relay(sender, origin_address, req.seq, target.name, now + timeout)
        record = self._records.get(target.name)
        known = record.member if record is not None else target
        effects.append(Send(target.name, known.address, Ping(seq, known)))

    def _reconnect(self, now: float, effects: list[Effect]) -> None:
        """Try one failed member and the seeds that are not live members; reap tombstones."""
        horizon = now - self.config.tombstone_retention_s
        while self._tombstones:
            name, since = next(iter(self._tombstones.items()))
            if since > horizon:
                break
            del self._tombstones[name]
            if self._records.pop(name).member.status is Status.FAILED:
                self._failed.discard(name)
            self._notified.pop(name, None)
            self._returned.pop(name, None)
            self._suspicions.pop(name, None)
            self.counters.tombstones_reaped += 1
        failed = len(self._failed)
        # Serf's rule: try with probability failed / live, so that the whole cluster tries
        # each failed member about once per period instead of every node every period.
        if failed and self._rng.random() * max(1, len(self._live)) < failed:
            effects.extend(self._full_state(self._failed.pick(self._rng), reply_wanted=True))
        missing = [seed for seed, holders in self._at_seed.items() if not holders]
        if missing and self._synced:
            effects.append(DialSeed(missing[self._rng.randrange(len(missing))]))

    # ------------------------------------------------------------------ dissemination

    def _gossip_round(self) -> list[Effect]:
        if not self._broadcasts.queued:
            return []
        if not len(self._live):
            # Nobody to tell: the round still counts, so that what this node queued
            # while cut off expires rather than reaching the cluster when it is back
            # (full-state exchanges carry what still matters).
            self._broadcasts.take(self.config.max_updates_per_message,
                                  retransmit_limit(self.config.retransmit_mult, 1))
            return []
        targets = self._live.sample(self._rng, self.config.gossip_fanout)
        limit = retransmit_limit(self.config.retransmit_mult, len(self._live) + 1)
        updates = self._broadcasts.take(self.config.max_updates_per_message, limit)
        message = Gossip(updates)
        self.counters.gossip_messages_sent += len(targets)
        return [Send(t, self._records[t].member.address, message) for t in targets]

    def _full_state(self, peer: str, *, reply_wanted: bool, address: str = "") -> list[Effect]:
        """Our whole list for ``peer``, in chunks; the last chunk may ask for a reply."""
        record = self._records.get(peer)
        if record is not None:
            address = record.member.address
        members = list(map(_member_of, self._records.values()))
        size = self.config.max_members_per_sync_message
        chunks = [tuple(members[i : i + size]) for i in range(0, len(members), size)]
        if reply_wanted:
            self.counters.sync_exchanges_started += 1
        return [
            Send(
                peer,
                address,
                StateSync(
                    chunk,
                    reply_wanted=reply_wanted and i == len(chunks) - 1,
                    last=i == len(chunks) - 1,
                ),
            )
            for i, chunk in enumerate(chunks)
        ]


def _next_due(due: float, interval: float, now: float) -> float:
    """The next deadline of a periodic action that was due at ``due``: on the same grid
    (no drift from late ticks), but never in the past (beats missed while paused are
    skipped, not run in a burst)."""
    following = due + interval
    return following if following > now else now + interval


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
