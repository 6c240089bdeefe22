"""A crashed member restarted on the same port with the same name, with real node
processes (``--preset local``), seen through failure detection.

A new life starts at incarnation 0. It joins by push-pull through its seed, so it learns
how the cluster holds its previous life (alive, suspect or failed) and outbids that
record (SWIM refutation) when it would lose to it: the member is alive everywhere again,
within about a second of the restart (README "Restarts, pauses, partitions").
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from dynago.launch import NodeProcess

pytestmark = pytest.mark.process

Views = dict[str, dict[str, tuple[str, int]]]

RESTART_ALIVE_DEADLINE_S = 5.0
"""What the test asserts, from the new life's ready line to c alive on every node
(README: "within about a second")."""


def _three_nodes(cluster: Any, fd: Any) -> list[NodeProcess]:
    a = cluster("a")
    nodes = [a, cluster("b", seeds=[a.address]), cluster("c", seeds=[a.address])]
    fd.watch(nodes, _everyone_alive, "a, b and c to list each other alive", timeout_s=10.0)
    return nodes


def _everyone_alive(views: Views) -> bool:
    return all(
        all(view.get(n, ("?", 0))[0] == "alive" for n in ("a", "b", "c"))
        for view in views.values()
    )


def _kill(cluster: Any, node: NodeProcess) -> float:
    node.signal(signal.SIGKILL)
    assert node.proc.wait(5.0) == -signal.SIGKILL, cluster.report(f"{node.name} did not die")
    return time.monotonic()


def _back(at_least: int, *, above: bool) -> Callable[[Views], bool]:
    """Every node lists a, b and c alive and holds c at one incarnation, which is
    ``> at_least`` (``above``) or ``>= at_least``."""

    def check(views: Views) -> bool:
        if not _everyone_alive(views):
            return False
        held = {view["c"][1] for view in views.values()}
        if len(held) != 1:
            return False
        (incarnation,) = held
        return incarnation > at_least if above else incarnation >= at_least

    return check


def _a_and_b_never_failed(views: Views) -> str | None:
    """Invariant: nobody holds a or b failed or left, and a and b never forget each other
    (a new life of c may not know them yet)."""
    for observer, view in views.items():
        for name in ("a", "b"):
            status = view.get(name, ("absent", 0))[0]
            if status in ("failed", "left") or (status == "absent" and observer != "c"):
                return f"{observer} holds {name} as {status}"
    return None


def test_restart_at_once_after_kill_is_alive_everywhere_within_seconds(
    cluster: Any, fd: Any
) -> None:
    """c is killed with -9 and restarted at once on its port with its name and --seed a:
    within 5 s of the new life's ready line (target: about 1 s) every node, the new life
    included, lists a, b and c alive, all at the same incarnation of c, not below the one
    before the crash."""
    a, b, c = _three_nodes(cluster, fd)
    before = max(view["c"][1] for view in fd.views([a, b, c]).values())

    killed_at = _kill(cluster, c)
    c2 = cluster("c", seeds=[a.address], bind=c.address)
    ready_at = time.monotonic()
    assert c2.address == c.address, cluster.report(f"restarted on {c2.address}, not {c.address}")

    took, views = fd.watch([a, b, c2], _back(before, above=False),
                           "every node, the new life of c included, to list a, b, c alive",
                           timeout_s=RESTART_ALIVE_DEADLINE_S, invariant=_a_and_b_never_failed)
    print(f"\nFD-MEASURE kill -9 + immediate restart of c: ready {ready_at - killed_at:.2f} s "
          f"after the kill; alive on all 3 {took:.2f} s after ready "
          f"({ready_at - killed_at + took:.2f} s after the kill), incarnation "
          f"{views['a']['c'][1]} (was {before})")


def test_restart_after_being_failed_everywhere_outbids_the_failed_record(
    cluster: Any, fd: Any
) -> None:
    """SWIM refutation across lives: c is killed with -9 and left down until a and b hold it
    failed; the restarted c (same port, same name, --seed a) hears of its failed record
    when it joins and outbids it: every node lists c alive at an incarnation above the
    failed one, and the new life lists a and b alive."""
    a, b, c = _three_nodes(cluster, fd)

    killed_at = _kill(cluster, c)
    took, views = fd.watch(
        [a, b], lambda vs: all(view.get("c", ("?", 0))[0] == "failed" for view in vs.values()),
        "a and b to hold c failed", timeout_s=15.0, invariant=_a_and_b_never_failed)
    failed_at = max(view["c"][1] for view in views.values())
    print(f"\nFD-MEASURE kill -9 of c -> failed on a and b (3-node cluster): {took:.2f} s")

    c2 = cluster("c", seeds=[a.address], bind=c.address)
    ready_at = time.monotonic()
    took, views = fd.watch([a, b, c2], _back(failed_at, above=True),
                           f"every node to list c alive above incarnation {failed_at}",
                           timeout_s=10.0, invariant=_a_and_b_never_failed)
    print(f"FD-MEASURE restart of failed c: ready {ready_at - killed_at:.2f} s after the kill; "
          f"alive on all 3 at incarnation {views['a']['c'][1]} (failed at {failed_at}) "
          f"{took:.2f} s after ready")
