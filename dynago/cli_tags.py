"""``dynago tags``: show or change a running node's tags through its admin API.

    dynago tags --http HOST:PORT                          # show
    dynago tags --http HOST:PORT zone=b role=kv           # set these keys (others kept)
    dynago tags --http HOST:PORT --remove zone            # remove a key
    dynago tags --http HOST:PORT --replace role=kv        # exactly these tags

Changes are ``POST /v1/tags`` (a merge patch) or, with ``--replace``, ``PUT /v1/tags``;
they need the admin token if the node has one (``--admin-token-file`` or
``DYNAGO_ADMIN_TOKEN``). Bad tags: one line on stderr, exit 2, and nothing changes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
from typing import Any

from dynago.core.tags import TagError, key_problem, parse_tag

EXIT_USAGE = 2


def tag_argument(text: str) -> tuple[str, str]:
    """argparse type for ``KEY=VALUE``."""
    try:
        return parse_tag(text)
    except TagError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def key_argument(text: str) -> str:
    """argparse type for a tag key."""
    problem = key_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_parser(commands: Any, address_type: Any) -> None:
    """Register ``dynago tags`` on the CLI's subcommands."""
    tags = commands.add_parser("tags", help="show or change a node's tags")
    tags.add_argument("tags", nargs="*", type=tag_argument, metavar="KEY=VALUE",
                      help="tags to set (other keys are kept unless --replace)")
    tags.add_argument("--remove", action="append", default=[], type=key_argument,
                      metavar="KEY", help="remove this tag (repeatable)")
    tags.add_argument("--replace", action="store_true",
                      help="the node's tags become exactly KEY=VALUE...")
    tags.add_argument("--http", type=address_type, default="127.0.0.1:8001",
                      metavar="HOST:PORT", help="admin API of the node")
    tags.add_argument("--admin-token-file", metavar="PATH",
                      help="file holding the node's admin token (or set DYNAGO_ADMIN_TOKEN)")
    tags.add_argument("--json", action="store_true", help="print the answer as JSON")


def _fail(message: str, code: int) -> int:
    print(f"dynago: error: {message}", file=sys.stderr)
    return code


def run_tags(args: argparse.Namespace) -> int:
    from dynago.launch import http_json

    keys = [key for key, _ in args.tags]
    if len(set(keys)) != len(keys):
        return _fail("a tag key is given more than once", EXIT_USAGE)
    if args.replace and args.remove:
        return _fail("--replace and --remove do not go together", EXIT_USAGE)
    if set(keys) & set(args.remove):
        return _fail("a key is both set and removed", EXIT_USAGE)
    token = os.environ.get("DYNAGO_ADMIN_TOKEN")
    if args.admin_token_file:
        try:
            with open(args.admin_token_file) as handle:
                token = handle.read().strip()
        except OSError as error:
            return _fail(f"cannot read admin token file {args.admin_token_file}: "
                         f"{error.strerror}", EXIT_USAGE)
    patch: dict[str, str | None] = dict(args.tags)
    patch.update({key: None for key in args.remove})
    try:
        if args.replace:
            answer = http_json(args.http, "/v1/tags", method="PUT", body=patch, token=token,
                               timeout_s=5.0)
        elif patch:
            answer = http_json(args.http, "/v1/tags", method="POST", body=patch, token=token,
                               timeout_s=5.0)
        else:
            answer = http_json(args.http, "/v1/tags", timeout_s=5.0)
    except urllib.error.HTTPError as error:
        try:
            reason = json.loads(error.read().decode()).get("error", "")
        except ValueError:
            reason = ""
        return _fail(f"{args.http} answered {error.code}: {reason}",
                     EXIT_USAGE if error.code == 400 else 1)
    except (OSError, urllib.error.URLError, ValueError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        return _fail(f"cannot reach the admin API at {args.http}: {reason}", 1)
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        shown = " ".join(f"{k}={v}" for k, v in sorted(answer["tags"].items())) or "(no tags)"
        print(f"{answer['name']} (incarnation {answer['incarnation']}): {shown}")
    return 0
