"""Smoke run of python -m bench.kv_scale with a few thousand keys: three real node
processes take every key once, the report holds each slice's sample and both get
phases, and every key reads back. No figure is compared with a threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240.0
"""Deadline of the command (about 15 s on a quiet 2-core machine)."""


def test_bench_kv_scale_loads_every_key_and_reports(tmp_path: Path) -> None:
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run(
        [sys.executable, "-m", "bench.kv_scale", "--keys", "2000", "--value-bytes", "1024",
         "--steps", "2", "--clients", "8", "--get-seconds", "1", "--get-clients", "4",
         "--out", str(tmp_path)],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S,
        check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gets after the load" in result.stdout
    report = json.loads((tmp_path / "kv_scale.json").read_text())
    steps = report["load"]["steps"]
    assert [s["keys"] for s in steps] == [1000, 2000]
    assert sum(s["wrote"] for s in steps) == 2000 and not any(s["errors"] for s in steps)
    # Each node holds its replicas on disk: at least the raw bytes of a third of N=3.
    for node in steps[-1]["nodes"]:
        assert node["disk_bytes"] >= report["raw_bytes_per_node"]
        assert node["rss_kib"] > 0
    assert {g["choice"] for g in report["gets"]} == {"zipfian", "uniform"}
    # Every key was written, so no read misses one.
    assert all(g["ops"] > 0 and g["errors"] == 0 for g in report["gets"])
