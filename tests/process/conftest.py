"""Fixtures of the process tests: real ``dynago node`` processes on 127.0.0.1.

* ``cluster`` — a factory ``cluster(name, seeds=[...], extra_args=[]) -> NodeProcess``
  (also spelled ``cluster.start(...)``) that starts one node (gRPC and HTTP on
  ``127.0.0.1:0``, ``--preset local``, stderr to a file under ``tmp_path``) and waits for
  its ready line. Every process it started is stopped by its PID at teardown, whatever
  the outcome of the test. Its helpers ``wait``, ``report`` and ``logs`` put the tail of
  every node's stderr into failure messages.
* ``dynago_cli`` — runs ``python -m dynago ARGS...`` to completion, bounded in time.
* ``fd`` — failure-detection helpers (``FdTools``): poll every node's /v1/members every
  50 ms with an invariant checked on each poll, hold a SIGSTOP for a measured time,
  GET/POST JSON on the admin API (/v1/faults).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dynago.launch import LaunchError, NodeProcess, wait_until

T = TypeVar("T")

READY_TIMEOUT_S = 15.0
"""How long one node may take to print its ready line (a loaded 2-core CI machine)."""

CONVERGE_TIMEOUT_S = 10.0
"""Default deadline of ``Cluster.wait``. Convergence takes well under 1 s with --preset local."""

LOG_TAIL_LINES = 25


class Cluster:
    """The node processes of one test; see the module docstring."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.nodes: list[NodeProcess] = []
        self._lives: list[tuple[str, Path, NodeProcess]] = []

    def __call__(
        self,
        name: str,
        seeds: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        *,
        bind: str = "127.0.0.1:0",
    ) -> NodeProcess:
        """Start node ``name`` joining through ``seeds`` and wait until it is ready.

        ``bind`` is ``127.0.0.1:0`` unless a test restarts a node on the port of an earlier
        life (read back from that life's ready line).
        """
        args = ["--bind", bind, "--http", "127.0.0.1:0", "--preset", "local", "--name", name]
        for seed in seeds:
            args += ["--seed", seed]
        args += list(extra_args)
        stderr_path = self.log_dir / f"{len(self._lives):02d}-{name}.stderr.log"
        node = NodeProcess(args, stderr_path=str(stderr_path))
        self.nodes.append(node)
        self._lives.append((name, stderr_path, node))
        try:
            node.wait_ready(READY_TIMEOUT_S)
        except LaunchError as error:
            pytest.fail(f"{error}\n{self.logs()}")
        return node

    start = __call__

    def close(self) -> None:
        """Stop every process this cluster started, by its PID (SIGKILL if still running)."""
        for node in self.nodes:
            node.close()

    # ------------------------------------------------------------------ diagnostics

    def stderr_of(self, node: NodeProcess) -> str:
        """Everything ``node`` has written to stderr so far."""
        for _name, path, life in self._lives:
            if life is node:
                return path.read_text(errors="replace") if path.exists() else ""
        raise KeyError(f"node pid {node.pid} was not started by this cluster")

    def logs(self, lines: int = LOG_TAIL_LINES) -> str:
        """The tail of the stderr log of every node life this test started."""
        parts = []
        for name, path, node in self._lives:
            code = node.proc.poll()
            state = "running" if code is None else f"exited {code}"
            text = path.read_text(errors="replace") if path.exists() else ""
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- stderr of {name} (pid {node.pid}, {node.address or '?'}, "
                         f"{state}), last {lines} lines ---\n{tail}")
        return "\n".join(parts)

    def views(self) -> str:
        """What each running node reports in /v1/members (best effort)."""
        parts = []
        for name, _path, node in self._lives:
            if node.proc.poll() is not None or not node.http:
                continue
            try:
                rows = node.members_v1()
                shown = ", ".join(f"{m['name']}@{m['address']}={m['status']}/{m['incarnation']}"
                                  for m in rows)
            except Exception as error:  # noqa: BLE001 - diagnostics only
                shown = f"(no answer: {error})"
            parts.append(f"  {name} (pid {node.pid}) sees: {shown}")
        return "/v1/members of the running nodes:\n" + ("\n".join(parts) or "  (none running)")

    def report(self, headline: str = "") -> str:
        """A failure message: ``headline``, the nodes' current views, their stderr tails."""
        return f"{headline}\n{self.views()}\n{self.logs()}"

    def wait(
        self, condition: Callable[[], T], what: str, timeout_s: float = CONVERGE_TIMEOUT_S
    ) -> T:
        """``wait_until`` that fails the test with views and stderr tails at the deadline."""
        try:
            return wait_until(condition, timeout_s=timeout_s, what=what)
        except LaunchError as error:
            pytest.fail(self.report(str(error)))

    # ------------------------------------------------------------------ queries

    @staticmethod
    def record_of(observer: NodeProcess, name: str) -> dict[str, Any] | None:
        """``observer``'s /v1/members entry for member ``name`` (None if it has none)."""
        for member in observer.members_v1():
            if member["name"] == name:
                return member
        return None

    @staticmethod
    def all_list(observers: Sequence[NodeProcess], addresses: Sequence[str]) -> bool:
        """True when every observer's /members is exactly the sorted ``addresses``."""
        expected = sorted(addresses)
        return all(node.members() == expected for node in observers)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Factory of ready node processes; all of them are stopped at teardown."""
    log_dir = tmp_path / "nodes"
    log_dir.mkdir()
    started = Cluster(log_dir)
    try:
        yield started
    finally:
        started.close()


def run_dynago(args: Sequence[str], timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``python -m dynago ARGS...`` to completion (killed by its PID at ``timeout_s``).

    GRPC_VERBOSITY is removed from the environment so the command runs with its own default.
    """
    env = dict(os.environ)
    env.pop("GRPC_VERBOSITY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "dynago", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s, env=env,
    )


