""""Why is X dead?": a member's history in plain words.

``explain_entry`` turns one history entry (core.history) into a sentence; the admin API
puts it in every entry of ``GET /v1/members/{name}/history``. ``dynago explain NAME``
fetches that document and prints it with ``format_history``:

    node-3 (127.0.0.1:7003) as seen by node-1: failed, incarnation 0
    12:00:01.120  joined (inc 0) — node-2 told us of it
    12:00:05.310  suspect (inc 0) — node-2's probe got no ack; node-2 told us
    12:00:06.900  failed (inc 0) — we declared it failed: the suspicion ran out after ...
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import urllib.error
from typing import Any
from urllib.parse import quote

from dynago.core.history import HistoryEntry
from dynago.core.member import Status
from dynago.core.messages import EventKind
from dynago.core.tags import Tags


def _headline(entry: HistoryEntry) -> str:
    if entry.kind is EventKind.JOINED:
        word = "joined" if entry.status is Status.ALIVE else "joined as suspect"
    else:
        word = entry.status.label
    return f"{word} (inc {entry.incarnation})"


def tag_changes(before: Tags, after: Tags) -> str:
    """``+key=value`` for set or changed keys, ``-key`` for removed ones."""
    old, new = dict(before), dict(after)
    changes = [f"+{key}={value}" for key, value in sorted(new.items()) if old.get(key) != value]
    changes += [f"-{key}" for key in sorted(old) if key not in new]
    return " ".join(changes)


def _changes(entry: HistoryEntry) -> list[str]:
    """What differs from the record before, for a live member's new record."""
    parts = []
    if entry.status_before is Status.SUSPECT and entry.status is Status.ALIVE:
        parts.append("it refuted the suspicion")
    if entry.address_before is not None and entry.address != entry.address_before:
        parts.append(f"it moved to {entry.address}")
    if entry.tags != entry.tags_before:
        parts.append(f"it changed its tags: {tag_changes(entry.tags_before, entry.tags)}")
    if not parts:
        parts.append("a new incarnation (it refuted a suspicion or restarted)")
    return parts


def _told_by(entry: HistoryEntry) -> str:
    reporter = entry.reporter
    if reporter == entry.name:
        return "it told us itself"
    return f"{reporter} told us" if reporter else "source unknown"


def explain_entry(entry: HistoryEntry) -> str:
    """One change of a member in plain words: ``"<status> (inc N) — <why>"``."""
    kind, reporter, origin = entry.kind, entry.reporter, entry.origin
    if reporter == "self":
        if kind is EventKind.FAILED:
            why = f"we declared it failed: {entry.detail or 'its suspicion ran out'}"
        elif kind is EventKind.SUSPECTED:
            why = entry.detail or "our probe got no ack"
        elif kind is EventKind.JOINED and entry.status_before is None:
            why = entry.detail or "this node started"
        else:
            why = "we outbid a record of ourselves that would have won (refutation)"
            if entry.detail:
                why = entry.detail
    elif reporter == "local":
        if kind is EventKind.LEFT:
            why = "this node was told to leave (signal or admin API)"
        elif kind is EventKind.FAILED:
            why = "removed on this node by a local call (force-remove)"
        elif entry.tags != entry.tags_before and entry.status_before is not None:
            why = f"tags changed on this node: {tag_changes(entry.tags_before, entry.tags)}"
        else:
            why = "added on this node by a local call"
    else:
        told = _told_by(entry)
        if kind is EventKind.SUSPECTED:
            why = f"{origin or 'a member'}'s probe got no ack; {told}"
        elif kind is EventKind.FAILED:
            if origin:
                why = f"{origin} declared it failed (its suspicion ran out); {told}"
            else:
                why = f"force-removed on another node; {told}"
        elif kind is EventKind.LEFT:
            why = "it announced its leave" + ("" if reporter == entry.name else f"; {told}")
        elif kind is EventKind.JOINED and entry.status_before is None:
            why = f"it joined; {told}"
        elif kind is EventKind.JOINED:
            was = entry.status_before.label if entry.status_before is not None else "?"
            why = f"back after it was {was}; {told}"
        else:
            why = "; ".join([*_changes(entry), told])
    return f"{_headline(entry)} — {why}"


def _clock(stamp: str) -> str:
    """``HH:MM:SS.mmm`` (UTC) of an RFC 3339 stamp."""
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.astimezone(datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


def format_history(document: dict[str, Any]) -> str:
    """The text ``dynago explain`` prints for a ``/v1/members/{name}/history`` answer."""
    name, observer = document["name"], document["observer"]
    current = document.get("current")
    if current is None:
        head = f"{name} as seen by {observer}: no longer in its member map (reaped)"
    else:
        tags = " ".join(f"{k}={v}" for k, v in sorted(current.get("tags", {}).items()))
        head = (f"{name} ({current['address']}) as seen by {observer}: {current['status']}, "
                f"incarnation {current['incarnation']}" + (f", tags {tags}" if tags else ""))
    lines = [head, "times are UTC, on the observer's clock"]
    entries = document.get("history", [])
    if not entries:
        lines.append("  (no changes recorded)")
    for entry in entries:
        lines.append(f"  {_clock(entry['at'])}  {entry['explanation']}")
    return "\n".join(lines)


def run_explain(args: argparse.Namespace) -> int:
    """``dynago explain NAME [--http HOST:PORT] [--json]``."""
    from dynago.launch import http_json

    path = f"/v1/members/{quote(args.name, safe='')}/history"
    try:
        document = http_json(args.http, path, timeout_s=5.0)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            print(f"dynago: error: the node at {args.http} knows no member named "
                  f"{args.name!r}", file=sys.stderr)
            return 1
        print(f"dynago: error: {args.http} answered {error.code}", file=sys.stderr)
        return 1
    except (OSError, urllib.error.URLError, ValueError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        print(f"dynago: error: cannot reach the admin API at {args.http}: {reason}",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(format_history(document))
    return 0
