"""Smoke run of python -m bench.ring_balance on a small sample: it prints its table and
writes its JSON report. No figure is compared with a threshold (tests/kv does that)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_ring_balance_prints_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "ring.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.ring_balance", "--keys", "2000", "--min-nodes", "3",
         "--max-nodes", "6", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "| nodes |" in done.stdout and "\n| 6 |" in done.stdout
    report = json.loads(out.read_text())
    assert [row["nodes"] for row in report["sizes"]] == [3, 4, 5, 6]
    assert "join" not in report["sizes"][0]
    assert {"moved_fraction", "ideal_fraction", "preference_list_changed_fraction"} <= set(
        report["sizes"][1]["join"])
    assert report["preference_list_for_us"] > 0
