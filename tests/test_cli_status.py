"""``dynago status`` in-process through ``dynago.cli`` against in-process nodes
(MemoryNetwork, admin API on 127.0.0.1:0): every member's status, zone, partitions of
the asked node's ring, and keys read from each member's own /v1/stats through its
``http`` tag."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dynago.actors import api
from dynago.cli import main
from dynago.launch import http_json, wait_until
from dynago.node import Node

TIMEOUT_S = 10.0
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def nodes(kv_nodes: Callable[..., Node]) -> Callable[..., Node]:
    def start(name: str, *, seed: Node | None = None, zone: str | None = None,
              http_tag: bool | str = True) -> Node:
        """A KV node; ``http_tag``: True tags it with its own HTTP address, a string
        with that address, False not at all."""
        node = kv_nodes(name, seed=seed)
        tags = {"zone": zone} if zone else {}
        if http_tag:
            tags["http"] = http_tag if isinstance(http_tag, str) else http(node)
        if tags:
            api.set_tags(node.membership, tags)
        return node

    return start


@pytest.fixture
def status(cli_main: Callable[..., tuple[int, str, str]]) -> Run:
    def run(node: Node, *argv: str) -> tuple[int, str, str]:
        return cli_main("status", "--http", http(node), *argv)
    return run


def http(node: Node) -> str:
    assert node.http_address is not None
    return node.http_address


def settled(node: Node, count: int, tagged: set[str]) -> None:
    """Wait until ``node``'s ring holds ``count`` members and it sees the ``http`` tag
    of every member in ``tagged``."""
    def ready() -> bool:
        seen = {m["name"] for m in http_json(http(node), "/v1/members")
                if "http" in m["tags"]}
        return (len(http_json(http(node), "/v1/ring")["members"]) == count
                and tagged <= seen)
    wait_until(ready, timeout_s=TIMEOUT_S, what=f"{node.name} to see {count} tagged members")


def put(node: Node, key: str) -> None:
    http_json(http(node), "/kvstore", method="POST", body={"Key": key, "Value": "v"})


def rows_of(out: str) -> dict[str, list[str]]:
    lines = out.strip().splitlines()
    assert lines[0].split() == ["STATUS", "NAME", "ADDRESS", "ZONE", "PARTITIONS", "KEYS",
                                "HINTS", "HANDOFFS"]
    return {line.split()[1]: line.split() for line in lines[1:] if line.strip()}


def test_cli_status_table_shows_partitions_and_each_members_keys(
        nodes: Callable[..., Node], status: Run) -> None:
    a = nodes("a", zone="z1")
    b = nodes("b", seed=a, zone="z2")
    c = nodes("c", seed=a, zone="z3")
    d = nodes("d", seed=a, http_tag=False)  # no http tag: its keys cannot be read
    for node in (a, b, c, d):  # every ring agrees before the writes
        settled(node, 4, {"a", "b", "c"})

    def counts(total: int) -> dict[str, int] | None:
        held = {n.name: http_json(http(n), "/v1/stats")["kv_store_keys"] for n in (a, b, c, d)}
        return held if sum(held.values()) == total else None

    # N = 3 of 4 members: keys land on different nodes; write until a and b hold
    # different counts, so that each row's count can only be that member's own.
    written = 0
    while written < 40:
        put(a, f"k{written}")
        written += 1
        keys = wait_until(lambda t=written * 3: counts(t), timeout_s=TIMEOUT_S,
                          what="every replica to hold every key")
        if written >= 4 and keys["a"] != keys["b"]:
            break
    assert keys["a"] != keys["b"]

    code, out, err = status(a)

    assert (code, err) == (0, "")
    rows = rows_of(out)
    assert set(rows) == {"a", "b", "c", "d"}
    ring = {m["name"]: m for m in http_json(http(a), "/v1/ring")["members"]}
    for name, node, zone in (("a", a, "z1"), ("b", b, "z2"), ("c", c, "z3"), ("d", d, "-")):
        row = rows[name]
        assert row[0] == "alive" and row[2] == node.address and row[3] == zone
        assert row[4:6] == [str(ring[name]["partitions"]), f"({ring[name]['share']:.1%})"]
        # hints held (none: every node is up); handoffs: none pending once the ring
        # settled (d's cannot be read: no http tag)
        assert row[7:9] == (["-", "-"] if name == "d" else ["0", "0"])
    assert rows["a"][6] == str(keys["a"])  # the asked node: through --http, tag or not
    assert rows["b"][6] == str(keys["b"])  # through their http tags
    assert rows["c"][6] == str(keys["c"])
    assert rows["d"][6] == "-"


def test_cli_status_json_gives_keys_partitions_and_null_hints(
        nodes: Callable[..., Node], status: Run) -> None:
    a = nodes("a", http_tag=False)
    b = nodes("b", seed=a, zone="z2")
    settled(a, 2, {"b"})
    settled(b, 2, {"b"})
    put(b, "only")
    wait_until(lambda: all(http_json(http(n), "/v1/stats")["kv_store_keys"] == 1
                           for n in (a, b)), timeout_s=TIMEOUT_S, what="both to hold the key")

    code, out, _ = status(a, "--json")

    assert code == 0
    listed: list[dict[str, Any]] = json.loads(out)
    by_name = {row["name"]: row for row in listed}
    assert [row["name"] for row in listed] == [m["name"] for m in
                                               http_json(http(a), "/v1/members")]
    assert by_name["a"]["http"] == http(a) and by_name["b"]["http"] == http(b)
    assert (by_name["a"]["keys"], by_name["b"]["keys"]) == (1, 1)
    assert (by_name["a"]["zone"], by_name["b"]["zone"]) == (None, "z2")
    assert {row["partitions"] for row in listed} == {32}
    assert {row["share"] for row in listed} == {0.5}
    for row in listed:
        assert (row["hints"], row["handoffs"], row["keys_error"]) == (0, 0, None)


def test_cli_status_member_not_answering_shows_question_mark(
        nodes: Callable[..., Node], status: Run) -> None:
    a = nodes("a")
    nodes("b", seed=a, http_tag="127.0.0.1:1")  # an address where nothing listens
    settled(a, 2, {"a", "b"})

    code, out, _ = status(a)
    assert code == 0  # the asked node answered: the table is shown
    rows = rows_of(out.split("\n\n")[0])
    assert rows["b"][6] == "?" and rows["a"][6] == "0"
    assert out.strip().splitlines()[-1] == "? = no answer from b"

    code, out, _ = status(a, "--json")
    b_row = next(row for row in json.loads(out) if row["name"] == "b")
    assert b_row["keys"] is None and b_row["keys_error"]


def test_cli_status_left_member_is_outside_the_ring(nodes: Callable[..., Node],
                                                    status: Run) -> None:
    a = nodes("a")
    nodes("b", seed=a)
    c = nodes("c", seed=a)
    settled(a, 3, {"a", "b", "c"})
    c.stop(leave=True)
    wait_until(lambda: len(http_json(http(a), "/v1/ring")["members"]) == 2,
               timeout_s=TIMEOUT_S, what="c to leave a's ring")

    code, out, _ = status(a)
    rows = rows_of(out)
    assert code == 0
    # Left: no partitions, and its (stopped) HTTP address is not even tried.
    assert rows["c"][0] == "left" and rows["c"][4:6] == ["-", "-"]
    assert rows["a"][4:6] == ["32", "(50.0%)"] and rows["b"][4:6] == ["32", "(50.0%)"]


def test_cli_status_unreachable_node_exits_1(status: Run,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["status", "--http", "127.0.0.1:1"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("dynago: error: cannot reach the admin API at 127.0.0.1:1")


def test_cli_status_help_says_keys_hints_and_handoffs_need_the_http_tag(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["status", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0
    assert "keys, hints and handoffs need members started with --tag http=HOST:PORT" in out
