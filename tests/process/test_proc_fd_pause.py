"""Paused nodes (SIGSTOP, then SIGCONT) with real node processes (``--preset local``).

Lifeguard's promise to a slow member: a pause shorter than the suspicion timeout (1.2 s at
the least with this preset, N < 10) may make others *suspect* it, but it refutes when it
resumes and is never declared ``failed``. A pause longer than the longest suspicion timeout
(4 x 1.2 s = 4.8 s) is a failure; when the member resumes it learns of its fate (a node
that holds it failed answers it with that record, and every node tries failed members
again) and refutes with a higher incarnation: alive everywhere again, itself included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from dynago.launch import NodeProcess

pytestmark = pytest.mark.process

Views = dict[str, dict[str, tuple[str, int]]]

MIN_SUSPICION_S = 1.2
"""Lifeguard minimum suspicion timeout of --preset local for N < 10 (4 x 0.3 s)."""

MAX_SUSPICION_S = 4 * MIN_SUSPICION_S


def _three_nodes(cluster: Any, fd: Any) -> list[NodeProcess]:
    a = cluster("a")
    nodes = [a, cluster("b", seeds=[a.address]), cluster("c", seeds=[a.address])]
    fd.watch(nodes, lambda views: _alive_everywhere(views, ["a", "b", "c"]),
             "a, b and c to list each other alive", timeout_s=10.0)
    return nodes


def _alive_everywhere(views: Views, names: Sequence[str]) -> bool:
    return all(all(view.get(n, ("?", 0))[0] == "alive" for n in names) for view in views.values())


def _never_failed(names: Sequence[str]) -> Callable[[Views], str | None]:
    """Invariant: no observer holds any of ``names`` as failed (or left, or forgotten)."""

    def check(views: Views) -> str | None:
        for observer, view in views.items():
            for name in names:
                status = view.get(name, ("absent", 0))[0]
                if status in ("failed", "left", "absent"):
                    return f"{observer} holds {name} as {status}"
        return None

    return check


@pytest.mark.parametrize("pause_s", [0.5, 0.9])
def test_pause_shorter_than_the_suspicion_timeout_is_never_failed(
    cluster: Any, fd: Any, pause_s: float
) -> None:
    """Lifeguard: c is stopped for 0.5 s (0.9 s: long enough that a and b suspect it), both
    below the 1.2 s minimum suspicion timeout, then resumed. Polled every 50 ms during the
    pause and for 3 s after, a and b never hold c (or each other) as failed; at the end
    every node, c included, lists all three alive."""
    a, b, c = _three_nodes(cluster, fd)
    observers = [a, b]
    never_failed = _never_failed(["a", "b", "c"])
    seen: set[str] = set()  # every status of c that a or b showed: for the report only

    def invariant(views: Views) -> str | None:
        seen.update(view.get("c", ("absent", 0))[0] for view in views.values())
        return never_failed(views)

    paused = fd.hold_pause(c, pause_s, during=lambda: fd.check(observers, invariant))
    assert paused < MIN_SUSPICION_S, f"the pause lasted {paused:.2f} s, too long to judge"
    polls = fd.observe(observers, 3.0, invariant)
    assert polls >= 10, cluster.report(f"only {polls} polls answered in 3 s")

    took, _views = fd.watch([a, b, c], lambda views: _alive_everywhere(views, ["a", "b", "c"]),
                            "every node to list a, b and c alive", timeout_s=5.0,
                            invariant=invariant)
    print(f"\nFD-MEASURE pause {paused:.2f} s: statuses of c seen on a and b {sorted(seen)}; "
          f"alive everywhere {took:.2f} s after the 3 s watch")


def test_pause_longer_than_the_suspicion_timeout_is_failed_then_refuted(
    cluster: Any, fd: Any
) -> None:
    """SWIM + Lifeguard: c is stopped for 7 s (> the 4.8 s maximum suspicion timeout):
    before it resumes, a and b hold it failed (and never each other). After SIGCONT, within
    10 s every node lists c alive at an incarnation above the one it had before the pause,
    and c's own /v1/members lists a, b and c alive."""
    a, b, c = _three_nodes(cluster, fd)
    observers = [a, b]
    before = max(view["c"][1] for view in fd.views([a, b, c]).values())
    invariant = _never_failed(["a", "b"])
    failed_after: list[float] = []
    started: list[float] = []

    def poll() -> None:
        views = fd.check(observers, invariant)
        if views is None or failed_after:
            return
        if all(view.get("c", ("?", 0))[0] == "failed" for view in views.values()):
            failed_after.append(time.monotonic() - started[0])

    started.append(time.monotonic())
    paused = fd.hold_pause(c, 7.0, during=poll)
    views = fd.views(observers)
    assert all(view["c"][0] == "failed" for view in views.values()), cluster.report(
        f"after a pause of {paused:.2f} s (> {MAX_SUSPICION_S} s) c is not failed everywhere")
    print(f"\nFD-MEASURE pause {paused:.2f} s: c failed on a and b "
          f"{failed_after[0] if failed_after else float('nan'):.2f} s after SIGSTOP")

    def refuted(views: Views) -> bool:
        return _alive_everywhere(views, ["a", "b", "c"]) and all(
            view["c"][1] > before for view in views.values())

    took, views = fd.watch([a, b, c], refuted,
                           f"every node, c included, to list a, b, c alive, c above {before}",
                           timeout_s=10.0, invariant=invariant)
    print(f"FD-MEASURE SIGCONT -> c alive everywhere at incarnation "
          f"{views['a']['c'][1]} (was {before}): {took:.2f} s")
    assert len({view["c"][1] for view in views.values()}) == 1, \
        cluster.report(f"the nodes hold c at different incarnations: {views}")
