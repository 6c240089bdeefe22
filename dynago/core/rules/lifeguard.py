"""Suspicion (Lifeguard): where a SUSPECT member is declared FAILED.

Rules:

* A suspicion becomes FAILED after its Lifeguard timeout unless the member refutes
  (core.suspicion: the timeout starts at its maximum and shrinks towards its minimum
  with each independent confirmation, ``suspicion_mult`` and
  ``suspicion_max_timeout_mult`` scaled by log of the cluster size).
* A timer follows the record: a higher-incarnation suspicion restarts it, the same
  incarnation from another origin confirms it, any other status ends it.
* Besides this timeout, a member is FAILED here only by an operator's removal
  (rules.local.remove) or by a verdict gossiped by another node (rules.receive).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dynago.core.member import Member, Status
from dynago.core.messages import Effect
from dynago.core.suspicion import Suspicion, expected_confirmations, suspicion_bounds

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore


def track_suspicion(core: MembershipCore, member: Member, now: float) -> None:
    """Start, keep or end the Lifeguard timer of ``member`` as its record changes."""
    suspicions = core._suspicions
    if member.status is not Status.SUSPECT:
        suspicions.pop(member.name, None)
        return
    running = suspicions.get(member.name)
    if running is not None and running.incarnation >= member.incarnation:
        running.confirm(member.origin)
        return
    config = core.config
    size = len(core._live) + 1
    minimum, maximum = suspicion_bounds(
        config.suspicion_mult,
        config.suspicion_max_timeout_mult,
        config.probe_interval_s,
        size,
    )
    suspicion = Suspicion(
        member.incarnation, now, minimum, maximum,
        expected_confirmations(config.suspicion_mult, size),
    )
    suspicion.confirm(member.origin or "?")
    suspicions[member.name] = suspicion


def run_suspicion_deadlines(core: MembershipCore, now: float, effects: list[Effect]) -> None:
    """Every suspicion whose timeout ran out fails its member (at that incarnation)."""
    for name, suspicion in list(core._suspicions.items()):
        if now < suspicion.due:
            continue
        del core._suspicions[name]
        record = core._records.get(name)
        if record is None:
            continue
        member = record.member
        if member.status is Status.SUSPECT and member.incarnation == suspicion.incarnation:
            core.counters.failures_declared += 1
            failed = Member(name, member.address, member.incarnation, Status.FAILED,
                            core.name, member.tags)
            core._apply(failed, now, effects)
