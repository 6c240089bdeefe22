"""``dynago members --watch``: a live member table that redraws in place.

It follows the node's event stream (``GET /v1/events?snapshot=1``): the snapshot fills
the table, each event updates one row and is listed under the table. If the node has no
event stream (an older node: 404) the view polls ``/v1/members`` every ``--interval``
seconds instead; if the node cannot be reached, the last table stays on screen with the
reason, and the view keeps retrying. On a terminal the screen is redrawn with ANSI
escapes (cursor home, clear to end of line and of screen) at each change and once a
second for the ages. When the output is not a terminal (a pipe, a file) it gets plain
lines instead: the table once, then one line per change or problem, as they come.
Ctrl-C ends it with exit code 0.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import queue
import sys
import threading
import time
import urllib.error
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

from dynago.core.address import parse_address
from dynago.core.tags import matches

HOME = "\x1b[H"
CLEAR_LINE = "\x1b[K"
CLEAR_BELOW = "\x1b[J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"

STREAM_READ_TIMEOUT_S = 45.0
"""No byte for this long (the server sends a keep-alive every 15 s) means a dead stream."""
RECENT_EVENTS = 8


@dataclass
class WatchState:
    """What the view shows: rows by member name, recent changes, and how it is fed."""

    address: str
    filters: list[tuple[str, str | None]] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    mode: str = "connecting"
    problem: str = ""
    changes: int = 0
    """How many change lines were ever added to ``recent`` (for the plain output)."""
    loads: int = 0
    """How many member lists were loaded (snapshots and polls)."""

    def load(self, members: list[dict[str, Any]]) -> None:
        """Replace every row with a member list (a snapshot, or a poll)."""
        if self.rows and self.mode == "polling":
            self._diff(members)
        self.rows = {m["name"]: m for m in members}
        self.loads += 1

    def _diff(self, members: list[dict[str, Any]]) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        for member in members:
            held = self.rows.get(member["name"])
            if held is None or (held["status"], held["incarnation"], held.get("tags")) != (
                    member["status"], member["incarnation"], member.get("tags")):
                self._change(f"{_clock(now)}  {member['name']} {member['status']} "
                             f"(inc {member['incarnation']}) — seen by polling")

    def _change(self, line: str) -> None:
        self.recent.append(line)
        self.changes += 1

    def apply(self, event: dict[str, Any]) -> None:
        """One member event from the stream."""
        name = event["name"]
        self.rows[name] = {
            "name": name,
            "address": event["address"],
            "status": event["status"],
            "incarnation": event["incarnation"],
            "since": event["at"],
            "tags": event.get("tags", {}),
        }
        reporter = event.get("reporter") or "?"
        who = {"self": "this node's own finding",
               "local": "a command on this node"}.get(reporter, f"reported by {reporter}")
        self._change(f"{_clock(event['at'])}  {name} {event['kind']} "
                     f"(inc {event['incarnation']}) — {who}")

    def render(self) -> str:
        """The whole screen, as plain lines."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
        source = {"events": "following /v1/events", "polling": "polling /v1/members",
                  "connecting": "connecting"}.get(self.mode, self.mode)
        lines = [f"dynago members --watch  {self.address}  ({source})  {stamp} UTC"]
        if self.problem:
            lines.append(f"! {self.problem}")
        shown = [row for _, row in sorted(self.rows.items())
                 if matches(row.get("tags", {}).items(), self.filters)]
        lines.append("")
        lines.extend(_table(shown))
        counts: dict[str, int] = {}
        for row in shown:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        lines.append(f"{len(shown)} members" + (f": {summary}" if summary else ""))
        if self.recent:
            lines.append("")
            lines.append("recent changes:")
            lines.extend(f"  {line}" for line in self.recent)
        lines.append("")
        lines.append("Ctrl-C to quit")
        return "\n".join(lines)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    """Like ``dynago members``: a TAGS column when any member has tags."""
    with_tags = any(row.get("tags") for row in rows)
    header: tuple[str, ...] = ("NAME", "ADDRESS", "STATUS", "INC") + (
        ("TAGS",) if with_tags else ()) + ("SINCE",)
    cells = [header]
    for row in rows:
        tags = ",".join(f"{k}={v}" for k, v in sorted(row.get("tags", {}).items())) or "-"
        cells.append((row["name"], row["address"], row["status"], str(row["incarnation"]))
                     + ((tags,) if with_tags else ()) + (_ago(row.get("since", "")),))
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip()
            for line in cells]


