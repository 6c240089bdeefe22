"""``GET /metrics``: the Prometheus text format, read back with prometheus_client's own
parser, with values that follow what the cluster really does."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.process

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(node: Any) -> Samples:
    """Every sample of ``node``'s /metrics as ``(name, sorted labels) -> value``."""
    with urllib.request.urlopen(f"http://{node.http}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), -1.0)


def test_metrics_follow_probes_traffic_and_a_killed_member(cluster: Any) -> None:
    """A 3-node cluster: a's probe counter rises between scrapes, its messages are
    counted by kind and direction, dynago_members counts 3 alive; after c is killed
    (SIGKILL, no leave), a's dynago_members shows 2 alive and 1 failed."""
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    c = cluster("c", seeds=[a.address])
    addresses = [a.address, b.address, c.address]
    cluster.wait(lambda: cluster.all_list([a, b, c], addresses), "every node to list all 3")

    def alive_three() -> Samples | None:
        samples = scrape(a)
        return samples if value(samples, "dynago_members", status="alive") == 3 else None

    first = cluster.wait(alive_three, "a's metrics to count 3 alive members")
    assert value(first, "dynago_members", status="failed") == 0
    probes = value(first, "dynago_probes_total")
    assert probes >= 0, "dynago_probes_total is missing"
    cluster.wait(lambda: value(scrape(a), "dynago_probes_total") > probes,
                 "a's probe counter to rise")
    later = scrape(a)
    assert value(later, "dynago_messages_total", direction="out", kind="Ping") > 0
    assert value(later, "dynago_messages_total", direction="in", kind="Ack") > 0
    assert value(later, "dynago_message_bytes_total", direction="out", kind="Ping") > 0
    assert value(later, "dynago_acks_received_total") > 0
    assert value(later, "dynago_local_health_score") >= 0
    assert value(later, "dynago_membership_mailbox_depth") >= 0
    assert value(later, "dynago_streams_opened_total") >= 2

    c.kill()
    cluster.wait(
        lambda: (value(s := scrape(a), "dynago_members", status="failed") == 1
                 and value(s, "dynago_members", status="alive") == 2),
        "a's metrics to count c as failed", timeout_s=20)
    # Whoever suspected c and declared it failed (a, or b whose gossip a heard) counted it.
    finals = [scrape(a), scrape(b)]
    assert sum(value(f, "dynago_suspicions_raised_total") for f in finals) >= 1
    assert sum(value(f, "dynago_failures_declared_total") for f in finals) >= 1
