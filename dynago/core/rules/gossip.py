"""Dissemination: which changes go out in a gossip round, to whom, and for how long.

Rules:

* Every change that wins is queued for gossip (except what a node that has not joined
  yet learns from a full list: news to it alone; see rules.receive): ``gossip_fanout``
  random live members per round, each change for ``retransmit_mult * ceil(log10(N+1))``
  rounds, at most ``max_updates_per_message`` records per message.
* A node with no live member to gossip to still counts its rounds, so what it queued
  while cut off (verdicts on everyone) expires instead of being pushed out when it
  reconnects.
* Gossip rounds keep to the grid of ``gossip_interval_s``; a round with nothing to send
  is not a deadline.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dynago.core.broadcast import retransmit_limit
from dynago.core.messages import Effect, Gossip, Send

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore


def gossip_round(core: MembershipCore) -> list[Effect]:
    """One round: the queued changes for ``gossip_fanout`` random live members."""
    broadcasts = core._broadcasts
    if not broadcasts.queued:
        return []
    config = core.config
    live = core._live
    if not len(live):
        # Nobody to tell: the round still counts, so that what this node queued
        # while cut off expires rather than reaching the cluster when it is back
        # (full-state exchanges carry what still matters).
        broadcasts.take(config.max_updates_per_message,
                        retransmit_limit(config.retransmit_mult, 1))
        return []
    targets = live.sample(core._rng, config.gossip_fanout)
    limit = retransmit_limit(config.retransmit_mult, len(live) + 1)
    updates = broadcasts.take(config.max_updates_per_message, limit)
    message = Gossip(updates)
    core.counters.gossip_messages_sent += len(targets)
    records = core._records
    return [Send(t, records[t].member.address, message) for t in targets]


def gossip_due(core: MembershipCore) -> float:
    """The next gossip round on the grid of ``gossip_interval_s`` that is not before
    the latest input: a change that arrives while the queue was empty waits for the
    next round, as it would with a ticker."""
    due = core._next_gossip
    if due < core._now:
        interval = core.config.gossip_interval_s
        due += interval * math.ceil((core._now - due) / interval)
        core._next_gossip = due
    return due
