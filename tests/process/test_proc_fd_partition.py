"""A network partition made with the fault-injection API, with real node processes
(``--preset local --enable-fault-injection``), and the /v1/faults API itself.

SWIM on each side of a 2 | 2 partition: probes across the cut go unanswered (directly and
through helpers), so each side declares the other side failed, while the members on one
side keep acking each other and stay alive. Healing needs no operator action beyond
lifting the cut: every ``reconnect_interval_s`` (1 s) each node tries a failed member with
a full-state exchange, the others refute, and all four are alive on all four again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from dynago.launch import NodeProcess

pytestmark = pytest.mark.process

Views = dict[str, dict[str, tuple[str, int]]]

FAULTS_FLAG = "--enable-fault-injection"
SIDES = (("a", "b"), ("c", "d"))
NO_RULES = {"drop_rate": 0.0, "delay_s": 0.0, "cut_out": [], "cut_in": []}


def _status(views: Views, observer: str, name: str) -> str:
    return views[observer].get(name, ("absent", 0))[0]


def _same_side_never_failed(views: Views) -> str | None:
    """Invariant: members on one side of the cut never hold each other failed (or left,
    or forgotten)."""
    for side in SIDES:
        for observer in side:
            for name in side:
                status = _status(views, observer, name)
                if status in ("failed", "left", "absent"):
                    return f"{observer} holds {name}, on its own side, as {status}"
    return None


def _all_alive(views: Views, names: Sequence[str]) -> bool:
    return all(all(_status(views, o, n) == "alive" for n in names) for o in views)


def _cut_views(views: Views) -> bool:
    """Each side holds every member of the other side failed."""
    (left, right) = SIDES
    return all(
        _status(views, observer, name) == "failed"
        for here, there in ((left, right), (right, left))
        for observer in here
        for name in there
    )


def test_partition_fails_the_other_side_and_heals_by_itself(cluster: Any, fd: Any) -> None:
    """SWIM across a 2 | 2 cut (POST /v1/faults cut both ways on every node): a and b hold
    c and d failed and c and d hold a and b failed, while a<->b and c<->d stay alive on
    every poll. GET /v1/faults shows the cut rules; a bad POST answers 400 and changes
    none of them. After {"heal": true} on every node, all four list all four alive within
    15 s, with no operator action beyond the heal."""
    a = cluster("a", extra_args=[FAULTS_FLAG])
    nodes = [a] + [cluster(n, seeds=[a.address], extra_args=[FAULTS_FLAG]) for n in "bcd"]
    by_name = {node.name: node for node in nodes}
    names = sorted(by_name)
    fd.watch(nodes, lambda views: _all_alive(views, names), "a, b, c, d to converge",
             timeout_s=10.0)

    for here, there in ((SIDES[0], SIDES[1]), (SIDES[1], SIDES[0])):
        for observer in here:
            for peer in there:
                status, rules = fd.request(by_name[observer], "/v1/faults",
                                           {"cut": {"node": peer, "direction": "both"}})
                assert status == 200, cluster.report(f"cut {observer}-{peer}: {status} {rules}")
    for here, there in ((SIDES[0], SIDES[1]), (SIDES[1], SIDES[0])):
        for observer in here:
            status, rules = fd.request(by_name[observer], "/v1/faults")
            expected = {**NO_RULES, "cut_out": list(there), "cut_in": list(there)}
            assert (status, rules) == (200, expected), f"GET /v1/faults on {observer}"

    # A bad request is refused as a whole: neither its valid parts nor anything else apply.
    cut_rules = fd.request(a, "/v1/faults")[1]
    for bad in ({"drop_rate": 2}, {"heal": True, "drop_rate": 2},
                {"cut": {"node": "b", "direction": "sideways"}}, {"delay_s": -1},
                {"drop_rate": "0.5"}, {"unknown": 1}, [1]):
        status, answer = fd.request(a, "/v1/faults", bad)
        assert status == 400 and "error" in answer, f"POST {bad}: {status} {answer}"
        assert fd.request(a, "/v1/faults") == (200, cut_rules), f"POST {bad} changed the rules"
    for raw in (b"{", b"\xff", b"null"):
        status, answer = fd.request(a, "/v1/faults", raw=raw)
        assert status == 400 and "error" in answer, f"POST {raw!r}: {status} {answer}"
        assert fd.request(a, "/v1/faults") == (200, cut_rules), f"POST {raw!r} changed the rules"

    took, _views = fd.watch(nodes, _cut_views, "each side to hold the other side failed",
                            timeout_s=15.0, invariant=_same_side_never_failed)
    print(f"\nFD-MEASURE 2|2 cut -> other side failed on all 4 nodes: {took:.2f} s")

    for node in nodes:
        assert fd.request(node, "/v1/faults", {"heal": True}) == (200, NO_RULES), node.name
    # While the sides exchange their lists, a may briefly hold b failed: c's record "b
    # failed" wins over a's "b alive" at the same incarnation until b refutes. That is
    # SWIM's precedence at work, so only the outcome is checked here, plus that no node
    # ever holds itself as anything but alive.
    same_side_failed: set[str] = set()

    def note(views: Views) -> str | None:
        same_side_failed.update(
            f"{o}:{n}" for side in SIDES for o in side for n in side
            if _status(views, o, n) != "alive")
        for observer in views:
            if _status(views, observer, observer) != "alive":
                return f"{observer} holds itself as {_status(views, observer, observer)}"
        return None

    took, views = fd.watch(nodes, lambda views: _all_alive(views, names),
                           "all four alive on all four after the heal", timeout_s=15.0,
                           invariant=note)
    print(f"FD-MEASURE heal -> all alive on all 4: {took:.2f} s "
          f"(incarnations {({n: views['a'][n][1] for n in names})}; same-side records seen "
          f"not alive meanwhile: {sorted(same_side_failed)})")
    expected = sorted(node.address for node in nodes)
    assert cluster.all_list(nodes, expected), cluster.report("/members differ after the heal")


def test_faults_api_is_absent_without_the_flag(cluster: Any, fd: Any) -> None:
    """/v1/faults is served only by a node started with --enable-fault-injection: without
    the flag GET and POST answer 404 and the node keeps running normally."""
    plain: NodeProcess = cluster("plain")

    assert fd.request(plain, "/v1/faults")[0] == 404
    assert fd.request(plain, "/v1/faults", {"cut": {"node": "x", "direction": "both"}})[0] == 404
    assert fd.request(plain, "/v1/faults", {"heal": True})[0] == 404
    assert plain.members() == [plain.address]
