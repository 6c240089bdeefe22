"""Each simulated scenario, in process: what it must show about the protocol."""

from __future__ import annotations

from typing import Any

from dynago.config import Config
from dynago.sim.report import run
from dynago.sim.scenarios import SimOptions


def simulate(scenario: str, nodes: int = 40, duration: float = 30.0, **extra: Any) -> Any:
    options = SimOptions(nodes=nodes, duration_s=duration, seed=5, scenario=scenario,
                         config=Config.lan(), **extra)
    assert options.problem() is None
    return run(options)


def test_join_wave_reaches_every_node() -> None:
    report = simulate("join", nodes=300)
    results = report["results"]
    assert results["joiners"] == 3
    assert results["nodes_not_converged"] == 0
    assert results["all_alive_everywhere"]["nodes"] == 300
    assert report["false_failures"] == 0


def test_crash_is_failed_on_every_survivor() -> None:
    report = simulate("crash")
    results = report["results"]
    assert results["survivors_not_knowing"] == 0
    assert results["failed_everywhere"]["nodes"] == 39
    assert report["false_suspicions"] == 0 and report["false_failures"] == 0


def test_leave_is_known_everywhere_without_suspicion() -> None:
    report = simulate("leave")
    assert report["results"]["nodes_not_knowing"] == 0
    assert report["false_suspicions"] == 0
    assert report["events"] >= 39  # every other node published the leave


def test_partition_detected_on_both_sides_then_healed() -> None:
    report = simulate("partition", nodes=20, duration=40.0)
    results = report["results"]
    assert results["sides"] == [10, 10]
    assert results["nodes_not_detecting"] == 0
    assert results["nodes_not_healed"] == 0
    assert report["false_failures"] == 0


def test_loss_sweep_runs_the_crash_once_per_rate() -> None:
    report = simulate("loss", nodes=30, duration=20.0, loss_rates=(0.0, 0.2))
    assert [r["network"]["loss"] for r in report["runs"]] == [0.0, 0.2]
    clean, lossy = report["runs"]
    assert clean["results"]["survivors_not_knowing"] == 0
    assert lossy["results"]["survivors_not_knowing"] == 0
    # Loss costs retransmissions: more indirect probes under 20 % loss than under none.
    by_kind = lossy["traffic"]["by_kind"]
    assert by_kind.get("PingReq", {}).get("messages_per_node_per_s", 0) > (
        clean["traffic"]["by_kind"].get("PingReq", {}).get("messages_per_node_per_s", 0))
