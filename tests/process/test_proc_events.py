"""Events, the live view and "why is X dead?" between real node processes on 127.0.0.1:

* ``GET /v1/events`` read by a real HTTP client while a node joins and leaves;
* ``dynago members --watch`` run in a pseudo-terminal: the rendered screen is read back
  and its rows change as members change; Ctrl-C (written to the terminal) exits 0; a node
  without an event stream is polled instead;
* ``/v1/members/{name}/history`` and ``dynago explain`` for a SIGKILLed node name who
  reported its suspicion.
"""

from __future__ import annotations

import http.client
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dynago.launch import NodeProcess

pytestmark = pytest.mark.process

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FAIL_TIMEOUT_S = 15.0


# ---------------------------------------------------------------------- /v1/events


class EventReader:
    """A real HTTP client on /v1/events; ``events`` is what it has read so far."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.connection.connect()
        self.sock = self.connection.sock
        self.connection.request("GET", "/v1/events")
        self.response = self.connection.getresponse()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind = ""
        try:
            while raw := self.response.readline():
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    with self._lock:
                        self.events.append((kind, json.loads(line[6:])))
        except (OSError, ValueError):
            pass

    def seen(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(kind, data["name"]) for kind, data in self.events]

    def close(self) -> None:
        self.sock.close()
        self.connection.close()


def test_event_stream_shows_a_node_joining_and_leaving(cluster: Any) -> None:
    a = cluster("a")
    reader = EventReader(a.http)
    try:
        assert reader.response.status == 200
        b = cluster("b", seeds=[a.address], extra_args=["--tag", "role=kv"])
        cluster.wait(lambda: ("joined", "b") in reader.seen(), "a's stream to show b join")
        cluster.stop(b)
        cluster.wait(lambda: ("left", "b") in reader.seen(), "a's stream to show b leave")
        assert reader.seen() == [("joined", "b"), ("left", "b")], reader.events
        joined, left = (data for _, data in reader.events)
        assert joined["tags"] == {"role": "kv"} and joined["status"] == "alive"
        assert (left["status"], left["reporter"], left["previous"]["status"]) == (
            "left", "b", "alive")
    finally:
        reader.close()


# ---------------------------------------------------------------------- history / explain


def test_explain_a_killed_node_names_who_reported_the_suspicion(
    cluster: Any, dynago_cli: Any
) -> None:
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    c = cluster("c", seeds=[a.address])
    nodes = [a, b, c]
    cluster.wait(lambda: cluster.all_list(nodes, [n.address for n in nodes]), "convergence")

    c.kill()
    for observer in (a, b):
        cluster.wait(lambda o=observer: cluster.statuses(o).get("c") == "failed",
                     f"{observer.name} to hold c failed", timeout_s=FAIL_TIMEOUT_S)

    for observer, other in ((a, "b"), (b, "a")):
        status, body = cluster.http_status(observer.http, "/v1/members/c/history")
        assert status == 200, body
        history = json.loads(body)["history"]
        assert [e["kind"] for e in history] == ["joined", "suspected", "failed"], history
        suspected = history[1]
        assert suspected["reporter"] in ("self", other), suspected
        if suspected["reporter"] == "self":
            assert suspected["origin"] == observer.name
            assert "our probe got no ack" in suspected["explanation"]
        else:
            assert f"{suspected['origin']}'s probe got no ack; {other} told us" in \
                suspected["explanation"]

        result = dynago_cli(["explain", "c", "--http", observer.http])
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"c ({c.address}) as seen by {observer.name}: failed, incarnation 0"
        assert [line.split()[1] for line in lines[2:]] == ["joined", "suspect", "failed"]
        assert suspected["explanation"] in lines[3]

    unknown = dynago_cli(["explain", "nobody", "--http", a.http])
    assert unknown.returncode == 1
    assert "knows no member named 'nobody'" in unknown.stderr


# ---------------------------------------------------------------------- the live view


class Terminal:
    """``dynago ARGS`` in a pseudo-terminal that is its controlling terminal; reads what
    it draws. ``screen()`` is the last complete frame, without escape codes."""

    # A new session acquires the pty as its controlling terminal by opening it, so that
    # Ctrl-C written to the terminal reaches the program as SIGINT. SIGINT gets its
    # default disposition back, as at an interactive shell: a test run started in the
    # background of a non-interactive shell inherits it ignored, and so would the program.
    LAUNCHER = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                "os.close(os.open(os.ttyname(0), os.O_RDWR)); "
                "os.execv(sys.executable, [sys.executable, '-m', 'dynago', *sys.argv[1:]])")

    def __init__(self, args: list[str]) -> None:
        master, slave = pty.openpty()
        self.master = master
        env = dict(os.environ, PYTHONUNBUFFERED="1", TERM="xterm")
        self.proc = subprocess.Popen([sys.executable, "-c", self.LAUNCHER, *args],
                                     stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, env=env)
        os.close(slave)
        self._lock = threading.Lock()
        self._output = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the program ended and the terminal closed
                return
            if not data:
                return
            with self._lock:
                self._output += data

    @property
    def output(self) -> str:
        with self._lock:
            return self._output.decode("utf-8", "replace")

    def screen(self) -> str:
        text = self.output
        end = text.rfind("\x1b[J")
        start = text.rfind("\x1b[H", 0, end)
        if start < 0 or end < 0:
            return ""
        return ANSI.sub("", text[start:end]).replace("\r", "")

    def row(self, name: str) -> list[str] | None:
        for line in self.screen().splitlines():
            cells = line.split()
            if cells and cells[0] == name:
                return cells
        return None

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._reader.join(5)
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Any]:
    started: list[Terminal] = []

    def start(args: list[str]) -> Terminal:
        term = Terminal(args)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()


def test_watch_redraws_rows_as_members_change(cluster: Any, terminal: Any) -> None:
    a = cluster("a")
    b = cluster("b", seeds=[a.address], extra_args=["--tag", "role=kv"])
    c = cluster("c", seeds=[a.address])
    nodes = [a, b, c]
    cluster.wait(lambda: cluster.all_list(nodes, [n.address for n in nodes]), "convergence")

    term = terminal(["members", "--watch", "--http", a.http])
    screen = lambda: f"screen:\n{term.screen()}\nraw tail: {term.output[-600:]!r}"  # noqa: E731
    cluster.wait(lambda: all((term.row(n.name) or [""])[2:3] == ["alive"] for n in nodes),
                 "the watch to show a, b and c alive")
    assert "(following /v1/events)" in term.screen(), screen()
    assert term.row("b")[:5] == ["b", b.address, "alive", "0", "role=kv"], screen()

    cluster.stop(c)
    cluster.wait(lambda: (term.row("c") or [""])[2:3] == ["left"], "c's row to turn left")
    assert "c left (inc 0) — reported by c" in term.screen(), screen()
    assert term.row("a")[2] == "alive" and term.row("b")[2] == "alive", screen()
    assert term.output.count("\x1b[H") >= 2, "the screen was drawn only once"

    term.ctrl_c()
    assert term.proc.wait(10) == 0, screen()


def test_watch_into_a_pipe_writes_plain_lines(cluster: Any) -> None:
    """Without a terminal (``| grep``, a log file) the watch writes no escapes: the table
    once, then one line per change as it comes; SIGINT ends it with 0."""
    a = cluster("a")
    b = cluster("b", seeds=[a.address])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]), "convergence")
    # SIGINT gets its default disposition back (see Terminal.LAUNCHER).
    launcher = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                "os.execv(sys.executable, [sys.executable, '-m', 'dynago', *sys.argv[1:]])")
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, "members", "--watch", "--http", a.http],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        rows = lambda: [line.split()[:3] for line in lines]  # noqa: E731
        cluster.wait(lambda: ["a", a.address, "alive"] in rows()
                     and ["b", b.address, "alive"] in rows(), "the table with a and b")
        assert lines[0].split()[:3] == ["NAME", "ADDRESS", "STATUS"], lines
        cluster.stop(b)
        cluster.wait(lambda: any("b left (inc 0) — reported by b" in line for line in lines),
                     "a line for b's leave")
        assert not any(ANSI.search(line) for line in lines), lines
        assert sum(line.startswith("NAME") for line in lines) == 1, lines
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        reader.join(5)


class _StubAdmin(BaseHTTPRequestHandler):
    """An admin API without an event stream (as an older node): /v1/members only."""

    members: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.startswith("/v1/members"):
            body = json.dumps(self.members).encode()
            self.send_response(200)
        else:
            body = b'{"error": "no such resource"}'
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _member(name: str, status: str, incarnation: int) -> dict[str, Any]:
    since = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {"name": name, "address": f"127.0.0.1:{7000 + ord(name[0])}", "status": status,
            "incarnation": incarnation, "since": since, "tags": {}}


def test_watch_falls_back_to_polling_a_node_without_event_stream(
    cluster: Any, terminal: Any
) -> None:
    class Handler(_StubAdmin):
        members = [_member("x", "alive", 0), _member("y", "alive", 0)]

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        term = terminal(["members", "--watch", "--http", address, "--interval", "0.2"])
        cluster.wait(lambda: (term.row("y") or [""])[2:3] == ["alive"], "y alive on screen")
        assert "(polling /v1/members)" in term.screen(), term.screen()
        Handler.members = [_member("x", "alive", 0), _member("y", "suspect", 0)]
        cluster.wait(lambda: (term.row("y") or [""])[2:3] == ["suspect"],
                     "y's row to turn suspect")
        term.ctrl_c()
        assert term.proc.wait(10) == 0
    finally:
        server.shutdown()
        server.server_close()


def test_watch_keeps_the_table_when_the_node_goes_away(cluster: Any, terminal: Any) -> None:
    a: NodeProcess = cluster("a")
    term = terminal(["members", "--watch", "--http", a.http])
    cluster.wait(lambda: (term.row("a") or [""])[2:3] == ["alive"], "a alive on screen")
    a.kill()
    cluster.wait(lambda: "retrying" in term.screen(), "the view to say it is retrying")
    assert term.row("a") is not None
    term.ctrl_c()
    assert term.proc.wait(10) == 0
