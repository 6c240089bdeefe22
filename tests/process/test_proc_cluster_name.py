"""Cluster names, with real node processes: a node of another cluster that seeds from a
node is refused, never becomes its member, and the refusal is logged."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dynago.launch import http_json

pytestmark = pytest.mark.process

OBSERVE_S = 2.0
"""How long the refused node is watched staying out: ~20 gossip rounds of --preset local,
several seed retries and one anti-entropy period. A bounded observation window."""

POLL_S = 0.1


def test_cluster_name_mismatch_is_refused(cluster: Any) -> None:
    """A node started with ``--cluster other`` that seeds from a node of cluster
    ``dynago`` never appears in that node's /members (nor the other way round) while it
    keeps retrying, and the seed node's stderr log has a line naming both clusters."""
    a = cluster("a")
    x = cluster("x", seeds=[a.address], extra_args=["--cluster", "other"])

    def refusal_lines() -> list[str]:
        return [line for line in cluster.stderr_of(a).splitlines()
                if "'other'" in line and "'dynago'" in line]

    cluster.wait(refusal_lines, "a to log that it refused cluster 'other'")

    deadline = time.monotonic() + OBSERVE_S
    polls = 0
    while polls < 1000 and time.monotonic() < deadline:
        polls += 1
        seen_by_a, seen_by_x = a.members(), x.members()
        assert seen_by_a == [a.address], cluster.report(f"a lists {seen_by_a}")
        assert seen_by_x == [x.address], cluster.report(f"x lists {seen_by_x}")
        time.sleep(POLL_S)
    assert polls >= 5, cluster.report(f"only {polls} polls in the {OBSERVE_S} s window")

    assert [m["name"] for m in a.members_v1()] == ["a"], cluster.report("a holds a record of x")
    refusals = refusal_lines()
    assert all("refused" in line for line in refusals), refusals
    # x went on dialling during the window and was refused each time: counted every
    # time, logged (as a warning) once per peer.
    assert len(refusals) == 1, cluster.report(f"a logged {len(refusals)} refusals of x")
    stats = http_json(a.http, "/v1/stats")
    assert stats["transport_streams_refused"] >= 2, cluster.report(f"stats: {stats}")
    assert http_json(x.http, "/v1/stats")["transport_refused_by_peers"] >= 2
