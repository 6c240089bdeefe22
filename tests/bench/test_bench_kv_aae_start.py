"""Smoke run of python -m bench.kv_aae_start with a few thousand keys: a real node
started on a store written without anti-entropy's index builds it (every key in its
trees), and the next start reads it back without rebuilding. No figure is compared
with a threshold."""

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
"""Deadline of the command (about 3 s on a quiet 2-core machine)."""


def test_bench_kv_aae_start_rebuilds_once_then_reads_the_index(tmp_path: Path) -> None:
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run(
        [sys.executable, "-m", "bench.kv_aae_start", "--keys", "3000", "--out",
         str(tmp_path)],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S,
        check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data dir:" in result.stdout
    report = json.loads((tmp_path / "kv_aae_start.json").read_text())
    assert report["first"]["rebuilt"] == 1 and report["second"]["rebuilt"] == 0
    assert report["first"]["keys_in_trees"] == report["second"]["keys_in_trees"] == 3000
    assert report["first"]["records_dropped"] == report["second"]["records_dropped"] == 0
    assert report["disk_after_bytes"] > report["disk_before_bytes"]  # the records
