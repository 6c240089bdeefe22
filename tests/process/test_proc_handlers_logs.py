"""``--on-event CMD`` run by real nodes (the event in the environment, a hanging handler
killed at its timeout while membership goes on) and ``--log-format json``."""

from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.process


def _records(path: Path) -> list[dict[str, str]]:
    """One dict per line ``KEY=VALUE KEY=VALUE ...`` written by the recording handler."""
    if not path.exists():
        return []
    return [dict(part.split("=", 1) for part in line.split("\t") if "=" in part)
            for line in path.read_text().splitlines()]


RECORDER = ('printf "event=%s\\tmember=%s\\taddress=%s\\tstatus=%s\\tprevious=%s\\tself=%s\\t'
            'stdin=%s\\n" "$DYNAGO_EVENT" "$DYNAGO_MEMBER_NAME" "$DYNAGO_MEMBER_ADDRESS" '
            '"$DYNAGO_MEMBER_STATUS" "${DYNAGO_PREVIOUS_STATUS:-none}" "$DYNAGO_SELF_NAME" '
            '"$(cat)" >> ')


def test_event_handler_runs_per_event_with_the_event_in_its_environment(
    cluster: Any, tmp_path: Path
) -> None:
    """a runs a handler for every event: b joining and b leaving each produce one run
    whose environment names the event, the member, its address and status, the previous
    status and a itself, and whose stdin is the event as JSON."""
    out = tmp_path / "events.txt"
    a = cluster("a", extra_args=["--on-event", RECORDER + shlex.quote(str(out))])
    b = cluster("b", seeds=[a.address])
    joined = cluster.wait(
        lambda: [r for r in _records(out) if r.get("event") == "joined"],
        "a's handler to record b joining")
    assert joined[0]["member"] == "b" and joined[0]["address"] == b.address
    assert joined[0]["status"] == "alive" and joined[0]["self"] == "a"
    document = json.loads(joined[0]["stdin"])
    assert document["event"] == "joined" and document["member"]["name"] == "b"

    cluster.stop(b)
    left = cluster.wait(lambda: [r for r in _records(out) if r.get("event") == "left"],
                        "a's handler to record b leaving")
    assert left[0]["member"] == "b" and left[0]["status"] == "left"
    assert left[0]["previous"] == "alive"
    assert cluster.stats(a)["event_handler_runs_ok"] >= 2


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_hanging_handler_is_killed_at_its_timeout_and_membership_goes_on(
    cluster: Any, tmp_path: Path
) -> None:
    """a's only handler records its pid and then hangs; with one handler at a time and a
    0.5 s timeout, a still lists b and c at once, the hung handler is killed (its process
    is gone), the kill is logged and counted, and the next event's handler runs too."""
    pids = tmp_path / "pids.txt"
    hang = f"echo $$ >> {shlex.quote(str(pids))}; exec sleep 600"
    a = cluster("a", extra_args=["--on-event", hang, "--on-event-timeout", "0.5",
                                 "--on-event-concurrency", "1"])
    b = cluster("b", seeds=[a.address])
    c = cluster("c", seeds=[a.address])
    cluster.wait(lambda: cluster.all_list([a, b, c], [a.address, b.address, c.address]),
                 "every node to list all 3 while a's handler hangs")

    first = int(cluster.wait(lambda: pids.exists() and pids.read_text().split(),
                             "the first handler to start")[0])
    cluster.wait(lambda: not _alive(first), "the hung handler to be killed")
    cluster.wait(lambda: len(pids.read_text().split()) >= 2,
                 "the handler of the next event to run")
    cluster.wait(lambda: cluster.stats(a)["event_handler_timeouts"] >= 1,
                 "a to count the timeout")
    assert cluster.log_lines(a, "event handler", "killed"), cluster.report()

    cluster.stop(a)  # a stopping kills the handler hanging now
    survivors = [pid for pid in map(int, pids.read_text().split()) if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"handlers {survivors} outlived their node"


def test_json_log_format_writes_one_object_per_line(cluster: Any) -> None:
    """With --log-format json every stderr line is a JSON object with time, level,
    logger and message; a membership change carries its fields (event, member, status).
    Without the flag the text format is unchanged."""
    a = cluster("a", extra_args=["--log-format", "json"])
    b = cluster("b", seeds=[a.address])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]), "a and b to meet")
    cluster.stop(b)
    cluster.wait(lambda: cluster.statuses(a).get("b") == "left", "a to see b leave")

    lines = cluster.stderr_of(a).splitlines()
    assert lines
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert entry["time"].endswith("Z")
    changes = [e for e in entries if e.get("member") == "b"]
    assert {(e["event"], e["status"]) for e in changes} >= {("joined", "alive"),
                                                            ("left", "left")}, changes

    text = cluster.stderr_of(b).splitlines()
    assert any(" INFO dynago.actors.membership: member a " in line for line in text), text
