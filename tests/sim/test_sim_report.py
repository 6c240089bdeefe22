"""The simulator through its command line: the report's contract, determinism, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dynago.sim.report import without_wall_clock

TIMEOUT_S = 120


def sim(*args: str, hash_seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    return subprocess.run(
        [sys.executable, "-m", "dynago", "sim", *args],
        capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
    )


def sim_json(*args: str, hash_seed: str = "0") -> dict[str, Any]:
    done = sim(*args, "--json", hash_seed=hash_seed)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def check_timing(timing: dict[str, Any], nodes: int) -> None:
    assert timing["nodes"] == nodes
    seconds = timing["seconds"]
    assert 0 <= seconds["median"] <= seconds["p99"] <= seconds["max"]
    assert set(timing["probe_periods"]) == {"median", "p99", "max"}


def test_smoke_200_nodes_crash_report_is_complete() -> None:
    """The CI smoke run: 200 nodes, the documented report fields, sane values."""
    report = sim_json("--nodes", "200", "--duration", "30", "--seed", "3")
    assert report["scenario"] == "crash" and report["nodes"] == 200
    results = report["results"]
    assert results["survivors_not_knowing"] == 0
    assert results["first_suspicion_s"] > 0
    check_timing(results["failed_everywhere"], 199)
    assert "gossip_rounds" in results["failed_everywhere"]
    # A failure cannot be known everywhere before its first suspicion plus the minimum
    # suspicion timeout.
    minimum = report["reference"]["suspicion_timeout_s"]["min"]
    assert results["failed_everywhere"]["seconds"]["median"] > (
        results["first_suspicion_s"] + minimum)
    assert report["false_suspicions"] == 0 and report["false_failures"] == 0
    traffic = report["traffic"]
    assert traffic["messages_per_node_per_s"] > 0 and traffic["bytes_per_node_per_s"] > 0
    assert {"Ping", "Ack", "Gossip"} <= set(traffic["by_kind"])
    reference = report["reference"]
    assert reference["first_detection_probe_periods"] == pytest.approx(1.582, abs=1e-3)
    assert reference["dissemination_rounds"] > 0
    assert len(report["event_log_sha256"]) == 64 and report["events"] >= 2 * 199
    assert report["wall_s"] > 0


def test_same_seed_same_report_and_event_log(tmp_path: Path) -> None:
    """Same seed → identical report and identical event log, even across processes with
    different string hashing; another seed → another run."""
    args = ("--nodes", "60", "--duration", "20", "--seed", "11", "--scenario", "partition")
    first = sim_json(*args, "--event-log", str(tmp_path / "a.log"), hash_seed="1")
    second = sim_json(*args, "--event-log", str(tmp_path / "b.log"), hash_seed="2")
    assert without_wall_clock(first) == without_wall_clock(second)
    log_a = (tmp_path / "a.log").read_text()
    assert log_a and log_a == (tmp_path / "b.log").read_text()
    assert len(log_a.splitlines()) == first["events"]
    other = sim_json("--nodes", "60", "--duration", "20", "--seed", "12",
                     "--scenario", "partition")
    assert other["event_log_sha256"] != first["event_log_sha256"]


def test_text_report_shows_measurement_next_to_reference() -> None:
    done = sim("--nodes", "40", "--duration", "20", "--scenario", "leave")
    assert done.returncode == 0, done.stderr
    assert "left_everywhere" in done.stdout
    assert "reference:" in done.stdout and "first detection" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--nodes", "1"), "--nodes must be between"),
        (("--duration", "0"), "--duration must be between"),
        (("--loss", "1.5"), "loss rates must be in [0, 1)"),
        (("--loss-rates", "0.1,x"), "--loss-rates must be numbers"),
        (("--scenario", "partition", "--nodes", "3"), "at least 4 nodes"),
        (("--scenario", "nope"), "invalid choice"),
        (("--latency-ms", "0"), "--latency-ms must be above 0"),
    ],
)
def test_bad_arguments_one_line_exit_2(args: tuple[str, ...], message: str) -> None:
    done = sim(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_two_workers_reproduce_and_agree_on_the_outcome() -> None:
    """--workers 2 shares the nodes between two processes: the run repeats exactly, and
    it shows the same crash known by every survivor."""
    args = ("--nodes", "120", "--duration", "20", "--seed", "4")
    first = sim_json(*args, "--workers", "2")
    again = sim_json(*args, "--workers", "2", hash_seed="5")
    assert without_wall_clock(first) == without_wall_clock(again)
    single = sim_json(*args)
    assert first["workers"] == 2 and first["sync_windows"] > 0
    assert first["results"]["victim"] == single["results"]["victim"]
    assert first["results"]["survivors_not_knowing"] == 0
    assert first["results"]["failed_everywhere"]["nodes"] == 119
