"""Joining, with real node processes: star and chain topologies converge, and the admin
API (/members, /v1/members, /healthz) reports the converged cluster."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from dynago.launch import http_json

pytestmark = pytest.mark.process

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_join_star_converges(cluster: Any) -> None:
    """B and C both seed from A: every node's /members becomes the sorted list of all
    three addresses."""
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    c = cluster("c", seeds=[a.address])
    nodes = [a, b, c]
    addresses = [n.address for n in nodes]

    cluster.wait(lambda: cluster.all_list(nodes, addresses),
                 "every node of the star to list all three addresses")

    for node in nodes:
        assert node.members() == sorted(addresses), cluster.report(f"{node.name} diverged")


def test_join_chain_converges(cluster: Any) -> None:
    """B joins via A, C via B, D via C: every node's /members becomes the sorted list of all
    four addresses, although A never heard of C or D directly."""
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    c = cluster("c", seeds=[b.address])
    d = cluster("d", seeds=[c.address])
    nodes = [a, b, c, d]
    addresses = [n.address for n in nodes]

    cluster.wait(lambda: cluster.all_list(nodes, addresses),
                 "every node of the chain to list all four addresses")

    for node in nodes:
        assert node.members() == sorted(addresses), cluster.report(f"{node.name} diverged")


def test_join_v1_members_and_healthz(cluster: Any) -> None:
    """After convergence /v1/members on every node lists every member by name and address,
    alive at incarnation 0, with a ``since`` that is an RFC 3339 UTC time (milliseconds,
    ``Z``) between the start of the test and now; /healthz answers status ok with the
    node's name, address and the number of live members."""
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    c = cluster("c", seeds=[a.address])
    nodes = [a, b, c]
    addresses = [n.address for n in nodes]
    cluster.wait(lambda: cluster.all_list(nodes, addresses), "the cluster to converge")
    expected = {n.name: n.address for n in nodes}

    problems = []
    for node in nodes:
        rows = node.members_v1()
        if {m["name"]: m["address"] for m in rows} != expected:
            problems.append(f"{node.name}: /v1/members {rows}, expected {expected}")
        now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
        for m in rows:
            where = f"{node.name}'s record {m}"
            if set(m) != {"name", "address", "status", "incarnation", "since", "tags"}:
                problems.append(f"{where}: wrong fields")
                continue
            if m["tags"] != {}:
                problems.append(f"{where}: tags of a node started without --tag")
            if m["status"] != "alive" or m["incarnation"] != 0:
                problems.append(f"{where}: not alive at incarnation 0")
            if not RFC3339_MS.match(m["since"]):
                problems.append(f"{where}: since is not YYYY-MM-DDTHH:MM:SS.mmmZ")
            elif not started <= datetime.datetime.fromisoformat(m["since"]) <= now:
                problems.append(f"{where}: since is not between {started} and {now}")

        health = http_json(node.http, "/healthz")
        if health != {"status": "ok", "name": node.name, "address": node.address,
                      "live_members": 3}:
            problems.append(f"{node.name}: /healthz answered {health}")

    assert not problems, cluster.report("\n".join(problems))
