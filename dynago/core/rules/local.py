"""What the local user (operator, API) hands in: add, merge, remove, leave, tags.

Rules:

* Local input is checked first: an invalid record, a full map, removing oneself or an
  unknown member raises (ValueError / KeyError) and changes nothing; a peer's bad
  records are dropped and counted instead (rules.receive).
* ``remove`` declares a live member FAILED at its current incarnation with no origin,
  like Serf's force-leave: a verdict that always stands, unless the member, in fact
  alive, refutes it.
* A leaving node marks itself LEFT and tells every live member at once.
* New tags raise this node's incarnation, as a refutation does, so they win everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from dynago.core.member import Member, Status
from dynago.core.messages import Effect, Gossip, Send
from dynago.core.rules.receive import receive
from dynago.core.tags import Tags

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore


def add(core: MembershipCore, member: Member, now: float) -> list[Effect]:
    """Merge one record handed in locally. Raises ValueError if it is invalid or the
    map is full."""
    core._due = None  # whatever follows may move the next deadline
    problem = member.problem()
    if problem:
        raise ValueError(problem)
    max_members = core.config.max_members
    if member.name not in core._records and len(core._records) >= max_members:
        raise ValueError(f"the member map is full ({max_members} members)")
    effects: list[Effect] = []
    receive(core, member, now, effects)
    return effects


def merge(core: MembershipCore, members: Iterable[Member], now: float) -> list[Effect]:
    """Merge records handed in locally; all-or-nothing: raises if any is invalid."""
    core._due = None  # whatever follows may move the next deadline
    batch = list(members)
    for member in batch:
        problem = member.problem()
        if problem:
            raise ValueError(problem)
    new = {m.name for m in batch if m.name not in core._records}
    if len(core._records) + len(new) > core.config.max_members:
        raise ValueError(f"the member map would exceed {core.config.max_members} members")
    effects: list[Effect] = []
    for member in batch:
        receive(core, member, now, effects)
    return effects


def remove(core: MembershipCore, name: str, now: float) -> list[Effect]:
    """Declare member ``name`` failed at its current incarnation, like Serf's
    force-leave. If it is in fact alive it refutes and comes back."""
    core._due = None  # whatever follows may move the next deadline
    if name == core.name:
        raise ValueError("a node cannot remove itself; use leave")
    record = core._records.get(name)
    if record is None:
        raise KeyError(f"no member named {name!r}")
    effects: list[Effect] = []
    if record.member.status.is_live:
        failed = Member(name, record.member.address, record.member.incarnation, Status.FAILED,
                        tags=record.member.tags)
        core._apply(failed, now, effects, "local")
    return effects


def leave(core: MembershipCore, now: float) -> list[Effect]:
    """This node leaves: mark itself LEFT and tell every live member at once."""
    core._due = None  # whatever follows may move the next deadline
    me = core._me
    effects: list[Effect] = []
    if core._leaving:
        return effects
    core._leaving = True
    left = Member(me.name, me.address, me.incarnation, Status.LEFT, tags=me.tags)
    core._apply(left, now, effects, "local")
    notice = Gossip((left,))
    for peer in core._live.names():
        effects.append(Send(peer, core._records[peer].member.address, notice))
    return effects


def set_tags(core: MembershipCore, tags: Tags, now: float) -> list[Effect]:
    """This node's tags become ``tags`` (canonical, see core.tags): it raises its
    incarnation, as a refutation does, so that its new record wins everywhere. Raises
    ValueError for invalid tags, while leaving, or at the maximum incarnation."""
    core._due = None  # whatever follows may move the next deadline
    me = core._me
    if tags == me.tags:
        return []
    updated = Member(me.name, me.address, me.incarnation + 1, Status.ALIVE, tags=tags)
    problem = updated.problem()
    if problem:
        raise ValueError(problem)
    if core._leaving:
        raise ValueError("this node is leaving; its tags no longer change")
    effects: list[Effect] = []
    core._apply(updated, now, effects, "local")
    return effects
