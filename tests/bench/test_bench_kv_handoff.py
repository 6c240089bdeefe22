"""Smoke run of python -m bench.kv_handoff with a small key count: real node processes,
a join and an interrupted join, and the table comes out. No timing is compared with a
threshold: the figures are for the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 180.0
"""Deadline of the command (about 15 s on a quiet 2-core machine)."""


def test_bench_kv_handoff_prints_its_table() -> None:
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run([sys.executable, "-m", "bench.kv_handoff", "--keys", "300"],
                            cwd=ROOT, env=env, text=True, capture_output=True,
                            timeout=RUN_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].split("|")[1].strip() == "phase"
    phases = {line.split("|")[1].strip(): line.split("|") for line in lines[1:3]}
    assert set(phases) == {"join", "interrupted"}
    for cells in phases.values():
        assert int(cells[3]) > 0 and int(cells[6]) >= int(cells[3])  # share, keys sent
