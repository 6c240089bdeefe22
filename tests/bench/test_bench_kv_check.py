"""Smoke run of python -m bench.kv_check, shrunk to 3 seconds without faults: a real
3-node cluster takes the unique workload's writes, every one is recorded, and the final
reads find every acknowledged key (zero lost, exit 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120.0
"""Deadline of the command (about 10 s on a quiet 2-core machine)."""


def test_bench_kv_check_unique_without_faults_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run(
        [sys.executable, "-m", "bench.kv_check", "--seconds", "3", "--clients", "2",
         "--workload", "unique", "--faults", "none", "--json", str(out)],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    writes = report["ops"]["write"]
    assert writes["invoked"] > 0 and writes["ok"] > 0, writes
    assert writes["invoked"] == len(report["history"])
    assert {op["client"] for op in report["history"]} == {0, 1}
    assert report["lost_count"] == 0 and report["unverified_count"] == 0, report["lost"]
    assert report["unexpected_count"] == 0, report["unexpected"]
    assert report["final"]["found"] >= writes["ok"]
    assert report["valid"] is True and report["faults_injected"] == []
    assert report["passed"] is True and report["row"]["lost"] == 0
    assert report["row"]["operations"] == writes["invoked"]
    assert report["figures"]["stale_left"]["checked"] > 0
    assert "PASS: nothing acknowledged lost, nothing unexpected" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "recovered" in line)
    assert [cell.strip() for cell in header.strip("|").split("|")][:6] == [
        "workload", "fault", "n", "ops", "acked", "lost"]
    assert [p.name for p in tmp_path.iterdir()] == ["check.json"]


def test_bench_kv_check_deletes_with_a_partition_passes_and_saves_the_table(
        tmp_path: Path) -> None:
    out = tmp_path / "table"
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run(
        [sys.executable, "-m", "bench.kv_check", "--seconds", "14", "--clients", "3",
         "--workload", "deletes", "--faults", "partition", "--keys", "3", "--out", str(out)],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    saved = json.loads(out.with_suffix(".json").read_text())
    (row,) = saved["rows"]
    assert (row["workload"], row["fault"], row["faults_injected"]) == (
        "deletes", "partition", 1)
    assert row["lost"] == 0 and row["unexpected"] == 0 and row["passed"] is True
    assert saved["faults"][0][0]["sides"][1] and row["converge_max_s"] is not None
    assert "| deletes  | partition |" in out.with_suffix(".md").read_text()
