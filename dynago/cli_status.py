"""``dynago status``: the cluster at a glance, one line per member, like ``nodetool status``.

Asks one node (``--http``) for its members (``/v1/members``), its name (``/healthz``)
and its ring (``/v1/ring``), then every live member it can reach for its key count
(``kv_store_keys`` of that member's own ``/v1/stats``). A member's HTTP address is not
part of its record: ``dynago status`` uses the member's ``http`` tag (start nodes with
``--tag http=HOST:PORT``, an address this command can reach), and for the node asked,
``--http`` itself. Columns:

* STATUS, NAME, ADDRESS, ZONE (the ``zone`` tag, ``-`` without one);
* PARTITIONS: partitions of the asked node's ring the member owns, with its share;
  ``-`` outside the ring (a member that left), blank for all when the node has no ring;
* KEYS: ``kv_store_keys`` of the member; ``-`` when it has no ``http`` tag or is not
  live, ``?`` when its HTTP address did not answer;
* HINTS: ``kv_hints_held`` of the member (hints it holds for other nodes, handed back
  once they are alive); ``-`` / ``?`` like KEYS, or when the member has no hinted handoff;
* HANDOFFS: ownership handoff transfers the member has not finished
  (``kv_handoffs_pending`` of its ``/v1/stats``); ``-`` / ``?`` like KEYS.

``--json`` prints the same as a list of objects (``null`` for ``-`` and ``?``, with
``keys_error`` saying why a count is missing). Exit 0 once the asked node answered
(members that did not answer are shown, not an error), 1 when it could not be reached.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dynago.cli_node import fail

HTTP_TAG = "http"
"""The member tag that gives the address of its HTTP API (``--tag http=HOST:PORT``)."""

ZONE_TAG = "zone"
STATS_TIMEOUT_S = 2.0
"""How long one member's ``/v1/stats`` may take before its keys show ``?``."""
MAX_PARALLEL = 16

HELP = ("the cluster at a glance: status, address, zone, partitions and keys of every "
        "member (keys, hints and handoffs need members started with "
        "--tag http=HOST:PORT)")


def add_parser(commands: Any, address: Callable[[str], str]) -> None:
    """Register ``dynago status`` on the ``commands`` subparsers of dynago.cli."""
    status = commands.add_parser("status", help=HELP, description=HELP)
    status.add_argument("--http", type=address, default="127.0.0.1:8001", metavar="HOST:PORT",
                        help="admin API of the node to ask")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _fetch(address: str, path: str, timeout_s: float = 5.0) -> Any:
    from dynago.launch import http_json

    return http_json(address, path, timeout_s=timeout_s)


MemberCounts = tuple[int | None, int | None, int | None, str | None]
"""``(keys, hints held, handoffs pending, None)`` of one member, or ``(None, None, None,
reason)`` when its ``/v1/stats`` could not be read; hints and handoffs are None when the
member does not report them."""


def _count(stats: dict[str, Any], name: str) -> int | None:
    value = stats.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def member_counts(address: str) -> MemberCounts:
    """The KV counts of the node at ``address``, from one ``/v1/stats``."""
    try:
        stats = _fetch(address, "/v1/stats", timeout_s=STATS_TIMEOUT_S)
    except urllib.error.URLError as error:
        return None, None, None, str(getattr(error, "reason", error))
    except (OSError, ValueError) as error:
        return None, None, None, str(error) or type(error).__name__
    if not isinstance(stats, dict) or _count(stats, "kv_store_keys") is None:
        return None, None, None, "no kv_store_keys in its /v1/stats"
    return (_count(stats, "kv_store_keys"), _count(stats, "kv_hints_held"),
            _count(stats, "kv_handoffs_pending"), None)


def status_rows(members: list[dict[str, Any]], ring: dict[str, Any] | None,
                self_name: str | None, self_http: str,
                keys_of: Callable[[str], MemberCounts] = member_counts,
                ) -> list[dict[str, Any]]:
    """One ``dynago status --json`` object per member, in the order of ``members``.

    Args:
        members: ``/v1/members`` of the asked node.
        ring: its ``/v1/ring`` (None when it has none).
        self_name: the asked node's own name (its keys come from ``self_http``).
        self_http: the HTTP address the asked node was reached at.
        keys_of: reads one member's key, hint and handoff counts (parallel calls, one
            per member).
    """
    owned = ({m["name"]: (int(m["partitions"]), float(m["share"])) for m in ring["members"]}
             if ring is not None else None)

    def http_of(member: dict[str, Any]) -> str | None:
        if member["status"] not in ("alive", "suspect"):
            return None
        if member["name"] == self_name:
            return self_http
        tag = member.get("tags", {}).get(HTTP_TAG)
        return tag if isinstance(tag, str) and tag else None

    targets = [http_of(m) for m in members]
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        counts = list(pool.map(lambda a: keys_of(a) if a else (None, None, None, None),
                               targets))
    rows = []
    for member, http, (keys, hints, pending, reason) in zip(members, targets, counts,
                                                             strict=True):
        share = owned.get(member["name"]) if owned is not None else None
        rows.append({
            "name": member["name"], "address": member["address"],
            "status": member["status"], "zone": member.get("tags", {}).get(ZONE_TAG),
            "http": http,
            "partitions": share[0] if share else None, "share": share[1] if share else None,
            "keys": keys, "keys_error": reason, "hints": hints, "handoffs": pending,
        })
    return rows


def format_status(rows: list[dict[str, Any]], with_ring: bool = True) -> str:
    """The ``dynago status`` table of ``status_rows``."""
    header = ("STATUS", "NAME", "ADDRESS", "ZONE", "PARTITIONS", "KEYS", "HINTS", "HANDOFFS")
    lines = [header]
    for row in rows:
        if not with_ring:
            partitions = ""
        elif row["partitions"] is None:
            partitions = "-"
        else:
            partitions = f"{row['partitions']} ({row['share']:.1%})"
        keys = "?" if row["keys_error"] else "-"
        if row["keys"] is not None:
            keys = str(row["keys"])
        hints = handoffs = "?" if row["keys_error"] else "-"
        if row.get("hints") is not None:
            hints = str(row["hints"])
        if row.get("handoffs") is not None:
            handoffs = str(row["handoffs"])
        lines.append((row["status"], row["name"], row["address"], row["zone"] or "-",
                      partitions, keys, hints, handoffs))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
                     for line in lines)


def fetch_ring(address: str) -> dict[str, Any] | None:
    """The node's ``/v1/ring``, or None when it has none (404: no KV store), answers an
    error or sends what is not a ring document (as ``dynago members`` reads it). Raises
    OSError (URLError) when the node cannot be reached."""
    try:
        ring = _fetch(address, "/v1/ring")
    except urllib.error.HTTPError:
        return None
    except ValueError:  # not JSON
        return None
    members = ring.get("members") if isinstance(ring, dict) else None
    if not isinstance(members, list) or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str)
            and isinstance(m.get("partitions"), int)
            and isinstance(m.get("share"), int | float) for m in members):
        return None
    return dict(ring)


def run_status(args: argparse.Namespace) -> int:
    try:
        members = _fetch(args.http, "/v1/members")
        health = _fetch(args.http, "/healthz")
        ring = fetch_ring(args.http)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return fail(f"cannot reach the admin API at {args.http}: {reason}", 1)
    self_name = health.get("name") if isinstance(health, dict) else None
    rows = status_rows(members, ring, self_name, args.http)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_status(rows, with_ring=ring is not None))
        missing = [row["name"] for row in rows if row["keys_error"]]
        if missing:
            print(f"\n? = no answer from {', '.join(missing)}")
    return 0
