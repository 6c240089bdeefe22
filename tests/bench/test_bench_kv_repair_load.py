"""Smoke run of python -m bench.kv_repair_load with a small hint count: four real node
processes, one killed, hinted writes for it, its restart and the hand-back under
foreground load, and the report comes out. No figure is compared with a threshold."""

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
"""Deadline of the command (about 30 s on a quiet 2-core machine)."""


def test_bench_kv_repair_load_reports_quiet_and_rejoin(tmp_path: Path) -> None:
    out = tmp_path / "repair.json"
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run(
        [sys.executable, "-m", "bench.kv_repair_load", "--hints", "50", "--seconds", "1",
         "--clients", "4", "--settle-timeout", "60", "--json", str(out)],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S,
        check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line.split()[:3] == ["phase", "op", "ops/s"]
               for line in result.stdout.splitlines())
    report = json.loads(out.read_text())
    assert report["fill"]["reached"] and report["fill"]["hints_held"] >= 50
    rows = {(r["phase"], r["op"]): r for r in report["phases"]}
    assert set(rows) == {(p, op) for p in ("quiet", "rejoin", "quiet again")
                         for op in ("put", "get")}
    assert all(r["ops"] > 0 for r in rows.values())
    assert rows[("quiet", "put")]["errors"] == 0 and rows[("quiet", "get")]["errors"] == 0
    # Every hint went back to the restarted node before the last quiet phases.
    assert report["all_handed_back_s"] > 0
