"""What a healed node brings back: its stale verdicts must not fail members that everyone
else can reach.

A node cut off from the others (here: every packet silently dropped) holds all of them
failed after a few seconds. When its packets flow again, the others exchange full state
with it (every node tries a failed member every ``reconnect_interval_s``). Its list then
says "n1 failed, incarnation 0" while n1 is alive at incarnation 0 everywhere else — and
by the precedence of records FAILED beats ALIVE at the same incarnation, so the others
hold n1 failed until n1 hears of it and refutes (a few hundred ms later) — unless, as
the core does, a FAILED record in a peer's full list about a member held live counts
only as a suspicion, and what the cut-off node queued for gossip while it had no one to
send to expires. The scenario holds the blackhole until both sides have their verdicts,
then lifts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from chaos_nodes import ChaosCluster, longest_false_failure

pytestmark = pytest.mark.chaos

DETECT_TIMEOUT_S = 30.0
"""Deadline for the cut-off node and the others to hold each other failed; the cut-off
node's own probing slows down (Lifeguard local health) and takes ~10 s."""

RECOVER_TIMEOUT_S = 30.0

def test_chaos_heal_fails_no_member_that_stayed_reachable(
    chaos_cluster: Callable[..., ChaosCluster], scenario: Callable[..., Any]
) -> None:
    record = scenario("heal after isolation", "the members that stayed connected are never "
                      "held failed by one another, also not after the heal", 5)
    cluster = chaos_cluster(5)
    nodes = cluster.form(5)
    victim, rest = nodes[4], nodes[:4]

    cut_at = time.time()
    cluster.net.blackhole(victim.host)
    cluster.wait(lambda: cluster.all_hold(rest, victim, "failed")
                 and all(cluster.view(victim)[n.name] == "failed" for n in rest),
                 f"{victim.name} and the others to hold each other failed", DETECT_TIMEOUT_S)
    healed_at = time.time()
    cluster.net.heal(victim.host)
    cluster.wait(lambda: cluster.all_alive(nodes, nodes), "all five alive everywhere",
                 RECOVER_TIMEOUT_S)

    events = cluster.events(cut_at)
    names = {n.name for n in rest}
    wrong = [e for e in events if e.observer in names and e.member in names
             and e.status == "failed"]
    record["false_failures_after_heal"] = sum(e.at > healed_at for e in wrong)
    record["false_failures"] = len(wrong)
    record["false_failure_longest_s"] = longest_false_failure(
        events, lambda e: not (e.observer in names and e.member in names))
    record["false_suspicions"] = sum(e.observer in names and e.member in names
                                     and e.status == "suspect" for e in events)
    assert not wrong, cluster.report(
        "members that stayed connected held one another failed: " + ", ".join(
            f"{e.observer} failed {e.member} {e.at - healed_at:+.2f} s after the heal"
            for e in wrong))
