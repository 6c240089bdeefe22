"""Push-pull: joining through seeds, full-list exchanges and anti-entropy.

Rules:

* Every ``anti_entropy_interval_s`` (scaled up with the cluster size) the node exchanges
  its full list with one random live member (push-pull), in chunks of
  ``max_members_per_sync_message`` records.
* A node joins by push-pull: when a stream to a member it does not know yet opens (or it
  has not joined yet), it sends its full list and asks for the other's. It has joined
  once an exchange with one of its seeds completed; until then it retries its seeds with
  capped backoff. (An exchange with a node that dialled *us* does not count: in a chain
  B→A, C→B, B may hear from C before it reached A, and must still go on to A.)
* A node may instead start from a converged view (``adopt_view``), as if that exchange
  had just completed, with no events and nothing to gossip.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

from dynago.core.broadcast import BroadcastQueue, anti_entropy_scale
from dynago.core.member import Member
from dynago.core.messages import DialSeed, Effect, Send, StateSync
from dynago.core.rules.receive import receive_all
from dynago.core.view import ConvergedView

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore

_member_of = attrgetter("member")


def full_state(
    core: MembershipCore, peer: str, *, reply_wanted: bool, address: str = ""
) -> list[Effect]:
    """Our whole list for ``peer``, in chunks; the last chunk may ask for a reply."""
    record = core._records.get(peer)
    if record is not None:
        address = record.member.address
    members = list(map(_member_of, core._records.values()))
    size = core.config.max_members_per_sync_message
    chunks = [tuple(members[i : i + size]) for i in range(0, len(members), size)]
    if reply_wanted:
        core.counters.sync_exchanges_started += 1
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


def on_state_sync(
    core: MembershipCore, sender: str, message: StateSync, now: float, effects: list[Effect]
) -> None:
    """A chunk of ``sender``'s full list: merge it; the last chunk completes a join with
    a seed and may ask for our list back."""
    receive_all(core, message.members, now, effects, sender, full_state=True)
    if message.last:
        if sender in core._seed_peers:
            core._synced = True
        if message.reply_wanted:
            effects.extend(full_state(core, sender, reply_wanted=False))


def stream_opened(
    core: MembershipCore, peer: str, address: str, now: float, *, via_seed: bool = False
) -> list[Effect]:
    """A stream to member ``peer`` (reached at ``address``) opened, in either direction;
    ``via_seed`` if this node dialled it at one of its seed addresses.

    If we do not know ``peer`` yet, or have not joined yet, push our full list and ask
    for theirs: this is how a node joins, and how a restarted node learns of its
    previous life in time to outbid it.
    """
    core._due = None  # whatever follows may move the next deadline
    if peer == core.name:
        return []
    if via_seed:
        core._seed_peers.add(peer)
    elif peer in core._records and core._synced:
        return []
    return full_state(core, peer, reply_wanted=True, address=address)


def retry_seeds(core: MembershipCore, now: float, effects: list[Effect]) -> None:
    """Not joined yet: dial every seed, then wait a capped, jittered, doubling backoff."""
    effects.extend(DialSeed(address) for address in core._seeds)
    core._next_seed_attempt = now + core._seed_backoff * (0.5 + core._rng.random() / 2)
    core._seed_backoff = min(core._seed_backoff * 2, core.config.reconnect_max_backoff_s)


def anti_entropy(core: MembershipCore, effects: list[Effect]) -> None:
    """One push-pull with a random live member (if any)."""
    if core._live:
        effects.extend(full_state(core, core._live.pick(core._rng), reply_wanted=True))


def anti_entropy_interval(core: MembershipCore) -> float:
    """``anti_entropy_interval_s``, scaled up with the cluster size."""
    return core.config.anti_entropy_interval_s * anti_entropy_scale(len(core._live) + 1)


def track_seed_address(core: MembershipCore, previous: Member | None, member: Member) -> None:
    """Keep ``_at_seed`` (seed address -> live members held there) in step with a change."""
    if previous is not None and previous.status.is_live:
        holders = core._at_seed.get(previous.address)
        if holders is not None:
            holders.discard(previous.name)
    if member.status.is_live:
        holders = core._at_seed.get(member.address)
        if holders is not None:
            holders.add(member.name)


def adopt_view(core: MembershipCore, view: ConvergedView, now: float) -> None:
    """Start from the converged member list ``view``, as if a full exchange with a seed
    had just completed, with no events and nothing to gossip (everyone holds it).

    Only for a node that has not exchanged anything yet; ``view`` must hold this
    node's own record exactly as the node holds it. Raises ValueError otherwise.
    """
    core._due = None  # whatever follows may move the next deadline
    held = view.records.get(core.name)
    if held is None or held.member != core.local_member:
        raise ValueError(f"the view does not hold {core.name!r} as this node holds itself")
    if len(core._records) != 1 or len(core._broadcasts) > 1:
        raise ValueError("only a node that has not exchanged anything can adopt a view")
    if len(view) > core.config.max_members:
        raise ValueError(f"the view exceeds {core.config.max_members} members")
    core._records = view.records.copy()
    core._live = view.live_without(core.name)
    core._failed = view.failed.copy()
    core._tombstones = view.tombstones.copy()
    for seed, holders in core._at_seed.items():
        holders.update(view.by_address.get(seed, ()))
    core._broadcasts = BroadcastQueue()
    core._synced = True
    core._now = max(core._now, now)
    core._next_anti_entropy = now + anti_entropy_interval(core) * (0.5 + core._rng.random())
