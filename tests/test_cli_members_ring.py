"""``dynago members`` with the ring's partitions, and the demo's key write and read,
in-process through ``dynago.cli`` against in-process nodes (MemoryNetwork, admin API on
127.0.0.1:0), with and without the KV store (a node without it answers /v1/ring 404)."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from dynago.cli_demo import demo_key_value
from dynago.launch import LaunchError, http_json, wait_until
from dynago.node import Node

TIMEOUT_S = 10.0
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def nodes(kv_nodes: Callable[..., Node]) -> Callable[..., Node]:
    return kv_nodes


@pytest.fixture
def members(cli_main: Callable[..., tuple[int, str, str]]) -> Run:
    def run(node: Node, *argv: str) -> tuple[int, str, str]:
        assert node.http_address is not None
        return cli_main("members", "--http", node.http_address, *argv)
    return run


def http(node: Node) -> str:
    assert node.http_address is not None
    return node.http_address


def ring_of(node: Node, count: int) -> None:
    wait_until(lambda: len(http_json(http(node), "/v1/ring")["members"]) == count,
               timeout_s=TIMEOUT_S, what=f"{node.name}'s ring to hold {count} members")


def test_cli_members_table_shows_partition_shares(nodes: Callable[..., Node],
                                                  members: Run) -> None:
    a = nodes("a")
    nodes("b", seed=a)
    ring_of(a, 2)

    code, out, err = members(a)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "STATUS", "INCARNATION", "PARTITIONS",
                                "SINCE"]
    assert sorted(line.split()[0:1] + line.split()[4:6] for line in lines[1:]) == [
        ["a", "32", "(50.0%)"], ["b", "32", "(50.0%)"]]


def test_cli_members_blank_partitions_for_a_member_out_of_the_ring(
        nodes: Callable[..., Node], members: Run) -> None:
    a = nodes("a")
    nodes("b", seed=a)
    c = nodes("c", seed=a)
    ring_of(a, 3)
    c.stop(leave=True)  # left: still listed, out of the ring
    ring_of(a, 2)

    code, out, _ = members(a)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and set(rows) == {"a", "b", "c"}
    assert "left" in rows["c"] and "%" not in rows["c"]
    assert "32 (50.0%)" in rows["a"] and "32 (50.0%)" in rows["b"]

    code, out, _ = members(a, "--json")
    listed = {m["name"]: m for m in json.loads(out)}
    assert (listed["c"]["partitions"], listed["c"]["share"]) == (None, None)
    assert (listed["a"]["partitions"], listed["a"]["share"]) == (32, 0.5)


def test_cli_members_json_adds_partitions_and_share(nodes: Callable[..., Node],
                                                    members: Run) -> None:
    a = nodes("a")
    code, out, _ = members(a, "--json")
    listed = json.loads(out)
    assert code == 0 and [(m["name"], m["partitions"], m["share"]) for m in listed] == [
        ("a", 64, 1.0)]
    assert [{k: v for k, v in m.items() if k not in ("partitions", "share")}
            for m in listed] == http_json(http(a), "/v1/members")


def test_cli_members_without_ring_route_has_no_partitions(nodes: Callable[..., Node],
                                                          members: Run) -> None:
    plain = nodes("plain", kv=False)
    with pytest.raises(Exception, match="404"):
        http_json(http(plain), "/v1/ring")

    code, out, err = members(plain)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["NAME", "ADDRESS", "STATUS", "INCARNATION",
                                           "SINCE"]
    code, out, _ = members(plain, "--json")
    assert code == 0 and json.loads(out) == http_json(http(plain), "/v1/members")


def _endpoint(node: Node) -> Any:
    return SimpleNamespace(name=node.name, http=http(node))


def test_cli_demo_key_value_reads_back_through_another_node(
        nodes: Callable[..., Node], capsys: pytest.CaptureFixture[str]) -> None:
    a = nodes("a")
    b = nodes("b", seed=a)
    ring_of(a, 2)
    ring_of(b, 2)

    demo_key_value(_endpoint(a), _endpoint(b))

    wrote, read = capsys.readouterr().out.splitlines()
    assert wrote.startswith("wrote demo-key='hello from a' through a (first replica: ")
    assert read.startswith("read demo-key='hello from a' from b (node: ")


def test_cli_demo_key_value_fails_clearly_on_a_mismatch(nodes: Callable[..., Node]) -> None:
    a = nodes("a")
    other = nodes("other")  # another cluster: it holds its own value of the key
    http_json(http(other), "/kvstore", method="POST",
              body={"Key": "demo-key", "Value": "something else"})

    with pytest.raises(LaunchError) as raised:
        demo_key_value(_endpoint(a), _endpoint(other), timeout_s=0.5)
    message = str(raised.value)
    assert "reading 'demo-key' from other did not give back 'hello from a'" in message
    assert "something else" in message
