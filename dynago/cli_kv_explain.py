"""``dynago kv explain KEY``: which nodes hold which versions of a key, and how they got
them (``GET /v1/kv/explain``, dynago.kv.explain).

A readable report, one block per node (preference list first)::

    check/k  partition 12 of 64  preference list n0, n1, n2  (asked n0, n1, n2)
    merged: 1 sibling  clock n0:2
    NODE  ROLE     STATUS     BEHIND  SIBLINGS
    n0    primary  holds      no      n0:2 Xy3...  "hello"
      2026-12-03T16:02:01.123Z  coordinated
    ...

``--json`` prints the node's whole answer instead.
"""

from __future__ import annotations

import datetime
from typing import Any

_VALUE_SHOWN = 24


def _when(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _sibling(s: dict[str, Any]) -> str:
    dot = f"{s['dot'][0]}:{s['dot'][1]}"
    if s.get("deleted"):
        return f"{dot} {s['vtag']} (deleted)"
    value = s["value"] if s.get("value_encoding") == "utf-8" else f"<{s['value_bytes']} bytes>"
    if len(value) > _VALUE_SHOWN:
        value = value[:_VALUE_SHOWN] + "…"
    return f"{dot} {s['vtag']} {value!r}"


def _siblings(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return "-"
    return ", ".join(_sibling(s) for s in obj["siblings"]) or "(no versions)"


def _behind(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "no")


def render(answer: dict[str, Any]) -> str:
    """The readable report of one ``/v1/kv/explain`` answer."""
    lines = [f"{answer['bucket']}/{answer['key']}  partition {answer['partition']} of "
             f"{answer['partitions']}  preference list "
             f"{', '.join(answer['preference_list']) or '-'}"
             + (f"  (asked {', '.join(answer['asked'])})" if answer.get("asked") else "")]
    merged = answer.get("merged")
    if "nodes" not in answer:
        lines.append(f"per-node copies: {answer.get('nodes_error', 'not given by this node')}")
    elif merged is None:
        lines.append("merged: no node holds the key")
    else:
        clock = " ".join(f"{r}:{c}" for r, c in merged["clock"])
        count = len(merged["siblings"])
        lines.append(f"merged: {count} sibling{'s' * (count != 1)}  clock {clock}")
    rows = [("NODE", "ROLE", "STATUS", "BEHIND", "SIBLINGS")]
    details: list[list[str]] = []
    for node in answer.get("nodes", []):
        rows.append((node["node"], "primary" if node["primary"] else "other",
                     node["status"], _behind(node["behind"]), _siblings(node["object"])))
        extra = [f"  {_when(e['at'])}  {e['how']}" + (f" from {e['peer']}" if e["peer"] else "")
                 + ("  (removed)" if not e["size"] else "") for e in node["history"]]
        extra += [f"  hint for {h['owner']}: {_siblings(h['object'])}  behind "
                  f"{_behind(h['behind'])}" for h in node["hints"]]
        if node.get("error"):
            extra.append(f"  error: {node['error']}")
        details.append(extra)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
                     + "  " + row[4])
        if index:
            lines.extend(details[index - 1])
    read = answer.get("read", {})
    if read.get("error"):
        lines.append(f"quorum read: {read['status']} {read['error']}")
    elif read:
        lines.append(f"quorum read (r={answer['r']}): "
                     f"{'found' if read['found'] else 'not found'}, "
                     f"{len(read['siblings'])} sibling(s)")
    return "\n".join(lines)