@pytest.fixture
def dynago_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs one ``dynago`` command line to completion; see ``run_dynago``."""
    return run_dynago


# ------------------------------------------------------------------ failure detection
# Helpers of the failure-detection tests (test_proc_fd_*.py), handed out by the ``fd``
# fixture: poll every node's /v1/members on a short period, check an invariant on every
# poll, hold a SIGSTOP for a chosen time, talk to /v1/faults.

FD_POLL_INTERVAL_S = 0.05
"""How often the failure-detection tests poll the nodes' /v1/members."""

FD_HTTP_TIMEOUT_S = 2.0

View = dict[str, tuple[str, int]]
"""One node's /v1/members as ``member name -> (status, incarnation)``."""

Views = dict[str, View]
"""``observer name -> View`` for several observers polled one after the other."""


class FdTools:
    """See the ``fd`` fixture."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @staticmethod
    def view(node: NodeProcess) -> View:
        """``node``'s /v1/members as ``name -> (status, incarnation)``."""
        return {m["name"]: (m["status"], m["incarnation"]) for m in node.members_v1()}

    def views(self, observers: Sequence[NodeProcess]) -> Views:
        return {node.name: self.view(node) for node in observers}

    def check(
        self,
        observers: Sequence[NodeProcess],
        invariant: Callable[[Views], str | None] | None = None,
    ) -> Views | None:
        """Poll every observer once; fail the test at once if ``invariant`` (which returns
        a description of the violation, or None) is broken. None if a node did not answer."""
        try:
            views = self.views(observers)
        except (OSError, ValueError):  # URLError and timeouts are OSErrors
            return None
        if invariant is not None:
            problem = invariant(views)
            if problem:
                pytest.fail(self.cluster.report(f"invariant broken: {problem}\nviews: {views}"))
        return views

    def watch(
        self,
        observers: Sequence[NodeProcess],
        done: Callable[[Views], bool],
        what: str,
        *,
        timeout_s: float,
        invariant: Callable[[Views], str | None] | None = None,
    ) -> tuple[float, Views]:
        """Poll every ``FD_POLL_INTERVAL_S`` until ``done(views)``, checking ``invariant`` on
        every poll; returns (seconds it took, the views that satisfied ``done``). Fails the
        test with every node's view and stderr tail at ``timeout_s``."""
        start = time.monotonic()
        deadline = start + timeout_s
        max_polls = int(timeout_s / FD_POLL_INTERVAL_S) + 10
        last: Views | None = None
        for _ in range(max_polls):
            views = self.check(observers, invariant)
            if views is not None:
                last = views
                if done(views):
                    return time.monotonic() - start, views
            if time.monotonic() >= deadline:
                break
            time.sleep(FD_POLL_INTERVAL_S)  # the polling period, not a wait for an event
        pytest.fail(self.cluster.report(
            f"timed out after {timeout_s:.1f} s waiting for {what}\nlast views: {last}"))

    def observe(
        self,
        observers: Sequence[NodeProcess],
        duration_s: float,
        invariant: Callable[[Views], str | None],
    ) -> int:
        """Poll for ``duration_s`` seconds, checking ``invariant`` on every poll; returns the
        number of polls that got an answer from every observer."""
        end = time.monotonic() + duration_s
        answered = 0
        for _ in range(int(duration_s / FD_POLL_INTERVAL_S) + 10):
            if self.check(observers, invariant) is not None:
                answered += 1
            if time.monotonic() >= end:
                break
            time.sleep(min(FD_POLL_INTERVAL_S, max(0.0, end - time.monotonic())))
        return answered

    @staticmethod
    def hold_pause(
        node: NodeProcess, duration_s: float, during: Callable[[], object] | None = None
    ) -> float:
        """SIGSTOP ``node``, hold the pause for ``duration_s`` seconds, then SIGCONT it.

        The pause is measured with a deadline loop that wakes every ``FD_POLL_INTERVAL_S``
        and calls ``during()`` (e.g. a poll of the other nodes); SIGCONT is sent whatever
        happens. Returns how long the process was in fact stopped (to SIGCONT)."""
        node.signal(signal.SIGSTOP)
        start = time.monotonic()
        end = start + duration_s
        try:
            for _ in range(int(duration_s / FD_POLL_INTERVAL_S) + 10):
                if during is not None:
                    during()
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(FD_POLL_INTERVAL_S, remaining))  # holding the pause
        finally:
            node.signal(signal.SIGCONT)
        return time.monotonic() - start

    @staticmethod
    def request(node: NodeProcess, path: str, body: object = None, *,
                raw: bytes | None = None) -> tuple[int, Any]:
        """GET ``path`` on ``node``'s admin API, or POST ``body`` as JSON (or the bytes
        ``raw``); returns (HTTP status, decoded JSON answer), error statuses included."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            f"http://{node.http}{path}", data=data,
            method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=FD_HTTP_TIMEOUT_S) as response:
                return response.status, json.loads(response.read().decode())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read().decode() or "null")


@pytest.fixture
def fd(cluster: Cluster) -> FdTools:
    """Failure-detection helpers bound to this test's ``cluster`` (see FdTools)."""
    return FdTools(cluster)
