"""The key-value store under faults on a real network (namespaces, nftables, ``--preset
lan``), judged by bench.kv_history's Jepsen rules: clients in the root namespace, one per
node, record every operation as ok, fail or info; after the heal every key is read at
``r=all`` from every node.

* A write workload (deletes and re-writes with the read's context) while the cluster is
  cut into two sides (one node | two) for 12 s, then healed: nothing acknowledged is
  lost, and no deleted or replaced value comes back.
* Fresh keys written while a node is killed -9 and restarted on its data dir: every
  acknowledged key is there with its value, and nothing unexpected.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from chaos_nodes import ChaosCluster, ChaosNode, get_json, hold_fault

from bench.kv_final import final_reads
from bench.kv_history import FAIL, INFO, OK, Verdict, check_deletes, check_unique, recovered
from bench.kv_run import WORKLOADS, Run

pytestmark = pytest.mark.chaos

CLIENTS = 3
PARTITION_S = 12.0
RECOVER_TIMEOUT_S = 30.0
AFTER_HEAL_S = 2.0
"""Clients keep going this long after every node holds every member alive again."""


def kv_ready(cluster: ChaosCluster, nodes: list[ChaosNode]) -> bool:
    """Every node holds every node alive and its ring holds all of them."""
    return cluster.all_alive(nodes, nodes) and all(
        int(get_json(n.http, "/v1/stats").get("kv_ring_members", 0)) == len(nodes)
        for n in nodes)


def start_clients(nodes: list[ChaosNode], workload: str) -> tuple[Run, list[threading.Thread]]:
    args = argparse.Namespace(seed=1, keys=4, clients=CLIENTS, workload=workload)
    run = Run(SimpleNamespace(members=nodes), args)  # type: ignore[arg-type]
    threads = [threading.Thread(target=WORKLOADS[workload], args=(run, c), daemon=True)
               for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    return run, threads


def stop_clients(run: Run, threads: list[threading.Thread]) -> None:
    run.stop.set()
    for thread in threads:
        thread.join(30.0)
    assert not any(t.is_alive() for t in threads), "a client did not stop"


def figures(verdict: Verdict) -> dict[str, Any]:
    writes = verdict.ops.get("write", {})
    return {"operations": sum(c["invoked"] for c in verdict.ops.values()),
            "writes_ok": writes.get("ok", 0), "writes_info": writes.get("info", 0),
            "lost": len(verdict.lost), "unexpected": len(verdict.unexpected),
            "recovered": recovered(verdict), "unverified": len(verdict.unverified)}


def assert_passed(cluster: ChaosCluster, verdict: Verdict) -> None:
    assert not verdict.lost, cluster.report(f"acknowledged writes lost: {verdict.lost[:5]}")
    assert not verdict.unexpected, cluster.report(
        f"unexpected values: {verdict.unexpected[:5]}")
    assert not verdict.unverified, cluster.report(
        f"keys not read back: {verdict.unverified[:5]}")


def test_chaos_kv_partition_then_heal_loses_and_resurrects_nothing(
    chaos_cluster: Callable[..., ChaosCluster], scenario: Callable[..., Any]
) -> None:
    record = scenario("kv: writes and deletes across a 1|2 partition",
                      "0 lost, 0 unexpected (no resurrected delete) after the heal", 3)
    cluster = chaos_cluster(3)
    nodes = cluster.form(3)
    cluster.wait(lambda: kv_ready(cluster, nodes), "every ring to hold 3 members", 20.0)
    run, threads = start_clients(nodes, "deletes")
    try:
        hold_fault(2.0)  # some history before the cut
        cluster.net.partition([nodes[0].host], [nodes[1].host, nodes[2].host])
        cut_at = time.monotonic()
        hold_fault(PARTITION_S)
        cluster.net.heal_all()
        healed = time.monotonic()
        record["partition_s"] = round(healed - cut_at, 2)
        cluster.wait(lambda: kv_ready(cluster, nodes), "all alive after the heal",
                     RECOVER_TIMEOUT_S)
        record["converge_after_heal_s"] = round(time.monotonic() - healed, 2)
        hold_fault(AFTER_HEAL_S)
    finally:
        stop_clients(run, threads)
    final, disagree = final_reads(run, [f"d{i}" for i in range(4)])
    verdict = check_deletes(run.history, final)
    record.update(figures(verdict))
    record["final_reads_disagree"] = disagree
    deletes = verdict.ops.get("delete", {})
    record["deletes_ok"] = deletes.get("ok", 0)
    assert verdict.ops["write"][OK] > 0 and deletes.get(OK, 0) > 0, verdict.ops
    assert_passed(cluster, verdict)


def test_chaos_kv_kill_and_restart_loses_no_acknowledged_write(
    chaos_cluster: Callable[..., ChaosCluster], scenario: Callable[..., Any]
) -> None:
    record = scenario("kv: fresh keys written while a node is killed -9 and restarted",
                      "every acknowledged key read back with its value; 0 unexpected", 3)
    cluster = chaos_cluster(3, data=True)
    nodes = cluster.form(3)
    cluster.wait(lambda: kv_ready(cluster, nodes), "every ring to hold 3 members", 20.0)
    victim = nodes[1]
    run, threads = start_clients(nodes, "unique")
    try:
        hold_fault(2.0)
        cluster.kill(victim)
        hold_fault(1.0)
        cluster.start(victim, seeds=[nodes[0].address])
        restarted = time.monotonic()
        cluster.wait(lambda: kv_ready(cluster, nodes), "all alive after the restart",
                     RECOVER_TIMEOUT_S)
        record["converge_after_restart_s"] = round(time.monotonic() - restarted, 2)
        hold_fault(AFTER_HEAL_S)
    finally:
        stop_clients(run, threads)
    keys = sorted({op.key for op in run.history if op.kind == "write"})
    final, disagree = final_reads(run, keys)
    verdict = check_unique(run.history, final)
    record.update(figures(verdict))
    record["final_reads_disagree"] = disagree
    outcomes = {op.outcome for op in run.history if op.node == 1}
    assert OK in outcomes and (FAIL in outcomes or INFO in outcomes), \
        "the killed node's client saw no failure: the kill came too late or not at all"
    assert_passed(cluster, verdict)
