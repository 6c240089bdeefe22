"""The KV store on the admin API of in-process nodes (MemoryNetwork, admin API on
127.0.0.1:0): ``/metrics`` read back with prometheus_client's parser after a put and a
get, and ``GET /v1/ring``."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dynago.kv.stats import LATENCY_BUCKETS_S, OPERATIONS, OUTCOMES
from dynago.launch import http_json, wait_until
from dynago.node import Node

TIMEOUT_S = 10.0


@pytest.fixture
def nodes(kv_nodes: Callable[..., Node]) -> Callable[..., Node]:
    return kv_nodes


def families(node: Node) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{node.http_address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_kv_metrics_count_a_put_and_a_get(nodes: Callable[..., Node]) -> None:
    a = nodes("a")
    http = a.http_address
    assert http is not None
    put = http_json(http, "/kvstore", method="POST", body={"Key": "k", "Value": "hello"})
    assert put["node"] == "a"
    assert http_json(http, "/kvstore/k")["value"] == "hello"

    found = families(a)
    requests = samples(found["dynago_kv_requests"])  # the parser drops the _total
    assert found["dynago_kv_requests"].type == "counter"
    assert len(requests) == len(OPERATIONS) * len(OUTCOMES)
    assert requests[("dynago_kv_requests_total", (("op", "put"), ("outcome", "ok")))] == 1
    assert requests[("dynago_kv_requests_total", (("op", "get"), ("outcome", "ok")))] == 1
    assert requests[("dynago_kv_requests_total", (("op", "get"), ("outcome", "not_found")))] \
        == 0

    latency = found["dynago_kv_request_duration_seconds"]
    assert latency.type == "histogram"
    values = samples(latency)
    for op, observed in (("get", 1), ("put", 1), ("delete", 0)):
        count = values[("dynago_kv_request_duration_seconds_count", (("op", op),))]
        total = values[("dynago_kv_request_duration_seconds_sum", (("op", op),))]
        buckets = [v for (name, labels), v in values.items()
                   if name.endswith("_bucket") and ("op", op) in labels]
        assert count == observed and (total > 0) == bool(observed)
        assert len(buckets) == len(LATENCY_BUCKETS_S) + 1
        assert values[("dynago_kv_request_duration_seconds_bucket",
                       (("le", "+Inf"), ("op", op)))] == observed

    def gauge(name: str) -> float:
        assert found[name].type == "gauge", name
        return float(found[name].samples[0].value)

    assert gauge("dynago_kv_store_keys") == 1
    assert found["dynago_kv_speculative_reads"].type == "counter"  # read_fanout "all": 0
    # Anti-entropy's trees hold the object once its commit reached them.
    wait_until(lambda: families(a)["dynago_kv_aae_keys"].samples[0].value == 1,
               timeout_s=TIMEOUT_S, interval_s=0.05, what="the object in the AAE trees")
    assert families(a)["dynago_kv_aae_tombstones"].samples[0].value == 0
    assert gauge("dynago_kv_store_size_bytes") > 0
    assert gauge("dynago_kv_ring_partitions") == 64
    assert gauge("dynago_kv_ring_partitions_owned") == 64  # alone: every partition
    assert gauge("dynago_kv_requests_in_flight") == 0
    assert found["dynago_kv_store_writes"].samples[0].value >= 1
    for name in ("dynago_kv_store_commits", "dynago_kv_store_fsyncs",
                 "dynago_kv_reads_with_siblings", "dynago_kv_forwarded_requests",
                 "dynago_kv_replica_messages_dropped"):
        assert found[name].type == "counter", name
    # /v1/stats keeps its flat counters.
    flat = http_json(http, "/v1/stats")
    assert (flat["kv_put_ok"], flat["kv_get_ok"], flat["kv_store_keys"]) == (1, 1, 1)


def test_kv_ring_view_shares_partitions_of_two_nodes(nodes: Callable[..., Node]) -> None:
    a = nodes("a")
    b = nodes("b", seed=a)
    http = a.http_address
    assert http is not None

    def two_members() -> dict[str, Any] | None:
        ring: dict[str, Any] = http_json(http, "/v1/ring")
        return ring if len(ring["members"]) == 2 else None

    ring = wait_until(two_members, timeout_s=TIMEOUT_S, what="a's ring to hold a and b")
    assert (ring["partitions"], ring["n_val"]) == (64, 3)
    assert [m["name"] for m in ring["members"]] == ["a", "b"]
    assert len(ring["owners"]) == 64 and set(ring["owners"]) == {"a", "b"}
    for member in ring["members"]:
        assert member["zone"] is None
        assert member["partitions"] == ring["owners"].count(member["name"]) == 32
        assert member["share"] == 0.5
    owned = wait_until(
        lambda: (v := families(b)["dynago_kv_ring_partitions_owned"].samples[0].value) == 32
        and v, timeout_s=TIMEOUT_S, what="b's metrics to show its 32 partitions")
    assert owned == 32


def test_metrics_pass_promtool_check(nodes: Callable[..., Node]) -> None:
    """``promtool check metrics`` (Debian's prometheus package; CI installs it) finds
    nothing wrong with a live node's /metrics, KV families included, after traffic."""
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    a = nodes("a")
    base = f"http://{a.http_address}"
    request = urllib.request.Request(f"{base}/buckets/b/keys/k", data=b"v", method="PUT",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        assert answer.status in (200, 204)
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
        text = answer.read()
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          timeout=30)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