def _parse_stamp(stamp: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def _ago(stamp: str) -> str:
    moment = _parse_stamp(stamp)
    if moment is None:
        return stamp or "-"
    seconds = max(0.0, (datetime.datetime.now(datetime.UTC) - moment).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def _clock(stamp: str) -> str:
    moment = _parse_stamp(stamp)
    if moment is None:
        return stamp
    return moment.astimezone(datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


# ---------------------------------------------------------------------- feeds


class NoEventStream(Exception):
    """The node answered, but has no event stream: poll instead."""


def follow_events(address: str, out: queue.Queue[tuple[str, Any]]) -> None:
    """Read ``/v1/events?snapshot=1`` until it ends; put ("snapshot", members),
    ("event", event) and finally ("closed", reason) into ``out``."""
    host, port = parse_address(address)
    connection = http.client.HTTPConnection(host, port, timeout=STREAM_READ_TIMEOUT_S)
    try:
        connection.request("GET", "/v1/events?snapshot=1",
                           headers={"Accept": "text/event-stream"})
        response = connection.getresponse()
        if response.status in (404, 405):
            raise NoEventStream(f"{address} has no /v1/events ({response.status})")
        if response.status != 200:
            out.put(("closed", f"/v1/events answered {response.status}"))
            return
        out.put(("open", None))
        kind, data = "message", list[str]()
        while True:
            raw = response.readline()
            if not raw:
                out.put(("closed", "the node closed the event stream"))
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if data:
                    payload = json.loads("\n".join(data))
                    out.put(("snapshot" if kind == "snapshot" else "event", payload))
                kind, data = "message", list[str]()
            elif line.startswith(":"):
                continue
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
    except NoEventStream:
        out.put(("no-stream", None))
    except (OSError, http.client.HTTPException, ValueError) as error:
        out.put(("closed", f"cannot follow {address}: {error}"))
    finally:
        connection.close()


def run_watch(args: argparse.Namespace, filters: list[tuple[str, str | None]],
              stream: TextIO | None = None) -> int:
    """The ``--watch`` loop; returns the exit code (0 on Ctrl-C)."""
    out = stream or sys.stdout
    state = WatchState(args.http, filters)
    feed: queue.Queue[tuple[str, Any]] = queue.Queue()
    reader: threading.Thread | None = None
    next_retry = 0.0
    screen = out.isatty()
    draw = _draw if screen else _PlainLines().write
    if screen:
        out.write(HIDE_CURSOR + "\x1b[2J")
    try:
        while True:
            if state.mode == "polling":
                _poll(state)
                draw(out, state)
                time.sleep(args.interval)  # the polling period itself
                continue
            idle = reader is None or (not reader.is_alive() and feed.empty())
            if idle and time.monotonic() >= next_retry:
                reader = threading.Thread(target=follow_events, args=(args.http, feed),
                                          name="dynago-watch", daemon=True)
                reader.start()
                next_retry = time.monotonic() + 1.0
            try:
                what, payload = feed.get(timeout=1.0)
            except queue.Empty:
                draw(out, state)
                continue
            if what == "open":
                state.mode, state.problem = "events", ""
            elif what == "snapshot":
                state.load(payload)
            elif what == "event":
                state.apply(payload)
            elif what == "no-stream":
                state.mode, state.problem = "polling", ""
            elif what == "closed":
                state.problem = f"{payload}; retrying"
            draw(out, state)
    except KeyboardInterrupt:
        return 0
    finally:
        out.write(SHOW_CURSOR + "\n" if screen else "")
        out.flush()


def _poll(state: WatchState) -> None:
    from dynago.launch import http_json

    try:
        members = http_json(state.address, "/v1/members", timeout_s=5.0)
    except (OSError, urllib.error.URLError, ValueError) as error:
        state.problem = f"cannot reach {state.address}: {error}; retrying"
        return
    state.problem = ""
    state.load(members)


class _PlainLines:
    """The watch without a terminal: the table when a member list is loaded for the
    first time, then each new change line and each new problem, once."""

    def __init__(self) -> None:
        self._loads = 0
        self._changes = 0
        self._problem = ""

    def write(self, out: TextIO, state: WatchState) -> None:
        lines: list[str] = []
        if state.loads and not self._loads:
            shown = [row for _, row in sorted(state.rows.items())
                     if matches(row.get("tags", {}).items(), state.filters)]
            lines.extend(_table(shown))
            self._changes = state.changes  # what the table already shows
        self._loads = state.loads
        fresh = min(state.changes - self._changes, len(state.recent))
        if fresh > 0:
            lines.extend(list(state.recent)[-fresh:])
        self._changes = state.changes
        if state.problem != self._problem:
            if state.problem:
                lines.append(f"! {state.problem}")
            self._problem = state.problem
        if lines:
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()


def _draw(out: TextIO, state: WatchState) -> None:
    frame = HOME + "".join(f"{line}{CLEAR_LINE}\n" for line in state.render().split("\n"))
    out.write(frame + CLEAR_BELOW)
    out.flush()
