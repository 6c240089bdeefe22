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
* Every change that wins is queued for gossip: ``gossip_fanout`` random live members per
  round, each change for ``retransmit_mult * ceil(log10(N+1))`` rounds, at most
  ``max_updates_per_message`` records per message.
* Every ``anti_entropy_interval_s`` the node exchanges its full list with one random live
  member (push-pull), in chunks of ``max_members_per_sync_message`` records.
* A node joins by push-pull: when a stream to a member it does not know yet opens (or it
  has not joined yet), it sends its full list and asks for the other's. It has joined
  once an exchange with one of its seeds completed; until then it retries its seeds with
  capped backoff. (An exchange with a node that dialled *us* does not count: in a chain
  B→A, C→B, B may hear from C before it reached A, and must still go on to A.)
* Records that break the rules of core.member (from a peer) are dropped and counted;
  the same records handed in by the local user raise ValueError and change nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from dynago.config import Config
from dynago.core.broadcast import BroadcastQueue, retransmit_limit
from dynago.core.member import MAX_INCARNATION, Member, MemberRecord, Status
from dynago.core.messages import (
    CoreMessage,
    DialSeed,
    Effect,
    EventKind,
    Gossip,
    MemberEvent,
    Publish,
    Send,
    StateSync,
)


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


class _LivePeers:
    """Names of live members other than this node, with O(1) add, remove and sampling."""

    __slots__ = ("_names", "_index")

    def __init__(self) -> None:
        self._names: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._names)

    def add(self, name: str) -> None:
        if name not in self._index:
            self._index[name] = len(self._names)
            self._names.append(name)

    def discard(self, name: str) -> None:
        index = self._index.pop(name, None)
        if index is None:
            return
        last = self._names.pop()
        if index < len(self._names):
            self._names[index] = last
            self._index[last] = index

    def sample(self, rng: random.Random, k: int) -> list[str]:
        if k >= len(self._names):
            picked = list(self._names)
            rng.shuffle(picked)
            return picked
        return rng.sample(self._names, k)

    def names(self) -> list[str]:
        return list(self._names)


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
    ) -> None:
        me = Member(name, address, 0, Status.ALIVE)
        problem = me.problem()
        if problem:
            raise ValueError(problem)
        self.name = name
        self.config = config
        self.counters = CoreCounters()
        self._rng = rng
        self._records: dict[str, MemberRecord] = {name: MemberRecord(me, now)}
        self._live = _LivePeers()
        self._broadcasts = BroadcastQueue()
        self._broadcasts.enqueue(me)
        self._leaving = False
        self._seeds = tuple(seeds)
        self._seed_peers: set[str] = set()
        self._synced = not self._seeds
        self._seed_backoff = config.reconnect_initial_backoff_s
        self._next_seed_attempt = now
        self._next_gossip = now + config.gossip_interval_s
        self._next_anti_entropy = now + config.anti_entropy_interval_s * (0.5 + rng.random())

    # ------------------------------------------------------------------ queries

    @property
    def local_member(self) -> Member:
        """This node's own current record."""
        return self._records[self.name].member

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

    # ------------------------------------------------------------------ inputs

    def tick(self, now: float) -> list[Effect]:
        """Advance time: run the gossip round, anti-entropy and seed retries that are due."""
        effects: list[Effect] = []
        if not self._synced and self._seeds and now >= self._next_seed_attempt:
            effects.extend(DialSeed(address) for address in self._seeds)
            self._next_seed_attempt = now + self._seed_backoff * (0.5 + self._rng.random() / 2)
            self._seed_backoff = min(self._seed_backoff * 2, self.config.reconnect_max_backoff_s)
        if now >= self._next_gossip:
            self._next_gossip = max(self._next_gossip + self.config.gossip_interval_s, now)
            effects.extend(self._gossip_round())
        if now >= self._next_anti_entropy:
            self._next_anti_entropy = now + self.config.anti_entropy_interval_s
            for target in self._live.sample(self._rng, 1):
                effects.extend(self._full_state(target, reply_wanted=True))
        return effects

    def handle(self, sender: str, message: CoreMessage, now: float) -> list[Effect]:
        """A message from member ``sender`` arrived."""
        effects: list[Effect] = []
        if isinstance(message, Gossip):
            for member in message.updates:
                self._receive(member, now, effects)
        elif isinstance(message, StateSync):
            for member in message.members:
                self._receive(member, now, effects)
            if message.last:
                if sender in self._seed_peers:
                    self._synced = True
                if message.reply_wanted:
                    effects.extend(self._full_state(sender, reply_wanted=False))
        else:  # pragma: no cover - the type union is closed
            raise TypeError(f"unknown core message {message!r}")
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
        if peer == self.name:
            return []
        if via_seed:
            self._seed_peers.add(peer)
        if peer in self._records and self._synced:
            return []
        return self._full_state(peer, reply_wanted=True, address=address)

    def add(self, member: Member, now: float) -> list[Effect]:
        """Merge one record handed in locally. Raises ValueError if it is invalid."""
        problem = member.problem()
        if problem:
            raise ValueError(problem)
        effects: list[Effect] = []
        self._receive(member, now, effects)
        return effects

    def merge(self, members: Iterable[Member], now: float) -> list[Effect]:
        """Merge records handed in locally; all-or-nothing: raises if any is invalid."""
        batch = list(members)
        for member in batch:
            problem = member.problem()
            if problem:
                raise ValueError(problem)
        effects: list[Effect] = []
        for member in batch:
            self._receive(member, now, effects)
        return effects

    def remove(self, name: str, now: float) -> list[Effect]:
        """Declare member ``name`` failed at its current incarnation, like Serf's
        force-leave. If it is in fact alive it refutes and comes back."""
        if name == self.name:
            raise ValueError("a node cannot remove itself; use leave")
        record = self._records.get(name)
        if record is None:
            raise KeyError(f"no member named {name!r}")
        effects: list[Effect] = []
        if record.member.status.is_live:
            failed = Member(name, record.member.address, record.member.incarnation, Status.FAILED)
            self._apply(failed, now, effects)
        return effects

    def leave(self, now: float) -> list[Effect]:
        """This node leaves: mark itself LEFT and tell every live member at once."""
        me = self.local_member
        effects: list[Effect] = []
        if self._leaving:
            return effects
        self._leaving = True
        left = Member(me.name, me.address, me.incarnation, Status.LEFT)
        self._apply(left, now, effects)
        notice = Gossip((left,))
        for peer in self._live.names():
            effects.append(Send(peer, self._records[peer].member.address, notice))
        return effects

    # ------------------------------------------------------------------ rules

    def _receive(self, member: Member, now: float, effects: list[Effect]) -> None:
        """Take in one record from outside: validate, refute if it is about us, merge."""
        if member.problem() is not None:
            self.counters.invalid_records += 1
            return
        if member.name == self.name:
            self._consider_self(member, now, effects)
            return
        held = self._records.get(member.name)
        if held is None or member.supersedes(held.member):
            self._apply(member, now, effects)

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
        self._apply(Member(me.name, me.address, member.incarnation + 1, status), now, effects)

    def _apply(self, member: Member, now: float, effects: list[Effect]) -> None:
        """The only transition of the member map: store, gossip and publish one record."""
        held = self._records.get(member.name)
        previous = held.member if held is not None else None
        self._records[member.name] = MemberRecord(member, now)
        if member.name != self.name:
            if member.status.is_live:
                self._live.add(member.name)
            else:
                self._live.discard(member.name)
        self._broadcasts.enqueue(member)
        kind = _event_kind(previous, member)
        if kind is not None:
            effects.append(Publish(MemberEvent(kind, member, previous)))

    def _gossip_round(self) -> list[Effect]:
        if not len(self._broadcasts) or not len(self._live):
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
        members = [record.member for record in self._records.values()]
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


def _event_kind(previous: Member | None, current: Member) -> EventKind | None:
    """Which event a change from ``previous`` to ``current`` is, if any."""
    was_live = previous is not None and previous.status.is_live
    if current.status is Status.ALIVE:
        return EventKind.CHANGED if was_live else EventKind.JOINED
    if current.status is Status.SUSPECT:
        return EventKind.SUSPECTED if was_live else EventKind.JOINED
    if previous is None or previous.status == current.status:
        return None  # a tombstone we never knew as live, or a dead record re-numbered
    return EventKind.FAILED if current.status is Status.FAILED else EventKind.LEFT
