"""Smoke run of python -m bench.storage_engines, shrunk to a couple of seconds: the table
and the JSON report come out, with every figure for both engines. No timing is compared
with a threshold: the figures are for the report, not for pass or fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import storage_engines


def test_bench_storage_engines_reports_every_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (("KEYS", 2000), ("GETS", 500), ("COMMIT_SECONDS", 0.2),
                        ("COMMIT_MAX", 20), ("ACTOR_SECONDS", 0.3), ("BURST", 50)):
        monkeypatch.setattr(storage_engines, name, value)
    out = tmp_path / "report.json"
    assert storage_engines.main(["--json", str(out), "--dir", str(tmp_path)]) == 0
    report = json.loads(out.read_text())
    assert set(report["engines"]) == {"lmdb", "sqlite"}
    for figures in report["engines"].values():
        assert set(figures["commit"]) == {"1", "16", "64", "256"}
        assert all(c["commits"] >= 1 and c["p50_ms"] <= c["p99_ms"]
                   for c in figures["commit"].values())
        assert figures["bytes_per_100k_keys"] > 2000 * 100
        assert figures["actor"]["writes"] >= figures["actor"]["commits"] >= 1
        assert figures["burst"]["writes"] == storage_engines.WRITERS * 50
    assert "bytes on disk per 100k keys" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # data dirs removed
