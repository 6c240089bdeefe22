"""Taking in a record from outside: validate, admit, refute, downgrade stale verdicts, merge.

Rules:

* Records merge by precedence (core.member): commutative, associative, idempotent.
* Records that break the rules of core.member (from a peer) are dropped and counted;
  the same records handed in by the local user raise ValueError and change nothing
  (rules.local checks them first).
* Only a member raises its own incarnation. When it hears a record of itself that wins
  over its own (a suspicion, a failure, or its own previous life after a restart), it
  takes an incarnation above that record and gossips that it is alive (SWIM refutation).
* In a peer's full list (push-pull), a FAILED record of a member this node holds live
  counts only as a suspicion from the node that declared it (memberlist's rule): a node
  that was cut off brings back stale verdicts in the exchange that reconnects it, and
  they must not fail members the others can reach. A gossiped verdict is a suspicion
  too while its origin is held failed here or came back from failed lately (it may
  still be pushing out what it queued while cut off); other gossiped verdicts apply as
  they are; an operator's removal (no origin) always stands.
* A new member must fit under ``max_members`` and, from a peer, within that peer's
  allowance of new members (a token bucket).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dynago.core.broadcast import retransmit_limit
from dynago.core.member import MAX_INCARNATION, Member, Status
from dynago.core.messages import Effect

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore

_SUSPECT = Status.SUSPECT
_FAILED = Status.FAILED
"""(Looking a member up on the Status class costs as much as the test that uses it.)"""


def receive(
    core: MembershipCore, member: Member, now: float, effects: list[Effect],
    sender: str | None = None, *, full_state: bool = False,
) -> None:
    """Take in one record from outside: validate, refute if it is about us, merge.

    A record of a member not held yet must fit under ``max_members``, and, from a peer,
    within that peer's allowance of new members (a token bucket of
    ``new_members_burst`` refilled at ``new_members_per_peer_per_s``): a peer that
    makes up members by the million fills neither memory nor the map, and no real
    member is ever pushed out for them.
    """
    held = core._records.get(member.name)
    if held is not None and (held.member is member or held.member == member):
        return  # news we hold already (and checked when it came in)
    if member.problem() is not None:
        core.counters.invalid_records += 1
        return
    if member.name == core.name:
        consider_self(core, member, now, effects)
        return
    if member.name not in core._records and not admit_new(core, sender, now):
        return
    if (member.status is _FAILED and member.origin
            and held is not None and held.member.status.is_live
            and member.incarnation >= held.member.incarnation
            and (full_state or doubtful_origin(core, member.origin, now))):
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
        suspicion = core._suspicions.get(member.name)
        if (suspicion is not None and suspicion.incarnation == member.incarnation
                and suspicion.confirm(member.origin)):
            core._due = None  # Lifeguard: an independent confirmation shortens it
    if held is None or member.supersedes(held.member):
        # A node that has not joined yet learns the cluster from a seed's full list:
        # that news is news to it alone (the seed and its cluster hold it already),
        # and gossiping all N records on would cost every join O(N) messages.
        core._apply(member, now, effects, sender if sender is not None else "local",
                    gossip=core._synced or not full_state)


def receive_all(
    core: MembershipCore, members: tuple[Member, ...], now: float, effects: list[Effect],
    sender: str, *, full_state: bool,
) -> None:
    """``receive`` each of ``members`` from peer ``sender``."""
    records = core._records
    for member in members:
        held = records.get(member.name)
        if held is not None and held.member is member:
            continue  # the very record we hold (an in-process peer: the simulator)
        receive(core, member, now, effects, sender, full_state=full_state)


def doubtful_origin(core: MembershipCore, origin: str, now: float) -> bool:
    """Whether ``origin``'s verdicts may be stale: it is held failed (or left) here,
    or it came back from failed within twice the time a gossiped record lives
    (retransmit rounds x gossip interval), so whatever it queued while cut off may
    still be on its way, also relayed once."""
    record = core._records.get(origin)
    if record is None or origin == core.name:
        return False
    if not record.member.status.is_live:
        return True
    returned = core._returned.get(origin)
    if returned is None:
        return False
    window = 2.0 * core.config.gossip_interval_s * retransmit_limit(
        core.config.retransmit_mult, len(core._live) + 1)
    if now - returned <= window:
        return True
    del core._returned[origin]
    return False


def admit_new(core: MembershipCore, sender: str | None, now: float) -> bool:
    """Whether one more member may enter the map (see receive)."""
    config = core.config
    if len(core._records) >= config.max_members:
        core.counters.members_refused_cap += 1
        return False
    if sender is None or (not core._synced and sender in core._seed_peers):
        # The operator named the seed: a node that has not joined yet takes the
        # whole cluster from it (only the map's cap applies). Everyone else may
        # introduce members only at their allowance.
        return True
    allowances = core._allowances
    burst = float(config.new_members_burst)
    tokens, since = allowances.get(sender, (burst, now))
    tokens = min(burst, tokens + (now - since) * config.new_members_per_peer_per_s)
    if tokens < 1.0:
        allowances[sender] = (tokens, now)
        core.counters.members_refused_rate += 1
        return False
    if len(allowances) >= config.max_members and sender not in allowances:
        allowances.clear()  # bounded: forget allowances rather than grow
    allowances[sender] = (tokens - 1.0, now)
    return True


def consider_self(
    core: MembershipCore, member: Member, now: float, effects: list[Effect]
) -> None:
    """Someone says something about us. If it would win over our own record, outbid it."""
    me = core._me
    if not member.supersedes(me):
        return
    if member.incarnation >= MAX_INCARNATION:
        core.counters.unrefutable += 1
        return
    status = Status.LEFT if core._leaving else Status.ALIVE
    core.counters.refutations += 1
    if member.status in (Status.SUSPECT, Status.FAILED):
        core.awareness.apply(+1)  # Lifeguard: being suspected hints that we are slow
    core._apply(Member(me.name, me.address, member.incarnation + 1, status, tags=me.tags),
                now, effects)
