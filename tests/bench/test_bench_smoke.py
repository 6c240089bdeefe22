"""Smoke run of the real-process benchmarks (python -m bench.suite, python -m bench.scale)
with 5 nodes and one run: the reports are produced and well-formed. No timing is compared
with a threshold: figures are for the benchmark report, not for pass or fail.

The plot check needs matplotlib, an optional extra (``.[bench]``, included in ``.[dev]``
that CI installs); with ``.[test]`` alone it is skipped.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.cluster import LogWatcher
from bench.report import FIGURES

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
SUITE_NODES = 5
RUN_TIMEOUT_S = 120.0
"""Deadline of one benchmark command (it takes ~15 s on a quiet 2-core machine)."""


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    result = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, text=True,
                            capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    assert result.returncode == 0, f"{args} exited {result.returncode}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("suite")
    _run(["bench.suite", "--nodes", str(SUITE_NODES), "--runs", "1", "--preset", "local",
          "--idle-s", "2", "--out-dir", str(out)])
    return out


def _is_spread(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"median", "min", "max"}
            and all(isinstance(v, int | float) and math.isfinite(v) and v >= 0
                    for v in value.values())
            and value["min"] <= value["median"] <= value["max"])


def test_suite_json_has_every_figure_for_every_run(suite_dir: Path) -> None:
    report = json.loads((suite_dir / "suite.json").read_text())
    assert report["preset"] == "local" and report["runs_per_size"] == 1
    assert len(report["runs"]) == 1
    run = report["runs"][0]
    assert run["nodes"] == SUITE_NODES
    for key, _label, _unit in FIGURES:
        value = run[key]
        if isinstance(value, list):  # per-node figures: one value per node
            assert len(value) == SUITE_NODES, (key, value)
            assert all(isinstance(v, int | float) and v >= 0 for v in value), (key, value)
        else:
            assert isinstance(value, int | float) and value >= 0, (key, value)
    assert run["false_suspicions"] >= 0 and run["false_failures"] >= 0
    row = report["summary"][str(SUITE_NODES)]
    for key, _label, _unit in FIGURES:
        assert _is_spread(row[key]), (key, row[key])


def test_suite_markdown_table_has_a_row_per_size(suite_dir: Path) -> None:
    lines = (suite_dir / "suite.md").read_text().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 3, table  # header, separator, N = 5
    columns = table[0].count("|")
    assert all(line.count("|") == columns for line in table), table
    assert table[2].startswith(f"| {SUITE_NODES} |")
    assert "median (min–max) of 1 run" in "\n".join(lines).lower()


def test_suite_plots_are_png_files(suite_dir: Path) -> None:
    pytest.importorskip("matplotlib", reason="plots need the optional extra .[bench]")
    for name in [key for key, _label, _unit in FIGURES] + ["suite"]:
        path = suite_dir / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_scale_probe_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    _run(["bench.scale", "--nodes", "3", "--seconds", "2", "--sample-s", "1",
          "--preset", "local", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["nodes"] == 3 and report["all_list_all_at_end"] is True
    assert report["samples"] and all(s["t_s"] > 0 for s in report["samples"])
    for key in ("rss_mb", "threads", "fds", "cpu_percent_per_node"):
        assert _is_spread(report[key]), (key, report[key])
    assert report["false_suspicions"] >= 0 and report["false_failures"] >= 0


def test_log_watcher_keeps_an_unfinished_line_for_the_next_read(tmp_path: Path) -> None:
    """A node may be half-way through writing a line when the benchmark reads its log."""
    log = tmp_path / "n.log"
    line = ("2026-01-02T03:04:05.678 INFO dynago.actors.membership: member n1 "
            "(127.0.0.1:7001) is now suspect, incarnation 0 [suspected]\n")
    log.write_text(line[:40])
    watcher = LogWatcher(log)
    assert watcher.poll() == []
    with open(log, "a") as more:
        more.write(line[40:] + "some other line\n")
    events = watcher.poll()
    assert [(e.member, e.status) for e in events] == [("n1", "suspect")]
