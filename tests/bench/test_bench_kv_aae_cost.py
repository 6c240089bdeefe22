"""Smoke run of python -m bench.kv_aae_cost, seconds long: both kinds of round run, puts
are acknowledged in each, and anti-entropy repairs only in the rounds it is on. No
throughput is compared with a threshold: the figures are for the report."""

from __future__ import annotations

import json
from pathlib import Path

from bench.kv_aae_cost import main


def test_bench_kv_aae_cost_reports_both_kinds_of_round(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    main(["--rounds", "1", "--seconds", "1", "--divergent", "100", "--clients", "2",
          "--json", str(out)])
    report = json.loads(out.read_text())
    rounds = {r["aae"]: r for r in report["rounds"]}
    assert set(rounds) == {True, False}
    assert all(r["puts"] > 0 for r in rounds.values())
    assert rounds[True]["exchanges"] > 0 and rounds[True]["keys_sent"] > 0
    assert rounds[False]["exchanges"] == 0 and rounds[False]["keys_sent"] == 0
    assert report["off_over_on"] > 0
