"""Healing: failed members told of their fate, reconnect attempts, tombstone reaping.

Rules:

* A message from a member this node holds as failed is answered with that record (at
  most once per protocol period), so a paused or cut-off member learns of its fate at
  once and refutes. (Not for left: a member that left says so itself, and a new life of
  it learns by joining.)
* Every ``reconnect_interval_s`` the node tries one failed member (with probability
  failed / live, so the cluster as a whole tries each failed member about once per
  period), and a seed that is not a live member, with a push-pull: partitions heal with
  no operator action.
* Failed and left records are reaped after ``tombstone_retention_s``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dynago.core.member import MemberRecord, Status
from dynago.core.messages import DialSeed, Effect, Gossip, Send
from dynago.core.rules.sync import full_state

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore


def notify_failed(
    core: MembershipCore, sender: str, held: MemberRecord, now: float, effects: list[Effect]
) -> None:
    """``sender``, held FAILED here, talks: tell it how we hold it, so that it can refute.

    At most once per protocol period: two nodes that hold each other failed must not
    bounce notices forever.
    """
    last = core._notified.get(sender)
    if last is None or now - last >= core.config.probe_interval_s:
        core._notified[sender] = now
        effects.append(Send(sender, held.member.address, Gossip((held.member,))))


def reconnect(core: MembershipCore, now: float, effects: list[Effect]) -> None:
    """Try one failed member and the seeds that are not live members; reap tombstones."""
    reap_tombstones(core, now)
    failed = len(core._failed)
    # Serf's rule: try with probability failed / live, so that the whole cluster tries
    # each failed member about once per period instead of every node every period.
    if failed and core._rng.random() * max(1, len(core._live)) < failed:
        effects.extend(full_state(core, core._failed.pick(core._rng), reply_wanted=True))
    missing = [seed for seed, holders in core._at_seed.items() if not holders]
    if missing and core._synced:
        effects.append(DialSeed(missing[core._rng.randrange(len(missing))]))


def reap_tombstones(core: MembershipCore, now: float) -> None:
    """Forget FAILED and LEFT records older than ``tombstone_retention_s``."""
    horizon = now - core.config.tombstone_retention_s
    tombstones = core._tombstones
    while tombstones:
        name, since = next(iter(tombstones.items()))
        if since > horizon:
            break
        del tombstones[name]
        if core._records.pop(name).member.status is Status.FAILED:
            core._failed.discard(name)
        core._notified.pop(name, None)
        core._returned.pop(name, None)
        core._suspicions.pop(name, None)
        core.counters.tombstones_reaped += 1
