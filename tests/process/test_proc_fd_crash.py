"""Failure detection of a crashed node, with real node processes (``--preset local``).

A node killed with SIGKILL announces nothing. SWIM finds it: its probes go unanswered
(directly and through ``indirect_checks`` helpers), every survivor suspects it, the
suspicion is gossiped and confirmed, and after the Lifeguard suspicion timeout (1.2 s at
the least with this preset, N < 10) it is ``failed`` on every survivor and gone from
``/members``. Meanwhile no survivor may suspect another survivor into ``failed``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from dynago.launch import NodeProcess

pytestmark = pytest.mark.process

DETECT_TIMEOUT_S = 15.0
"""Deadline for a crashed node to be failed everywhere (expected: well under 5 s)."""


def _start(cluster: Any, fd: Any, names: Sequence[str]) -> list[NodeProcess]:
    """Start ``names[0]`` as the seed and the others through it; wait until every node
    lists every node alive."""
    seed = cluster(names[0])
    nodes = [seed] + [cluster(name, seeds=[seed.address]) for name in names[1:]]
    fd.watch(nodes, lambda views: _all_alive(views, names), f"{', '.join(names)} to converge",
             timeout_s=10.0)
    return nodes


def _all_alive(views: dict[str, dict[str, tuple[str, int]]], names: Sequence[str]) -> bool:
    return all(
        all(view.get(name, ("?", 0))[0] == "alive" for name in names) for view in views.values()
    )


def _no_survivor_failed(
    survivors: Sequence[str], joining: Sequence[str] = ()
) -> Callable[[Any], str | None]:
    """Invariant: no observer holds a survivor as failed or left, and no survivor has
    forgotten another; a ``joining`` node may not know, or be known, yet."""

    def check(views: dict[str, dict[str, tuple[str, int]]]) -> str | None:
        for observer, view in views.items():
            for name in [*survivors, *joining]:
                status = view.get(name, ("absent", 0))[0]
                forgotten = status == "absent" and name in survivors and observer in survivors
                if status in ("failed", "left") or forgotten:
                    return f"{observer} holds survivor {name} as {status}"
        return None

    return check


def _kill(cluster: Any, node: NodeProcess) -> None:
    node.signal(signal.SIGKILL)
    assert node.proc.wait(5.0) == -signal.SIGKILL, cluster.report(f"{node.name} did not die")


def _failed_everywhere(name: str) -> Callable[[Any], bool]:
    return lambda views: all(view.get(name, ("?", 0))[0] == "failed" for view in views.values())


def test_crash_of_a_member_is_failed_on_every_survivor(cluster: Any, fd: Any) -> None:
    """SWIM + Lifeguard: d, killed with -9, is ``failed`` in every survivor's /v1/members
    within 15 s and no longer in their /members; on every poll meanwhile no survivor
    holds another survivor as failed (no false positive caused by the crash)."""
    a, b, c, d = _start(cluster, fd, ["a", "b", "c", "d"])
    survivors = [a, b, c]
    names = [n.name for n in survivors]

    _kill(cluster, d)
    took, views = fd.watch(survivors, _failed_everywhere("d"), "a, b and c to hold d failed",
                           timeout_s=DETECT_TIMEOUT_S, invariant=_no_survivor_failed(names))
    print(f"\nFD-MEASURE kill -9 of member d -> failed on all 3 survivors: {took:.2f} s")

    expected = sorted(n.address for n in survivors)
    for node in survivors:
        assert node.members() == expected, cluster.report(f"{node.name} still lists d")
    # Failed is final for this life: a short look confirms no survivor flips.
    fd.observe(survivors, 0.5, _no_survivor_failed(names))
    assert _failed_everywhere("d")(fd.views(survivors)), cluster.report("d came back")
    assert {view["d"][1] for view in views.values()} == {0}, \
        cluster.report(f"d failed at another incarnation than its only one: {views}")


def test_crash_of_the_seed_is_failed_and_the_survivors_stay_converged(
    cluster: Any, fd: Any
) -> None:
    """The seed a is only a first contact: killed with -9, it is ``failed`` on b, c and d,
    which keep listing each other alive (never failed on any poll), and the survivors
    still form one cluster: a new node e that joins through b is listed alive by every
    node, and e itself lists b, c and d alive and not a."""
    a, b, c, d = _start(cluster, fd, ["a", "b", "c", "d"])
    survivors = [b, c, d]
    names = [n.name for n in survivors]

    _kill(cluster, a)
    took, _views = fd.watch(survivors, _failed_everywhere("a"),
                            "b, c and d to hold the seed a failed",
                            timeout_s=DETECT_TIMEOUT_S, invariant=_no_survivor_failed(names))
    print(f"\nFD-MEASURE kill -9 of seed a -> failed on all 3 survivors: {took:.2f} s")
    expected = sorted(n.address for n in survivors)
    for node in survivors:
        assert node.members() == expected, cluster.report(f"{node.name} still lists a")

    e = cluster("e", seeds=[b.address])
    everyone = [*survivors, e]
    live = [n.name for n in everyone]

    def joined(views: dict[str, dict[str, tuple[str, int]]]) -> bool:
        return _all_alive(views, live) and all(
            view.get("a", ("absent", 0))[0] in ("failed", "absent") for view in views.values()
        )

    took, _views = fd.watch(everyone, joined, "b, c, d and e to list b, c, d, e alive",
                            timeout_s=10.0, invariant=_no_survivor_failed(names, joining=["e"]))
    print(f"FD-MEASURE e joined through survivor b, alive on all 4: {took:.2f} s")
    expected = sorted(n.address for n in everyone)
    assert cluster.all_list(everyone, expected), cluster.report("/members differ after e joined")
