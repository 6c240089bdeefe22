"""Command line: ``dynago node | members | status | leave | demo | tags | explain``.
Parses, wires, waits for a signal.

Bad flags, bad addresses and ports in use end with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import threading
import time
import urllib.error
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import quote

from dynago import cli_kv, cli_status, cli_tags
from dynago.cli_demo import demo_key_value
from dynago.cli_node import EXIT_USAGE, run_node
from dynago.cli_node import fail as _fail
from dynago.cli_node import read_secret as _read_secret
from dynago.cli_status import fetch_ring
from dynago.config import DEFAULT_CLUSTER
from dynago.core.address import AddressError, parse_address
from dynago.core.tags import TagError, parse_filter
from dynago.ops import config_file
from dynago.transport.resolve import parse_seed


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"dynago: error: {message}\n")


def _address(text: str) -> str:
    try:
        parse_address(text)
    except AddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _bind_address(text: str) -> str:
    try:
        parse_address(text, allow_port_zero=True)
    except AddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _seed(text: str) -> str:
    try:
        parse_seed(text)
    except AddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _http_bind(text: str) -> str:
    """``--http``: HOST:PORT, or a bare PORT meaning 127.0.0.1:PORT (loopback by default)."""
    if text.isascii() and text.isdigit():
        text = f"127.0.0.1:{text}"
    return _bind_address(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dynago", description="A leaderless cluster membership node.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    node = commands.add_parser("node", help="run a cluster node")
    # Defaults of settings are None here: the config file, DYNAGO_* variables and the
    # preset fill them in (dynago.ops.config_file), flags given win.
    node.add_argument("--bind", type=_bind_address, metavar="HOST:PORT",
                      help="address for node-to-node gRPC (port 0: any free port); required "
                           "here, in DYNAGO_BIND or in the config file")
    node.add_argument("--seed", action="append", type=_seed, metavar="HOST:PORT",
                      help="a running member to join through, or dns:NAME:PORT for every "
                           "address of a DNS name (repeatable)")
    node.add_argument("--name", help="node name (default: the bound address)")
    node.add_argument("--http", type=_http_bind, metavar="[HOST:]PORT",
                      help="address of the HTTP admin API; a bare port means 127.0.0.1 "
                           "(default: no admin API)")
    node.add_argument("--admin-token-file", metavar="PATH",
                      help="requests that change the node (POST) need 'Authorization: "
                           "Bearer <token in this file>'")
    node.add_argument("--cluster-key-file", metavar="PATH",
                      help="shared cluster keys, base64, one per line, first is used: "
                           "peers that cannot prove they hold one are refused")
    node.add_argument("--tls-cert", metavar="PEM", help="this node's certificate (mutual TLS)")
    node.add_argument("--tls-key", metavar="PEM", help="this node's private key")
    node.add_argument("--tls-ca", metavar="PEM", help="the cluster's CA certificate")
    node.add_argument("--tls-server-name", metavar="NAME",
                      help="DNS name every node certificate carries (default 'dynago')")
    node.add_argument("--cluster",
                      help=f"cluster name; nodes of other clusters are refused "
                           f"(default {DEFAULT_CLUSTER!r})")
    node.add_argument("--preset", choices=("lan", "local", "wan"),
                      help="timing preset (default lan; local is faster, for one machine; "
                           "wan is patient, for members across a wide-area network)")
    node.add_argument("--enable-fault-injection", action="store_true", default=None,
                      help="serve /v1/faults on the admin API to drop, delay and cut traffic "
                           "(for tests; never in production)")
    node.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    node.add_argument("--tag", action="append", type=cli_tags.tag_argument,
                      metavar="KEY=VALUE", help="a tag of this node (repeatable; or "
                      "tags = {KEY = \"VALUE\"} in the config file, DYNAGO_TAGS=K=V,K=V)")
    config_file.add_arguments(node)

    members = commands.add_parser("members", help="list the members a node knows")
    members.add_argument("--http", type=_address, default="127.0.0.1:8001",
                         metavar="HOST:PORT", help="admin API of the node to ask")
    members.add_argument("--json", action="store_true", help="print JSON instead of a table")
    members.add_argument("--tag", action="append", default=[], type=_tag_filter,
                         metavar="KEY=VALUE|KEY", help="only members with this tag (repeatable)")
    members.add_argument("--watch", action="store_true",
                         help="a live table that redraws as members change (Ctrl-C quits)")
    members.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                         help="--watch: polling period when the node has no event stream")

    leave = commands.add_parser("leave", help="make a node leave the cluster and stop")
    leave.add_argument("--http", type=_address, default="127.0.0.1:8001", metavar="HOST:PORT")
    leave.add_argument("--admin-token-file", metavar="PATH",
                       help="file holding the node's admin token (or set DYNAGO_ADMIN_TOKEN)")

    demo = commands.add_parser("demo", help="run a local 3-node cluster and show its members")
    demo.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    demo.add_argument("--keep", action="store_true",
                      help="keep the cluster running until Ctrl-C")
    sim = commands.add_parser(
        "sim", help="simulate N nodes' membership cores on a virtual clock (no network)")
    from dynago.sim.args import add_arguments as add_sim_arguments

    add_sim_arguments(sim)

    cli_tags.add_parser(commands, _address)
    cli_kv.add_parser(commands, _address)
    cli_status.add_parser(commands, _address)
    explain = commands.add_parser("explain", help="why a member is in its state: its history")
    explain.add_argument("name", help="member name")
    explain.add_argument("--http", type=_address, default="127.0.0.1:8001", metavar="HOST:PORT")
    explain.add_argument("--json", action="store_true", help="print the history as JSON")
    return parser


def _tag_filter(text: str) -> tuple[str, str | None]:
    try:
        return parse_filter(text)
    except TagError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"node": run_node, "members": run_members, "leave": run_leave,
               "demo": run_demo, "sim": run_sim, "tags": cli_tags.run_tags,
               "explain": _run_explain, "kv": cli_kv.run_kv,
               "status": cli_status.run_status}[args.command]
    return handler(args)


def run_sim(args: argparse.Namespace) -> int:
    from dynago.sim.command import main as sim_main

    return sim_main(args)


# ---------------------------------------------------------------- members / leave


def _error_reason(error: Exception) -> str:
    from dynago.launch import error_reason  # imported late: `dynago node` starts faster

    return error_reason(error)


def _fetch(address: str, path: str, method: str = "GET", token: str | None = None) -> Any:
    from dynago.launch import http_json

    return http_json(address, path, method=method, timeout_s=5.0, token=token)


def format_table(members: list[dict[str, Any]],
                 ring: dict[str, Any] | None = None) -> str:
    """The ``dynago members`` table (a TAGS column when any member has tags; a PARTITIONS
    column, ``12 (18.8%)``, when ``ring`` is the node's ``/v1/ring``: blank for members
    outside the ring)."""
    with_tags = any(m.get("tags") for m in members)
    owned = _ring_shares(ring)
    header: tuple[str, ...] = ("NAME", "ADDRESS", "STATUS", "INCARNATION")
    if with_tags:
        header += ("TAGS",)
    if owned is not None:
        header += ("PARTITIONS",)
    header += ("SINCE",)
    rows = [header]
    for m in members:
        row: tuple[str, ...] = (m["name"], m["address"], m["status"], str(m["incarnation"]))
        if with_tags:
            row += (",".join(f"{k}={v}" for k, v in sorted(m["tags"].items())) or "-",)
        if owned is not None:
            share = owned.get(m["name"])
            row += (f"{share[0]} ({share[1]:.1%})" if share is not None else "",)
        rows.append(row + (_since(m["since"]),))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    )


def _ring_shares(ring: dict[str, Any] | None) -> dict[str, tuple[int, float]] | None:
    """Member name -> (partitions owned, share) of a ``/v1/ring`` document."""
    if ring is None:
        return None
    return {m["name"]: (int(m["partitions"]), float(m["share"])) for m in ring["members"]}


def with_ring(members: list[dict[str, Any]], ring: dict[str, Any] | None,
              ) -> list[dict[str, Any]]:
    """``members`` with ``partitions`` and ``share`` (None outside the ring) when ``ring``
    is given (``dynago members --json``); unchanged without one."""
    owned = _ring_shares(ring)
    if owned is None:
        return members
    return [{**m, "partitions": owned[m["name"]][0] if m["name"] in owned else None,
             "share": owned[m["name"]][1] if m["name"] in owned else None}
            for m in members]


def _since(stamp: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    age = (datetime.datetime.now(datetime.UTC) - moment).total_seconds()
    return f"{stamp} ({_age(age)} ago)"


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def run_members(args: argparse.Namespace) -> int:
    if args.watch:
        from dynago.watch import run_watch

        if not 0.1 <= args.interval <= 3600:
            return _fail("--interval must be between 0.1 and 3600 seconds")
        return run_watch(args, args.tag)
    query = "&".join(f"tag={quote(k if v is None else f'{k}={v}', safe='=')}"
                     for k, v in args.tag)
    try:
        members = _fetch(args.http, "/v1/members" + (f"?{query}" if query else ""))
        ring = fetch_ring(args.http)
    except (OSError, urllib.error.URLError, ValueError) as error:
        return _fail(f"cannot reach the admin API at {args.http}: {_error_reason(error)}", 1)
    if args.json:
        print(json.dumps(with_ring(members, ring), indent=2))
    else:
        print(format_table(members, ring))
    return 0


def run_leave(args: argparse.Namespace) -> int:
    try:
        token = (_read_secret(args.admin_token_file, "admin token")
                 if args.admin_token_file else os.environ.get("DYNAGO_ADMIN_TOKEN"))
    except argparse.ArgumentTypeError as error:
        return _fail(str(error))
    try:
        _fetch(args.http, "/v1/leave", method="POST", token=token)
    except (OSError, urllib.error.URLError, ValueError) as error:
        return _fail(f"cannot reach the admin API at {args.http}: {_error_reason(error)}", 1)
    print(f"node at {args.http} is leaving")
    return 0


def _run_explain(args: argparse.Namespace) -> int:
    from dynago.explain import run_explain

    return run_explain(args)




# ---------------------------------------------------------------- demo


def run_demo(args: argparse.Namespace) -> int:
    from dynago.launch import LaunchError, NodeProcess, wait_until

    if not 1 <= args.nodes <= 20:
        return _fail("--nodes must be between 1 and 20")
    nodes: list[NodeProcess] = []
    try:
        print(f"starting {args.nodes} nodes on 127.0.0.1 (any free ports)...")
        for i in range(args.nodes):
            seed = ["--seed", nodes[0].address] if nodes else []
            node = NodeProcess(["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                "--preset", "local", "--cluster", "demo",
                                "--name", f"node-{i + 1}", *seed])
            nodes.append(node)
            node.wait_ready()
            print(f"  node-{i + 1}: gRPC {node.address}, admin http://{node.http}")
        last_start = nodes[-1].started_at
        expected = sorted(node.address for node in nodes)
        wait_until(lambda: all(sorted(n.members()) == expected for n in nodes),
                   timeout_s=20, what="every node to list every node")
        took = time.monotonic() - last_start
        print(f"all {args.nodes} nodes list all {args.nodes} members "
              f"({took:.2f} s after the last node was started)")
        print(f"web page: http://{nodes[0].http}/ui"
              f"{'' if args.keep else ' (dynago demo --keep leaves it up)'}\n")
        print(f"$ dynago members --http {nodes[0].http}")
        try:
            ring = fetch_ring(nodes[0].http)
        except OSError:
            ring = None
        print(format_table(nodes[0].members_v1(), ring))
        print(f"\n$ curl {nodes[-1].http}/members\n{json.dumps(nodes[-1].members())}")
        print()
        demo_key_value(nodes[0], nodes[-1], nodes=nodes)
        if args.keep:
            print("\nthe cluster keeps running; press Ctrl-C to stop it")
            stop = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            while not stop.wait(1.0):
                pass
        print("\nstopping the nodes (each announces its leave)...")
    except LaunchError as error:
        return _fail(str(error), 1)
    finally:
        for node in reversed(nodes):
            node.terminate()
            node.close()
    print("done")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
