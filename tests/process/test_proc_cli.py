"""The ``dynago`` command line, run as a real process: usage errors and ports in use end
with exit code 2 and one line on stderr; ``dynago members`` prints a table or JSON;
``dynago demo`` runs a 3-node cluster to completion, writes a key through one node and
reads it from another, and leaves no node behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.process

Cli = Callable[..., subprocess.CompletedProcess[str]]

DEMO_TIMEOUT_S = 60.0


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    return (f"exit {result.returncode}\n--- stdout ---\n{result.stdout}"
            f"--- stderr ---\n{result.stderr}")


@pytest.mark.parametrize(
    "args",
    [
        ["node", "--bind", "nonsense"],
        ["node", "--bind", "127.0.0.1:99999"],
        ["node", "--bind", "127.0.0.1:0", "--seed", "bad"],
    ],
    ids=["bind-without-port", "bind-port-out-of-range", "seed-without-port"],
)
def test_cli_node_bad_address_exits_2_with_one_line(dynago_cli: Cli, args: list[str]) -> None:
    """A malformed --bind or --seed ends ``dynago node`` with exit code 2 and exactly one
    line on stderr, ``dynago: error: ...``, no traceback and nothing on stdout."""
    result = dynago_cli(args, timeout_s=15)

    assert result.returncode == 2, _describe(result)
    assert "Traceback" not in result.stderr, _describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynago: error:"), _describe(result)
    assert result.stdout == "", _describe(result)


def _port_in_use_args(kind: str, holder: Any) -> list[str]:
    """``dynago node`` arguments whose gRPC (or HTTP) address is ``holder``'s."""
    if kind == "grpc":
        return ["node", "--bind", holder.address, "--preset", "local"]
    return ["node", "--bind", "127.0.0.1:0", "--http", holder.http, "--preset", "local"]


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_cli_node_port_in_use_exits_2_with_one_line(
    cluster: Any, dynago_cli: Cli, kind: str
) -> None:
    """``dynago node`` on a gRPC (or admin HTTP) port that a running node holds exits 2
    with exactly one line on stderr, ``dynago: error: cannot bind ...``: no traceback, no
    gRPC or log line before it, no ready line; the running node is unharmed."""
    holder = cluster("holder")

    result = dynago_cli(_port_in_use_args(kind, holder), timeout_s=15)

    assert result.returncode == 2, cluster.report(_describe(result))
    assert "Traceback" not in result.stderr, cluster.report(_describe(result))
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynago: error: cannot bind"), \
        cluster.report(_describe(result))
    assert "ready" not in result.stdout, cluster.report(_describe(result))
    assert holder.members() == [holder.address], cluster.report("the holder was harmed")


def _two_nodes(cluster: Any) -> list[Any]:
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    nodes = [a, b]
    cluster.wait(lambda: cluster.all_list(nodes, [n.address for n in nodes]),
                 "the two nodes to converge")
    return nodes


def _two_kv_nodes(cluster: Any) -> list[Any]:
    """Two nodes that list each other and whose rings both hold both (32 partitions each)."""
    nodes = _two_nodes(cluster)
    cluster.wait(lambda: all(len(_ring(n)["members"]) == 2 for n in nodes),
                 "both rings to hold both nodes")
    return nodes


def _ring(node: Any) -> Any:
    from dynago.launch import http_json

    return http_json(node.http, "/v1/ring")


def test_cli_members_prints_table(cluster: Any, dynago_cli: Cli) -> None:
    """``dynago members --http ADDR`` exits 0 and prints a header line NAME ADDRESS STATUS
    INCARNATION PARTITIONS SINCE and then one row per member: name, address, status,
    incarnation, its partitions of the node's ring (``32 (50.0%)`` each of two), RFC 3339
    time."""
    a, b = _two_kv_nodes(cluster)

    result = dynago_cli(["members", "--http", a.http], timeout_s=15)

    assert result.returncode == 0, cluster.report(_describe(result))
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines and lines[0].split() == ["NAME", "ADDRESS", "STATUS", "INCARNATION",
                                          "PARTITIONS", "SINCE"], _describe(result)
    rows = [line.split() for line in lines[1:]]
    assert sorted(row[:6] for row in rows) == [
        ["a", a.address, "alive", "0", "32", "(50.0%)"],
        ["b", b.address, "alive", "0", "32", "(50.0%)"],
    ], _describe(result)
    for row in rows:
        assert row[6].endswith("Z"), _describe(result)


def test_cli_members_json_lists_member_objects(cluster: Any, dynago_cli: Cli) -> None:
    """``dynago members --json`` exits 0 and prints JSON: a list of objects with name,
    address, status, incarnation and since, the same as the node's /v1/members, plus
    each member's ``partitions`` and ``share`` of the node's ring."""
    a, b = _two_kv_nodes(cluster)

    result = dynago_cli(["members", "--http", b.http, "--json"], timeout_s=15)

    assert result.returncode == 0, cluster.report(_describe(result))
    members = json.loads(result.stdout)
    assert isinstance(members, list) and all(isinstance(m, dict) for m in members), members
    assert sorted((m["name"], m["address"], m["status"], m["incarnation"], m["partitions"],
                   m["share"]) for m in members) \
        == [("a", a.address, "alive", 0, 32, 0.5), ("b", b.address, "alive", 0, 32, 0.5)], \
        members
    plain = [{k: v for k, v in m.items() if k not in ("partitions", "share")}
             for m in members]
    assert plain == b.members_v1(), cluster.report(f"--json printed {members}")


@pytest.mark.parametrize("command", ["members", "leave"])
def test_cli_unreachable_admin_api_one_line_error(dynago_cli: Cli, command: str) -> None:
    """``dynago members`` / ``dynago leave`` against an address where nothing listens
    exits non-zero with one ``dynago: error:`` line on stderr and no traceback."""
    result = dynago_cli([command, "--http", "127.0.0.1:1"], timeout_s=15)

    assert result.returncode != 0, _describe(result)
    assert "Traceback" not in result.stderr, _describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynago: error:"), _describe(result)


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts a command in a new process group; at teardown kills it by its PID and
    whatever it left in its group (the group id is that PID)."""
    started: list[subprocess.Popen[str]] = []

    def start(args: list[str]) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5)


def test_cli_demo_runs_to_completion(spawn: Callable[..., subprocess.Popen[str]]) -> None:
    """``dynago demo`` starts 3 nodes, says "all 3 nodes list all 3 members", writes a
    key through node-1 and reads it from node-3, stops them and exits 0, leaving no
    process behind: nothing remains in its process group."""
    demo = spawn([sys.executable, "-m", "dynago", "demo"])
    try:
        out, err = demo.communicate(timeout=DEMO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dynago demo still running after {DEMO_TIMEOUT_S} s")
    described = f"exit {demo.returncode}\n--- stdout ---\n{out}--- stderr ---\n{err}"

    assert demo.returncode == 0, described
    assert "all 3 nodes list all 3 members" in out, described
    assert re.search(r"web page: http://127\.0\.0\.1:\d+/ui", out), described
    # It wrote a key through node-1 and read it back from node-3.
    assert "wrote demo-key='hello from node-1' through node-1" in out, described
    assert "read demo-key='hello from node-1' from node-3 (node: node-" in out, described
    assert "PARTITIONS" in out, described
    assert out.rstrip().endswith("done"), described
    assert "Traceback" not in err, described
    # Its nodes were started in its process group: once it exits, none may remain.
    with pytest.raises(ProcessLookupError):
        os.killpg(demo.pid, 0)
