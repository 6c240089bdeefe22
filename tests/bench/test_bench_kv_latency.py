"""Smoke run of python -m bench.kv_latency, shrunk to one second per phase: a real 3-node
cluster answers puts and gets, and the table and the JSON report come out with every
figure. No timing is compared with a threshold: the figures are for the report."""

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


def test_bench_kv_latency_reports_puts_and_gets(tmp_path: Path) -> None:
    out = tmp_path / "kv.json"
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run(
        [sys.executable, "-m", "bench.kv_latency", "--seconds", "1", "--clients", "1",
         "--keys", "20", "--json", str(out)],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["nodes"] == 3
    assert [(p["op"], p["clients"]) for p in report["phases"]] == [("put", 1), ("get", 1)]
    for phase in report["phases"]:
        assert phase["ops"] > 0 and phase["ops_per_s"] > 0, phase
        assert 0 < phase["p50_ms"] <= phase["p99_ms"] <= phase["p999_ms"], phase
        assert len(phase["node_cpu_s"]) == 3 and phase["node_cpu_ms_per_op"] > 0, phase
    put = report["phases"][0]
    # Every acknowledged put was stored on at least W=2 replicas, each durably.
    assert put["store_deltas"]["kv_store_writes"] >= 2 * put["ops"], put
    assert put["store_deltas"]["kv_store_fsyncs"] > 0, put
    header = next(line for line in result.stdout.splitlines() if line.startswith("phase"))
    assert "ops/s" in header and "p99 ms" in header and "fsync/write" in header
    rows = [cells for cells in map(str.split, result.stdout.splitlines())
            if cells[:1] in (["put"], ["get"]) and cells[1].isdigit()]  # not progress lines
    assert [row[:2] for row in rows] == [["put", "1"], ["get", "1"]], result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["kv.json"]
