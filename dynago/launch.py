"""Start node processes and talk to their admin API: used by ``dynago demo``, the
benchmarks and the process tests.

A node started with ``dynago node`` prints exactly one line to stdout once it serves:
``ready name=NAME address=HOST:PORT http=HOST:PORT``; everything else goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class LaunchError(RuntimeError):
    """A node process did not start or did not answer in time."""


def error_reason(error: Exception) -> str:
    """What went wrong with an HTTP call, in words: a URLError's reason (refused, timed
    out, ...) rather than its wrapper; anything else as it reads."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    return str(error)


def http_json(address: str, path: str, *, method: str = "GET", timeout_s: float = 2.0,
              token: str | None = None, body: Any = None) -> Any:
    """GET (or POST, PUT) ``path`` on the admin API at ``address`` and decode its JSON.

    ``token`` is sent as a bearer token; ``body`` (POST and PUT only) as JSON."""
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(f"http://{address}{path}", method=method,
                                     data=data if method in ("POST", "PUT") else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read().decode())


def wait_until(
    condition: Callable[[], T], *, timeout_s: float, interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``condition`` until it returns something truthy; raise LaunchError at the
    deadline. Exceptions from ``condition`` count as 'not yet'."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    polls = 0
    while True:
        polls += 1
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - polled again until the deadline
            last_error = error
        if time.monotonic() >= deadline or polls > 1_000_000:
            detail = f" (last error: {last_error})" if last_error else ""
            raise LaunchError(f"timed out after {timeout_s:.1f} s waiting for {what}{detail}")
        time.sleep(interval_s)


class NodeProcess:
    """One ``dynago node`` child process.

    ``prefix`` is a command that execs the node in place, e.g. ``ip netns exec NS`` to run
    it inside a network namespace; it must exec (not fork), so that ``pid`` stays the
    node's own process id and signals reach the node itself."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None,
                 stderr_path: str | None = None, prefix: Sequence[str] = ()) -> None:
        self.args = list(args)
        child_env = dict(os.environ)
        child_env.setdefault("GRPC_VERBOSITY", "ERROR")
        child_env["PYTHONUNBUFFERED"] = "1"
        if env:
            child_env.update(env)
        self._stderr = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "dynago", "node", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=child_env,
        )
        self.pid = self.proc.pid
        self.started_at = time.monotonic()
        self.name = ""
        self.address = ""
        self.http = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("ready ") and not self._ready.is_set():
                fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
                self.name = fields.get("name", "")
                self.address = fields.get("address", "")
                self.http = fields.get("http", "")
                self._ready.set()

    def wait_ready(self, timeout_s: float = 15.0) -> NodeProcess:
        """Wait for the ready line; raise LaunchError if the process exits or times out."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                raise LaunchError(f"node {self.args} exited with {self.proc.returncode} "
                                  "before it was ready")
            if time.monotonic() > deadline:
                raise LaunchError(f"node {self.args} not ready after {timeout_s} s")
        return self

    def members(self) -> list[str]:
        """``GET /members`` of this node."""
        result: list[str] = http_json(self.http, "/members")
        return result

    def members_v1(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = http_json(self.http, "/v1/members")
        return result

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self, timeout_s: float = 5.0) -> int:
        """SIGTERM, wait; SIGKILL if it is still there. Returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL (works on a stopped process too)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(5)

    def close(self) -> None:
        """Make sure the process is gone (by its PID) and release its pipes."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if hasattr(self._stderr, "close"):
            self._stderr.close()
