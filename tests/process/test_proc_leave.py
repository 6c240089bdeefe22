"""Leaving, with real node processes: SIGTERM, SIGINT, ``POST /v1/leave`` and
``dynago leave`` each make the node announce its leave and exit 0 promptly; the other
nodes drop it from /members and show it as "left" in /v1/members."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from dynago.launch import NodeProcess, http_json

pytestmark = pytest.mark.process

EXIT_DEADLINE_S = 2.0
"""A node must be gone this long after it was told to stop."""


def _three_nodes(cluster: Any) -> tuple[NodeProcess, NodeProcess, NodeProcess]:
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    c = cluster("c", seeds=[a.address])
    nodes = [a, b, c]
    cluster.wait(lambda: cluster.all_list(nodes, [n.address for n in nodes]),
                 "the three nodes to converge")
    return a, b, c


def _check_left(cluster: Any, leaver: NodeProcess, others: list[NodeProcess],
                told_at: float) -> None:
    """``leaver`` exits 0 within EXIT_DEADLINE_S of ``told_at``, its process is gone, and
    every node of ``others`` drops it from /members and shows it as left."""
    remaining = max(0.0, told_at + EXIT_DEADLINE_S - time.monotonic())
    try:
        code = leaver.proc.wait(remaining)
    except subprocess.TimeoutExpired:
        pytest.fail(cluster.report(f"{leaver.name} still running {EXIT_DEADLINE_S} s after "
                                   "it was told to leave"))
    took = time.monotonic() - told_at
    assert code == 0, cluster.report(f"{leaver.name} exited with {code}")
    assert took <= EXIT_DEADLINE_S, cluster.report(f"{leaver.name} took {took:.2f} s to exit")
    assert leaver.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(leaver.pid, 0)

    survivors = sorted(n.address for n in others)
    cluster.wait(lambda: cluster.all_list(others, survivors),
                 f"the other nodes to drop {leaver.name} from /members")

    def shown_left() -> bool:
        return all((cluster.record_of(n, leaver.name) or {}).get("status") == "left"
                   for n in others)

    cluster.wait(shown_left, f"/v1/members of the other nodes to show {leaver.name} left")
    for node in others:
        record = cluster.record_of(node, leaver.name)
        assert record is not None and record["address"] == leaver.address, \
            cluster.report(f"{node.name} holds {record} for {leaver.name}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_leave_on_signal(cluster: Any, signum: int) -> None:
    """A node sent SIGTERM or SIGINT exits 0 within 2 s, its process is gone, and the
    other nodes drop it from /members and list it as "left" in /v1/members."""
    a, b, c = _three_nodes(cluster)

    told_at = time.monotonic()
    c.signal(signum)

    _check_left(cluster, c, [a, b], told_at)


def test_leave_over_http_api(cluster: Any) -> None:
    """``POST /v1/leave`` answers 202 ``{"status": "leaving"}``; the node then exits 0
    within 2 s and the other nodes list it as left."""
    a, b, c = _three_nodes(cluster)

    told_at = time.monotonic()
    answer = http_json(c.http, "/v1/leave", method="POST")

    assert answer == {"status": "leaving"}, cluster.report(f"POST /v1/leave answered {answer}")
    _check_left(cluster, c, [a, b], told_at)


def test_leave_with_cli_command(
    cluster: Any, dynago_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """``dynago leave --http ADDR`` exits 0 saying the node is leaving; the node then exits
    0 within 2 s and the other nodes list it as left."""
    a, b, c = _three_nodes(cluster)

    result = dynago_cli(["leave", "--http", c.http], timeout_s=10)

    assert result.returncode == 0, cluster.report(f"dynago leave: {result}")
    assert result.stdout.strip() == f"node at {c.http} is leaving", result.stdout
    # The command's own start-up time counts against the node's deadline: restart the
    # clock at the command's exit (the request went out just before it).
    _check_left(cluster, c, [a, b], time.monotonic())


def test_leave_logs_no_traceback(cluster: Any) -> None:
    """Leaving and stopping are routine: after C leaves and then A and B are stopped with
    SIGTERM, no node's stderr log holds a Traceback or an ERROR line."""
    a, b, c = _three_nodes(cluster)
    c.signal(signal.SIGTERM)
    _check_left(cluster, c, [a, b], time.monotonic())
    for node in (a, b):
        assert node.terminate(timeout_s=EXIT_DEADLINE_S) == 0, cluster.report()

    for node in (a, b, c):
        log = cluster.stderr_of(node)
        bad = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
        assert not bad, cluster.report(f"{node.name} logged errors: {bad}")
