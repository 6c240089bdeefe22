"""``dynago kv``: read and write a running node's key-value store (dynago.kv.client).

    dynago kv put KEY VALUE [--bucket B] [--w N]     # VALUE '-': read it from stdin
    dynago kv get KEY [--bucket B] [--r N]           # siblings: "VTAG<TAB>VALUE" a line
    dynago kv delete KEY [--bucket B] [--w N]
    dynago kv ls [--bucket B]                        # the bucket's keys, one a line
    dynago kv explain KEY [--bucket B]               # which nodes hold which versions

``--json`` prints the answer as JSON instead. Exit codes: 0 done; 1 not found, or the
node refused the request (its reason on stderr); 2 bad input or an unreachable node
(one line on stderr).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import TYPE_CHECKING, Any

from dynago.cli_kv_explain import render
from dynago.kv.model import DEFAULT_BUCKET

if TYPE_CHECKING:  # imported when a kv command runs, not by every `dynago` start
    from dynago.kv.client import ClientObject, KvClient, QuorumValue

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXPLAIN_TIMEOUT_S = 20.0
_WORDS = ("one", "quorum", "all", "default")


def quorum_argument(text: str) -> int | str:
    """argparse type for ``--r``/``--w``: an integer ≥ 1 or one of Riak's words."""
    if text in _WORDS:
        return text
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(
        f"expected an integer ≥ 1 or one of {', '.join(_WORDS)}, got {text!r}")


def add_parser(commands: Any, address_type: Any) -> None:
    """Register ``dynago kv`` on the CLI's subcommands."""
    kv = commands.add_parser("kv", help="get, put, delete and list keys of the KV store")
    kv.add_argument("action", choices=("get", "put", "delete", "ls", "explain"))
    kv.add_argument("key", nargs="?", help="the key (not for ls)")
    kv.add_argument("value", nargs="?", help="put: the value, or - to read it from stdin")
    kv.add_argument("--bucket", default=DEFAULT_BUCKET,
                    help=f"bucket (default {DEFAULT_BUCKET!r})")
    kv.add_argument("--r", type=quorum_argument, metavar="N",
                    help="get: replicas that must answer (or one, quorum, all)")
    kv.add_argument("--w", type=quorum_argument, metavar="N",
                    help="put/delete: replicas that must acknowledge (or one, quorum, all)")
    kv.add_argument("--http", type=address_type, default="127.0.0.1:8001",
                    metavar="HOST:PORT", help="HTTP API of the node to ask")
    kv.add_argument("--json", action="store_true", help="print the answer as JSON")


def _fail(message: str, code: int) -> int:
    print(f"dynago: error: {message}", file=sys.stderr)
    return code


def _object_json(obj: ClientObject) -> dict[str, Any]:
    return {"bucket": obj.bucket, "key": obj.key,
            "context": base64.b64encode(obj.context).decode() if obj.context else None,
            "siblings": [{"vtag": s.vtag, "content_type": s.content_type,
                          "value": s.value.decode(errors="replace"),
                          "last_modified": s.last_modified, "deleted": s.deleted,
                          "meta": dict(s.meta)} for s in obj.siblings]}


def _print_value(value: bytes) -> None:
    sys.stdout.buffer.write(value + (b"" if value.endswith(b"\n") else b"\n"))
    sys.stdout.flush()


def run_kv(args: argparse.Namespace) -> int:
    needs_key = args.action != "ls"
    if needs_key and not args.key:
        return _fail(f"kv {args.action} needs a KEY", EXIT_USAGE)
    if not needs_key and args.key:
        return _fail("kv ls takes no KEY (use --bucket)", EXIT_USAGE)
    if (args.action == "put") != (args.value is not None):
        return _fail("kv put needs KEY and VALUE (- for stdin); only put takes a VALUE",
                     EXIT_USAGE)
    if args.r is not None and args.action != "get":
        return _fail("--r is for kv get", EXIT_USAGE)
    if args.w is not None and args.action not in ("put", "delete"):
        return _fail("--w is for kv put and kv delete", EXIT_USAGE)
    from dynago.kv.client import KvClient, KvClientError

    try:
        # explain waits for every replica (up to the node's request timeout), then reads.
        with KvClient(args.http, timeout_s=EXPLAIN_TIMEOUT_S if args.action == "explain"
                      else 5.0) as client:
            return _run(client, args)
    except KvClientError as error:
        return _fail(f"the node refused: {error}", EXIT_NOT_FOUND)
    except OSError as error:
        return _fail(f"cannot reach the node at {args.http}: {error.strerror or error}",
                     EXIT_USAGE)


def _run(client: KvClient, args: argparse.Namespace) -> int:
    bucket: str = args.bucket
    if args.action == "get":
        r: QuorumValue = args.r
        obj = client.get(args.key, bucket=bucket, r=r)
        if obj is None:
            return _fail(f"{bucket}/{args.key} not found", EXIT_NOT_FOUND)
        if args.json:
            print(json.dumps(_object_json(obj), indent=2))
        elif len(obj.siblings) == 1:
            _print_value(obj.siblings[0].value)
        else:
            for sibling in obj.siblings:
                mark = " (deleted)" if sibling.deleted else ""
                _print_value(sibling.vtag.encode() + b"\t" + sibling.value + mark.encode())
        return 0
    if args.action == "put":
        value = sys.stdin.buffer.read() if args.value == "-" else args.value.encode()
        written = client.put(args.key, value, bucket=bucket, w=args.w,
                             content_type="application/octet-stream")
        if args.json:
            print(json.dumps(_object_json(written), indent=2))
        return 0
    if args.action == "delete":
        if not client.delete(args.key, bucket=bucket, w=args.w):
            return _fail(f"{bucket}/{args.key} not found", EXIT_NOT_FOUND)
        if args.json:
            print(json.dumps({"bucket": bucket, "key": args.key, "deleted": True}))
        return 0
    if args.action == "explain":
        answer = client.explain(args.key, bucket=bucket)
        print(json.dumps(answer, indent=2) if args.json else render(answer))
        return 0
    keys = client.keys(bucket)
    if args.json:
        print(json.dumps({"bucket": bucket, "keys": keys}))
    else:
        for key in keys:
            print(key)
    return 0
