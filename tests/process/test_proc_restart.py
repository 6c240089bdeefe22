"""Restarting a node on the same address with the same name, with real node processes:
after a graceful stop (SIGTERM) and after a crash (SIGKILL) the new life is listed by
every node again."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from dynago.launch import NodeProcess

pytestmark = pytest.mark.process


def _three_nodes(cluster: Any) -> list[NodeProcess]:
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    c = cluster("c", seeds=[a.address])
    nodes = [a, b, c]
    cluster.wait(lambda: cluster.all_list(nodes, [n.address for n in nodes]),
                 "the three nodes to converge")
    return nodes


def _incarnations(cluster: Any, observers: list[NodeProcess], name: str) -> dict[str, int]:
    """Incarnation of member ``name`` as each observer holds it."""
    held = {}
    for node in observers:
        record = cluster.record_of(node, name)
        assert record is not None, cluster.report(f"{node.name} holds no record of {name}")
        held[node.name] = record["incarnation"]
    return held


def test_restart_after_sigterm_comes_back_with_higher_incarnation(cluster: Any) -> None:
    """C is stopped with SIGTERM (the others show it left) and restarted on the same gRPC
    port with the same name: every node lists it in /members again, and /v1/members on
    every node shows it alive at an incarnation above that of its first life."""
    a, b, c = _three_nodes(cluster)
    before = max(_incarnations(cluster, [a, b, c], "c").values())

    assert c.terminate(timeout_s=5.0) == 0, cluster.report("c did not exit 0 on SIGTERM")

    def others_show_left() -> bool:
        return all((cluster.record_of(n, "c") or {}).get("status") == "left" for n in (a, b))

    cluster.wait(others_show_left, "a and b to show c left")

    c2 = cluster("c", seeds=[a.address], bind=c.address)
    assert c2.address == c.address, cluster.report(f"restarted on {c2.address}, not {c.address}")
    nodes = [a, b, c2]

    def back() -> bool:
        if not cluster.all_list(nodes, [n.address for n in nodes]):
            return False
        records = [cluster.record_of(n, "c") or {} for n in nodes]
        return all(r.get("status") == "alive" and r.get("incarnation", -1) > before
                   for r in records)

    cluster.wait(back, f"every node to list c alive at an incarnation above {before}")


def test_restart_after_sigkill_is_listed_again(cluster: Any) -> None:
    """C is killed with SIGKILL (no leave announced) and restarted at once on the same gRPC
    port with the same name: the new life learns the whole cluster and every node lists
    all three addresses in /members, C alive in /v1/members; a fourth node joining through
    the new life of C reaches every node.

    The first life announced nothing. If the others have not suspected it yet they still
    hold it alive at incarnation 0, which the new life (also alive at 0) need not outbid;
    if they have, the new life refutes with a higher incarnation. Either way the
    incarnation must not go down."""
    a, b, c = _three_nodes(cluster)
    before = _incarnations(cluster, [a, b, c], "c")

    c.signal(signal.SIGKILL)
    assert c.proc.wait(5.0) == -signal.SIGKILL
    c2 = cluster("c", seeds=[a.address], bind=c.address)
    assert c2.address == c.address, cluster.report(f"restarted on {c2.address}, not {c.address}")
    nodes = [a, b, c2]

    # c2 starts knowing only itself: listing all three proves it joined the others. The
    # others may suspect c while it is down; the new life refutes that, so wait for alive.
    def back() -> bool:
        if not cluster.all_list(nodes, [n.address for n in nodes]):
            return False
        return all((cluster.record_of(n, "c") or {}).get("status") == "alive" for n in nodes)

    cluster.wait(back, "every node, the new life of c included, to list all three "
                       "addresses, c alive")

    after = _incarnations(cluster, nodes, "c")
    assert min(after.values()) >= max(before.values()), \
        cluster.report(f"incarnation of c went down: before {before}, after {after}")

    # The new life gossips both ways: a node that only knows c2 becomes known everywhere.
    d = cluster("d", seeds=[c2.address])
    nodes.append(d)
    cluster.wait(lambda: cluster.all_list(nodes, [n.address for n in nodes]),
                 "every node to list d, which joined through the restarted c")
