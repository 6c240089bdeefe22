"""A peer's message: which rule takes it, and what every message tells us of its sender.

Rules:

* Ping, Ack, PingReq and Nack go to SWIM probing (rules.probe); Gossip and StateSync
  records to rules.receive (StateSync through rules.sync, which completes a join).
* A node that refuted something the sender told it answers the sender first.
* A sender held FAILED here is told so (rules.healing).
* The next-deadline cache (rules.schedule) is kept across Pings, Gossip and Nacks that
  change no record and confirm no suspicion: the hot path of a large cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dynago.core.member import Status
from dynago.core.messages import (
    Ack,
    CoreMessage,
    Effect,
    Gossip,
    Nack,
    Ping,
    PingReq,
    Send,
    StateSync,
)
from dynago.core.rules.healing import notify_failed
from dynago.core.rules.probe import on_ack, on_nack, on_ping, on_ping_req
from dynago.core.rules.receive import receive_all
from dynago.core.rules.sync import on_state_sync

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore

_FAILED = Status.FAILED


def handle(core: MembershipCore, sender: str, message: CoreMessage, now: float) -> list[Effect]:
    """A message from member ``sender`` arrived."""
    if now > core._now:
        core._now = now
        if core._due is not None and core._due < now:
            # Overdue (no tick yet): a later ``_now`` can move the gossip round on its
            # grid (see rules.gossip.gossip_due).
            core._due = None
    if not isinstance(message, (Ping, Gossip, Nack)):
        # Acks, relays and full lists change probes, relays or the join state. Pings,
        # gossip and nacks move a deadline only through a record that changes
        # (_apply) or a suspicion confirmed (rules.receive), which drop the cache there.
        core._due = None
    effects: list[Effect] = []
    incarnation_before = core._me.incarnation
    if isinstance(message, Ping):
        on_ping(core, sender, message, now, effects)
    elif isinstance(message, Ack):
        on_ack(core, sender, message, now, effects)
    elif isinstance(message, Gossip):
        receive_all(core, message.updates, now, effects, sender, full_state=False)
    elif isinstance(message, StateSync):
        on_state_sync(core, sender, message, now, effects)
    elif isinstance(message, PingReq):
        on_ping_req(core, sender, message, now, effects)
    elif isinstance(message, Nack):
        on_nack(core, message)
    else:  # pragma: no cover - the type union is closed
        raise TypeError(f"unknown core message {message!r}")
    held = core._records.get(sender)
    if sender == core.name or held is None:
        return effects
    me = core._me
    if me.incarnation != incarnation_before and not isinstance(message, Ping):
        # We refuted something the sender told us: it is the first who must know.
        effects.append(Send(sender, held.member.address, Gossip((me,))))
    if held.member.status is _FAILED:
        notify_failed(core, sender, held, now, effects)
    return effects
