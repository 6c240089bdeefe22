"""A hung connection: every packet between one node and the others is silently dropped
(nftables drop inside its namespace — no RST, no ICMP) while its process keeps running,
so its TCP connections and gRPC streams stay open and simply go quiet.

Nothing at the transport level can notice that fast: TCP retransmits for many minutes
before it gives up, and an HTTP/2 keepalive ping is sent only every
``keepalive_interval_s`` (10 s) and then waits out gRPC's keepalive timeout (20 s by
default). The SWIM probes must declare the node failed well before the first keepalive
ping could even be sent; when the drop rules are removed it is alive everywhere again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from chaos_nodes import ChaosCluster, detection, false_alarms_around, last_change

from dynago.config import Config

pytestmark = pytest.mark.chaos

LAN = Config.lan()

TRANSPORT_BOUND_S = LAN.keepalive_interval_s
"""The earliest an HTTP/2 keepalive could send its first ping on a hung connection (and it
would then wait 20 s more for the answer); protocol detection must come before it."""

RECOVER_TIMEOUT_S = 30.0

VICTIM_VERDICT_TIMEOUT_S = 30.0
"""Deadline for the silenced node to fail the others: every probe of its own fails, so
Lifeguard stretches its probing (local health) and nobody confirms its suspicions (the
longest suspicion timeout, 6 s): it takes ~10 s."""


def test_chaos_hung_connection_is_detected_by_the_protocol(
    chaos_cluster: Callable[..., ChaosCluster], scenario: Callable[..., Any]
) -> None:
    record = scenario("hung connection (blackhole)", "failed everywhere by SWIM in less "
                      f"than {TRANSPORT_BOUND_S:.0f} s (before any keepalive ping); alive "
                      "again when the packets flow", 5)
    cluster = chaos_cluster(5)
    nodes = cluster.form(5)
    victim, rest = nodes[4], nodes[:4]

    hung_at = time.time()
    cluster.net.blackhole(victim.host)
    cluster.wait(lambda: cluster.all_hold(rest, victim, "failed"),
                 f"the others to mark the silent {victim.name} failed",
                 2 * TRANSPORT_BOUND_S)
    # The victim's own view (its admin API still answers the observer): the others are
    # silent to it as well.
    cluster.wait(lambda: all(cluster.view(victim)[n.name] == "failed" for n in rest),
                 f"{victim.name} to mark the others failed", VICTIM_VERDICT_TIMEOUT_S)
    assert victim.running(), "the victim's process must keep running"
    healed_at = time.time()
    cluster.net.heal(victim.host)
    cluster.wait(lambda: cluster.all_alive(nodes, nodes),
                 f"{victim.name} alive everywhere after the drop rules are removed",
                 RECOVER_TIMEOUT_S)
    changed = last_change(cluster.events(healed_at), healed_at, time.time())
    record["heal_s"] = changed if changed is not None else round(time.time() - healed_at, 3)

    events = cluster.events(hung_at)
    record.update(detection(events, [(n.name, victim.name) for n in rest], hung_at))
    record["detection_s"] = record.figures.pop("failed_everywhere_s")
    victim_side = detection(events, [(victim.name, n.name) for n in rest], hung_at)
    record["victim_failed_the_rest_s"] = victim_side["failed_everywhere_s"]
    record["transport_bound_s"] = TRANSPORT_BOUND_S
    record.update(false_alarms_around(
        events, lambda e: victim.name in (e.observer, e.member) and e.at <= healed_at,
        healed_at))
    assert record["detection_s"] is not None
    assert record["detection_s"] < TRANSPORT_BOUND_S, cluster.report(
        f"detection took {record['detection_s']} s: not from the protocol's probes")
    during = record["false_failures"] - record["false_failures_after_heal"]
    assert during == 0, cluster.report("a reachable member was failed during the hang")
