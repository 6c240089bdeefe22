"""Member tags between real node processes: set by ``--tag``, changed at runtime through
the admin API (and ``dynago tags``), seen by the other nodes, filtered by the CLI and by
``/v1/members?tag=``; bad tags are refused with exit code 2 or HTTP 400 and change nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynago.launch import NodeProcess

pytestmark = pytest.mark.process


def _tags_of(observer: NodeProcess, name: str) -> dict[str, str] | None:
    for member in observer.members_v1():
        if member["name"] == name:
            tags: dict[str, str] = member["tags"]
            return tags
    return None


def _two_nodes(cluster: Any) -> tuple[NodeProcess, NodeProcess]:
    a = cluster("a", extra_args=["--tag", "role=kv", "--tag", "zone=a"])
    b = cluster("b", seeds=[a.address], extra_args=["--tag", "role=web"])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]), "a and b to converge")
    return a, b


def test_tags_from_flags_are_seen_by_other_nodes(cluster: Any) -> None:
    a, b = _two_nodes(cluster)
    cluster.wait(lambda: _tags_of(b, "a") == {"role": "kv", "zone": "a"}, "b to see a's tags")
    cluster.wait(lambda: _tags_of(a, "b") == {"role": "web"}, "a to see b's tags")


def test_tag_change_through_the_admin_api_reaches_other_nodes(
    cluster: Any, dynago_cli: Any, tmp_path: Any
) -> None:
    """``dynago tags`` (POST /v1/tags, with the admin token) changes a running node's tags;
    the node raises its incarnation and the change spreads to the others."""
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    a = cluster("a", extra_args=["--tag", "role=kv", "--admin-token-file", str(token)])
    b = cluster("b", seeds=[a.address])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]), "a and b to converge")

    refused = dynago_cli(["tags", "--http", a.http, "zone=b"])
    assert refused.returncode == 1 and "401" in refused.stderr, refused

    result = dynago_cli(["tags", "--http", a.http, "--admin-token-file", str(token),
                         "zone=b", "--remove", "role"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "a (incarnation 1): zone=b"
    cluster.wait(lambda: _tags_of(b, "a") == {"zone": "b"}, "b to see a's new tags")
    record = cluster.record_of(b, "a")
    assert record is not None and (record["status"], record["incarnation"]) == ("alive", 1)


def test_members_filtered_by_tag_in_the_cli_and_over_http(cluster: Any, dynago_cli: Any) -> None:
    a, b = _two_nodes(cluster)
    cluster.wait(lambda: _tags_of(a, "b") == {"role": "web"}, "a to see b's tags")

    table = dynago_cli(["members", "--http", a.http, "--tag", "role=kv"])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "STATUS", "INCARNATION", "TAGS", "PARTITIONS",
                                "SINCE"]
    assert [line.split()[:5] for line in lines[1:]] == [
        ["a", a.address, "alive", "0", "role=kv,zone=a"]]

    listed = dynago_cli(["members", "--http", a.http, "--json", "--tag", "role"])
    assert [m["name"] for m in json.loads(listed.stdout)] == ["a", "b"]

    status, body = cluster.http_status(a.http, "/v1/members?tag=role=web")
    assert status == 200 and [m["name"] for m in json.loads(body)] == ["b"]


@pytest.mark.parametrize("tag", ["noequals", "bad key=1", "k=" + "v" * 600, "=v"])
def test_node_with_a_bad_tag_exits_2_with_one_line(dynago_cli: Any, tag: str) -> None:
    result = dynago_cli(["node", "--bind", "127.0.0.1:0", "--tag", tag])
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("dynago: error:")


def test_node_with_a_tag_key_twice_exits_2(dynago_cli: Any) -> None:
    result = dynago_cli(["node", "--bind", "127.0.0.1:0", "--tag", "a=1", "--tag", "a=2"])
    assert result.returncode == 2 and "more than once" in result.stderr, result


def test_bad_tag_change_is_refused_and_changes_nothing(cluster: Any, dynago_cli: Any) -> None:
    a = cluster("a", extra_args=["--tag", "role=kv"])

    result = dynago_cli(["tags", "--http", a.http, "bad key=1"])
    assert result.returncode == 2 and result.stderr.startswith("dynago: error:"), result
    status, body = cluster.http_status(a.http, "/v1/tags", method="POST",
                                       body=json.dumps({"zone": "x" * 600}).encode())
    assert status == 400 and b"longer than 512 bytes" in body
    status, body = cluster.http_status(a.http, "/v1/tags", method="PUT", body=b"not json")
    assert status == 400
    members = dynago_cli(["members", "--http", a.http, "--tag", "a b"])
    assert members.returncode == 2, members

    record = cluster.record_of(a, "a")
    assert record is not None
    assert (record["incarnation"], record["tags"]) == (0, {"role": "kv"})
