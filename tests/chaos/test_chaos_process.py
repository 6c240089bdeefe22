"""Faults of the node process itself, on a real network (namespaces, ``--preset lan``):

* a rolling restart of every node, one at a time (SIGTERM, start again on the same
  address): no member that is running is ever held failed — at most a transient
  suspicion;
* a pause (SIGSTOP) longer than the suspicion timeout, then SIGCONT: the others mark the
  node failed, and it is alive everywhere again once it resumes;
* a crash (kill -9), then a restart on the same address: failed everywhere, then alive
  everywhere with a new incarnation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from chaos_nodes import ChaosCluster, ChaosNode, detection, false_alarms, last_change

from dynago.config import Config

pytestmark = pytest.mark.chaos

LAN = Config.lan()

DETECT_TIMEOUT_S = 25.0
"""Deadline for every node to mark a stopped member failed (longest LAN suspicion for
N <= 6 is 4 x 1.5 s; probe rounds and gossip come on top)."""

RECOVER_TIMEOUT_S = 30.0
"""Deadline for a resumed or restarted node to be alive everywhere again."""


def min_suspicion_s(members: int) -> float:
    """Lifeguard's shortest suspicion timeout in the LAN preset (dynago/config.py)."""
    return LAN.suspicion_mult * max(1.0, math.log10(members)) * LAN.probe_interval_s


def _recovery_time(cluster: ChaosCluster, since: float) -> float:
    changed = last_change(cluster.events(since), since, time.time())
    return changed if changed is not None else round(time.time() - since, 3)


def test_chaos_rolling_restart_fails_no_live_member(
    chaos_cluster: Callable[..., ChaosCluster], scenario: Callable[..., Any]
) -> None:
    record = scenario("rolling restart", "no running member is ever held failed; at most "
                      "transient suspicions; all alive after each restart", 5)
    cluster = chaos_cluster(5)
    nodes = cluster.form(5)

    def others(node: ChaosNode) -> list[ChaosNode]:
        return [n for n in nodes if n is not node]

    began = time.time()
    restart_times = []
    for node in nodes:
        stopped_at = time.time()
        code = cluster.stop(node)
        assert code == 0, cluster.report(f"{node.name} exited {code} on SIGTERM")
        cluster.wait(lambda node=node: all(cluster.view(n)[node.name] == "left"
                                           for n in others(node)),
                     f"the others to hold {node.name} as left", DETECT_TIMEOUT_S)
        # Restart through a member that is running (the usual seed, unless it is this one).
        seed = nodes[1] if node is nodes[0] else nodes[0]
        cluster.start(node, seeds=[seed.address])
        cluster.wait(lambda: cluster.all_alive(nodes, nodes),
                     f"all five alive everywhere after restarting {node.name}",
                     RECOVER_TIMEOUT_S)
        restart_times.append(time.time() - stopped_at)

    events = cluster.events(began)
    # Every node that was down had announced its leave: no suspicion or failure is due.
    record.update(false_alarms(events, lambda event: False))
    record["restart_to_alive_everywhere_max_s"] = round(max(restart_times), 3)
    record["restart_to_alive_everywhere_median_s"] = round(sorted(restart_times)[2], 3)
    failed = [e for e in events if e.status == "failed"]
    assert not failed, cluster.report(f"members held failed during the rolling restart: "
                                      f"{failed}")


def test_chaos_pause_longer_than_suspicion_then_resume(
    chaos_cluster: Callable[..., ChaosCluster], scenario: Callable[..., Any]
) -> None:
    record = scenario("pause > suspicion timeout", "the paused node is failed everywhere; "
                      "after SIGCONT alive everywhere, itself included", 5)
    cluster = chaos_cluster(5)
    nodes = cluster.form(5)
    victim, rest = nodes[2], [n for n in nodes if n is not nodes[2]]

    paused_at = time.time()
    cluster.pause(victim)
    cluster.wait(lambda: cluster.all_hold(rest, victim, "failed"),
                 f"the others to mark the paused {victim.name} failed", DETECT_TIMEOUT_S)
    resumed_at = time.time()
    cluster.resume(victim)
    record["paused_s"] = round(resumed_at - paused_at, 3)
    cluster.wait(lambda: cluster.all_alive(nodes, nodes),
                 f"{victim.name} alive everywhere, itself included, after SIGCONT",
                 RECOVER_TIMEOUT_S)
    record["heal_s"] = _recovery_time(cluster, resumed_at)

    events = cluster.events(paused_at)
    record.update(detection(events, [(n.name, victim.name) for n in rest], paused_at))
    record["detection_s"] = record.figures.pop("failed_everywhere_s")
    record.update(false_alarms(events, lambda e: e.member == victim.name
                               and e.at <= resumed_at))
    assert record["paused_s"] > min_suspicion_s(len(nodes)), "the pause was too short"
    assert record["false_failures"] == 0, cluster.report("a running member was failed")


def test_chaos_kill_9_then_restart_on_the_same_address(
    chaos_cluster: Callable[..., ChaosCluster], scenario: Callable[..., Any]
) -> None:
    record = scenario("kill -9, restart", "the crashed node is failed everywhere; restarted "
                      "on its address it is alive everywhere", 5)
    cluster = chaos_cluster(5)
    nodes = cluster.form(5)
    victim, rest = nodes[3], [n for n in nodes if n is not nodes[3]]

    killed_at = time.time()
    cluster.kill(victim)
    cluster.wait(lambda: cluster.all_hold(rest, victim, "failed"),
                 f"the others to mark the killed {victim.name} failed", DETECT_TIMEOUT_S)
    restarted_at = time.time()
    cluster.start(victim)
    cluster.wait(lambda: cluster.all_alive(nodes, nodes),
                 f"the restarted {victim.name} alive everywhere", RECOVER_TIMEOUT_S)
    record["heal_s"] = _recovery_time(cluster, restarted_at)

    events = cluster.events(killed_at)
    record.update(detection(events, [(n.name, victim.name) for n in rest], killed_at))
    record["detection_s"] = record.figures.pop("failed_everywhere_s")
    record.update(false_alarms(events, lambda e: e.member == victim.name
                               and e.at <= restarted_at))
    assert record["false_failures"] == 0, cluster.report("a running member was failed")
