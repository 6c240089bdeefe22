"""The MembershipActor scheduling its own ticks (``self_tick``, as every Node does): it
ticks only on the grid points of ``tick_interval_s`` where the core has work (that it
suspects and fails on time either way is checked in test_actor_fd_probe.py).

Fixtures: conftest.py (``Config.local()``: probe period 0.3 s, probe timeout 0.1 s,
tick 0.05 s; a ManualClock moved only by the test).
"""

from __future__ import annotations

from typing import Any

import pykka

from dynago.actors import api
from dynago.config import Config
from dynago.core import Member
from dynago.core.messages import Ack, Ping

A = "127.0.0.1:7001"
TIMEOUT_S = 5.0
EPSILON_S = 1e-6


def step(scheduler: Any, config: Config, ref: pykka.ActorRef[Any]) -> None:
    """One tick interval of manual time; then wait until the actor handled what fired
    (an ask from this thread is answered after the tells this thread made)."""
    scheduler.advance(config.tick_interval_s)
    api.stats(ref, timeout_s=TIMEOUT_S)


def status_of(ref: pykka.ActorRef[Any], name: str) -> str:
    (view,) = [v for v in api.snapshot(ref, timeout_s=TIMEOUT_S) if v.name == name]
    return view.status


def test_self_ticking_node_probes_on_time_and_sleeps_in_between(
    start_membership, transport, scheduler, clock, config, eventually
):
    """An answered peer is pinged once per probe period, with no ticker outside the actor;
    and the actor's timers fire far less often than every tick interval (an idle node
    must not wake twenty times a second for nothing)."""
    membership = start_membership(self_tick=True)
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    remote = transport.accept("a", A)
    started_at = clock.monotonic()
    fired_before = scheduler.fired
    answered = 0
    seconds = 6.0
    steps = int(seconds / config.tick_interval_s)
    for _ in range(steps):
        step(scheduler, config, membership)
        for ping in remote.received_of(Ping)[answered:]:
            remote.send(Ack(ping.seq, Member("a", A)))
            answered += 1
        eventually(lambda n=answered: api.stats(membership, timeout_s=TIMEOUT_S)[
            "acks_received"] == n)
    elapsed = clock.monotonic() - started_at
    periods = elapsed / config.probe_interval_s
    assert periods - 2 <= answered <= periods + 1
    counters = api.stats(membership, timeout_s=TIMEOUT_S)
    assert (counters["probes_failed"], counters["suspicions_raised"]) == (0, 0)
    assert status_of(membership, "a") == "alive"
    ticks = scheduler.fired - fired_before
    assert ticks <= steps / 2, f"{ticks} ticks in {steps} tick intervals"
    assert all(d >= 0 for d in scheduler.delays)


def test_a_late_tick_is_not_put_off_by_messages_that_come_first(
    start_membership, transport, scheduler, clock, config
):
    """When the timer thread is late (a loaded machine), messages handled before the
    overdue tick must not move it later, or a busy node would never tick."""
    membership = start_membership(self_tick=True)
    api.add(membership, Member("a", A), timeout_s=TIMEOUT_S)
    transport.accept("a", A)
    clock.advance(2 * config.probe_interval_s)  # time passes; the timer has not fired
    for _ in range(5):
        api.stats(membership, timeout_s=TIMEOUT_S)  # messages handled before the tick
    assert api.stats(membership, timeout_s=TIMEOUT_S)["probes_sent"] == 0
    scheduler.run_due()
    assert api.stats(membership, timeout_s=TIMEOUT_S)["probes_sent"] == 1
