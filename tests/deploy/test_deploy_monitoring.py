"""deploy/monitoring: every metric the Grafana dashboard and the Prometheus rules use is
one a live node exports on /metrics (in-process node with the KV store, after a put and a
get), and promtool accepts the rules and passes their unit tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dynago.launch import http_json
from dynago.node import Node

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
DASHBOARD = MONITORING / "dynago-dashboard.json"
RULES = MONITORING / "rules.yaml"
METRIC = re.compile(r"\bdynago_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            queries.append(query["query"])
    return queries


def rule_queries() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def used_metrics(queries: list[str]) -> set[str]:
    return {name for query in queries for name in METRIC.findall(query)}


@pytest.fixture
def node(kv_nodes: Callable[..., Node]) -> Node:
    started: Node = kv_nodes("a")
    return started


def exported(node: Node) -> tuple[set[str], set[str]]:
    """(family names with their ``_total`` as exposed, histogram family names) of one
    /metrics scrape."""
    with urllib.request.urlopen(f"http://{node.http_address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    names, histograms = set(), set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        names.add(family.name)
        if family.type == "histogram":
            histograms.add(family.name)
    return names, histograms


def test_monitoring_uses_only_metrics_a_live_node_exports(node: Node) -> None:
    http = node.http_address
    assert http is not None
    http_json(http, "/kvstore", method="POST", body={"Key": "k", "Value": "v"})
    assert http_json(http, "/kvstore/k")["value"] == "v"
    names, histograms = exported(node)

    for source, queries in (("dashboard", dashboard_queries()), ("rules", rule_queries())):
        used = used_metrics(queries)
        assert len(used) >= 5, source
        for name in used:
            base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES
                         if name.endswith(s) and name.removesuffix(s) in histograms), None)
            assert base is not None or name in names, f"{source} uses {name}: not exported"
            if base is None:
                assert name not in histograms, f"{source} uses histogram {name} bare"


def test_monitoring_dashboard_has_the_panels_operators_need() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(dashboard_queries())
    for needed in ("dynago_members", "dynago_suspicions_raised_total",
                   "dynago_failures_declared_total", "dynago_kv_requests_total",
                   "dynago_kv_store_keys", "dynago_kv_store_size_bytes",
                   "dynago_kv_store_fsyncs_total"):
        assert needed in exprs, needed
    for quantile in ("0.5", "0.99"):
        assert (f"histogram_quantile({quantile}, sum by (le, op) "
                "(rate(dynago_kv_request_duration_seconds_bucket") in exprs
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])


def test_monitoring_rules_name_the_alerts() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"DynagoMemberFailed", "DynagoFalseSuspicionRateHigh",
            "DynagoKvUnavailableRateHigh", "DynagoKvLatencyP99High",
            "DynagoStoreErrors"} <= alerts


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; CI installs it)")
    return promtool


def test_monitoring_rules_pass_promtool_check() -> None:
    done = subprocess.run([_promtool(), "check", "rules", str(RULES)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout + done.stderr


def test_monitoring_rules_pass_their_promtool_unit_tests() -> None:
    """rules.test.yaml: each alert fires on the series it is for, not on healthy ones."""
    done = subprocess.run([_promtool(), "test", "rules", "rules.test.yaml"], cwd=MONITORING,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


