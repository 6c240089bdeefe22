"""Smoke run of python -m bench.kv (``--smoke``: workload A, 1 and 4 clients, 200 keys,
1 s per system per cell): every system whose binary is installed is started, loaded and
measured, and the table and the saved reports come out. A system whose binary is absent
is skipped with a line naming the package. No figure is compared with a threshold."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.kv_systems import BINARIES

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240.0
"""Deadline of the command (about 25 s on a quiet 2-core machine with all four systems)."""


def test_bench_kv_smoke_prints_and_saves_the_table(tmp_path: Path) -> None:
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run(
        [sys.executable, "-m", "bench.kv", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = {"dynago", "dynago-1"}
    for system, binary in BINARIES.items():
        if shutil.which(binary) is None:
            assert f"{system}: skipped, no {binary} on PATH" in result.stdout, result.stdout
        else:
            expected.add(system)
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("workload"))
    assert "ops/s" in lines[header] and "p99.9 ms" in lines[header]
    rows = [line.split() for line in lines[header + 1:] if line.split()[:1] == ["A"]]
    assert {(row[1], row[2]) for row in rows} == {
        (clients, system) for clients in ("1", "4") for system in expected}
    report = json.loads((tmp_path / "kv.json").read_text())
    assert {row["system"] for row in report["rows"]} == expected
    assert all(row["ops"] > 0 for row in report["rows"]), report["rows"]
    assert "| workload | clients | system |" in (tmp_path / "kv.md").read_text()
