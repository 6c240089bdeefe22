"""Five in-process nodes over a MemoryNetwork: the real Node wiring, real timers, real time.

Nothing opens a socket: the addresses only name the nodes inside the MemoryNetwork.
Convergence is awaited by polling with a deadline; every node is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dynago.config import Config
from dynago.node import Node
from dynago.transport.memory import MemoryNetwork

SIZE = 5
CONVERGE_S = 10.0


def node_address(i: int) -> str:
    return f"127.0.0.1:{17000 + i}"


@pytest.fixture
def start_cluster() -> Iterator[Callable[[Callable[[int], tuple[str, ...]]], list[Node]]]:
    """Start nodes n1..n5 in order; ``seeds_of(i)`` gives node i's seed addresses."""
    network = MemoryNetwork()
    nodes: list[Node] = []

    def start(seeds_of: Callable[[int], tuple[str, ...]]) -> list[Node]:
        for i in range(1, SIZE + 1):
            node = Node(
                bind=node_address(i),
                name=f"n{i}",
                seeds=seeds_of(i),
                config=Config.local(),
                transport=network.transport(),
                seed=i,
            )
            nodes.append(node)
            node.start()
        return nodes

    yield start
    for node in nodes:
        node.stop(leave=False)


def live_names(node: Node) -> set[str]:
    return {view.name for view in node.members(live_only=True)}


def all_names() -> set[str]:
    return {f"n{i}" for i in range(1, SIZE + 1)}


def test_a_star_join_converges(start_cluster, eventually):
    nodes = start_cluster(lambda i: () if i == 1 else (node_address(1),))

    eventually(lambda: all(live_names(node) == all_names() for node in nodes), CONVERGE_S)


def test_a_chain_join_converges(start_cluster, eventually):
    nodes = start_cluster(lambda i: () if i == 1 else (node_address(i - 1),))

    eventually(lambda: all(live_names(node) == all_names() for node in nodes), CONVERGE_S)


def test_a_stopped_node_is_seen_as_left_by_the_others(start_cluster, eventually):
    nodes = start_cluster(lambda i: () if i == 1 else (node_address(1),))
    eventually(lambda: all(live_names(node) == all_names() for node in nodes), CONVERGE_S)
    leaver, others = nodes[-1], nodes[:-1]

    leaver.stop()  # leaves first, then stops

    def status_of_leaver(node: Node) -> str:
        (view,) = [v for v in node.members() if v.name == leaver.name]
        return view.status

    eventually(lambda: all(status_of_leaver(node) == "left" for node in others), CONVERGE_S)
    assert all(live_names(node) == all_names() - {leaver.name} for node in others)
