"""Cluster name (a guard against accidents, not an authentication): a node configured for
another cluster that seeds from a member is refused on every try, the refusal is logged
once per peer with both names on both sides and counted every time, and the cluster it
knocked at is unharmed."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.process

ATTEMPTS = 3
"""Refused dials we wait for before judging: enough to show 'logged once, counted each
time' (seed retries back off 0.1, 0.2, 0.4 s ... in --preset local)."""


def test_cluster_name_mismatch_refused_logged_once_and_counted(cluster: Any) -> None:
    """``x`` (``--cluster other``) seeds from ``a`` of cluster ``dynago``: ``a`` counts
    every refusal in ``transport_streams_refused``, logs one WARNING naming both clusters;
    ``x`` counts ``transport_refused_by_peers`` and logs the refusal once in ``a``'s
    words; ``a`` keeps listing exactly its real members, ``x`` only itself."""
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]), "a and b to form")

    x = cluster("x", seeds=[a.address], extra_args=["--cluster", "other"])
    cluster.wait(lambda: cluster.stats(a)["transport_streams_refused"] >= ATTEMPTS
                 and cluster.stats(x)["transport_refused_by_peers"] >= ATTEMPTS,
                 f"{ATTEMPTS} refused dials of x, counted on both sides")

    on_a = cluster.log_lines(a, "refused stream", "'x'", "'other'", "'dynago'")
    assert len(on_a) == 1, cluster.report(f"a logged the refusal of x {len(on_a)} times")
    on_x = cluster.log_lines(x, "refused our stream", "'other'", "'dynago'")
    assert len(on_x) == 1, cluster.report(f"x logged a's refusal {len(on_x)} times")

    cluster.assert_serves_exactly(a, [a, b])
    cluster.assert_serves_exactly(b, [a, b])
    cluster.assert_serves_exactly(x, [x])
    assert "x" not in cluster.statuses(a), cluster.report("a holds a record of x")
