"""Time: what ``tick`` runs when, the pause rule, and the next-deadline cache.

Rules:

* ``tick(now)`` runs what is due, in this order: seed retries (rules.sync), the gossip
  round (rules.gossip), anti-entropy (rules.sync), the next probe and probe deadlines
  (rules.probe), suspicion deadlines (rules.lifeguard), reconnects and reaping
  (rules.healing). A leaving node neither probes, suspects nor reconnects.
* Periodic actions keep to their grid (no drift from late ticks), and beats missed
  while paused are skipped, not run in a burst.
* Time this node did not run (a gap between ticks longer than the probe timeout) does
  not count against others: probe and suspicion deadlines move by the gap.
* ``next_deadline()`` is cached in ``core._due``; whatever changes what it is computed
  from drops the cache (every surface input except a Ping, Gossip or Nack that changes
  no record and confirms no suspicion, and arrives while nothing is overdue; see
  rules.inbound). tests/core/test_core_deadline_cache.py checks the cache against
  ``compute_next_deadline``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dynago.core.messages import Effect
from dynago.core.rules.gossip import gossip_due, gossip_round
from dynago.core.rules.healing import reconnect
from dynago.core.rules.lifeguard import run_suspicion_deadlines
from dynago.core.rules.probe import run_probe_deadlines, start_probe
from dynago.core.rules.sync import anti_entropy, anti_entropy_interval, retry_seeds

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore


def tick(core: MembershipCore, now: float) -> list[Effect]:
    """Advance time: run what is due — seed retries, the gossip round, anti-entropy,
    the next probe, probe and suspicion deadlines, reconnects and reaping."""
    effects: list[Effect] = []
    config = core.config
    late = now - core.next_deadline()
    core._due = None  # what runs below moves the next deadline
    core._last_tick = now
    if now > core._now:
        core._now = now
    if late > core._pause_threshold:
        # This node did not run for a while (paused, starved of CPU): it ticks long
        # after something was due. What it waited for may be sitting unread in its
        # mailbox: judge nobody on time it slept.
        postpone_deadlines(core, late - config.tick_interval_s)
    if not core._synced and core._seeds and now >= core._next_seed_attempt:
        retry_seeds(core, now, effects)
    if now >= core._next_gossip:
        core._next_gossip = next_due(core._next_gossip, config.gossip_interval_s, now)
        effects.extend(gossip_round(core))
    if now >= core._next_anti_entropy:
        core._next_anti_entropy = next_due(
            core._next_anti_entropy, anti_entropy_interval(core), now)
        anti_entropy(core, effects)
    if not core._leaving:
        prober = core._prober
        if now >= core._next_probe:
            core._next_probe = next_due(
                core._next_probe, core.awareness.scale(config.probe_interval_s), now)
            next_target = prober.next_target(core._live.names, core._is_live_peer)
            if next_target is not None:
                start_probe(core, next_target, now, effects)
        if prober.active or prober.relays:
            run_probe_deadlines(core, now, effects)
        if core._suspicions:
            run_suspicion_deadlines(core, now, effects)
        if now >= core._next_reconnect:
            core._next_reconnect = next_due(
                core._next_reconnect, config.reconnect_interval_s, now)
            reconnect(core, now, effects)
    return effects


def next_deadline(core: MembershipCore) -> float:
    """The earliest time at which ``tick`` has something to do.

    A driver that ticks only then (the simulator) sees exactly what one that ticks
    every ``tick_interval_s`` sees, up to that rounding. Gossip rounds with nothing to
    send are not deadlines; they keep to their grid (see ``gossip_due``).
    """
    due = core._due
    if due is not None:
        return due
    due = core._due = compute_next_deadline(core)
    return due


def compute_next_deadline(core: MembershipCore) -> float:
    """``next_deadline`` without the cache."""
    due = core._next_anti_entropy
    if core._broadcasts.queued:
        gossip = gossip_due(core)
        if gossip < due:
            due = gossip
    if not core._synced and core._seeds and core._next_seed_attempt < due:
        due = core._next_seed_attempt
    if core._leaving:
        return due  # a leaving node neither probes, suspects nor reconnects
    if core._next_probe < due:
        due = core._next_probe
    if core._next_reconnect < due:
        due = core._next_reconnect
    prober = core._prober
    if prober.active:
        for probe in prober.active.values():
            deadline = probe.ends_at if probe.indirect else probe.timeout_at
            if deadline < due:
                due = deadline
    if prober.relays:
        for relay in prober.relays.values():
            if relay.deadline < due:
                due = relay.deadline
    for suspicion in core._suspicions.values():
        if suspicion.due < due:
            due = suspicion.due
    return due


def postpone_deadlines(core: MembershipCore, delay: float) -> None:
    """Move every probe, relay and suspicion deadline ``delay`` seconds later."""
    for probe in core._prober.active.values():
        probe.timeout_at += delay
        probe.ends_at += delay
    for relay in core._prober.relays.values():
        relay.deadline += delay
    for suspicion in core._suspicions.values():
        suspicion.postpone(delay)


def next_due(due: float, interval: float, now: float) -> float:
    """The next deadline of a periodic action that was due at ``due``: on the same grid
    (no drift from late ticks), but never in the past (beats missed while paused are
    skipped, not run in a burst)."""
    following = due + interval
    return following if following > now else now + interval
