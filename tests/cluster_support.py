"""Real ``dynago node`` processes for the tests (tests/process, tests/security): a
``Cluster`` that starts nodes on 127.0.0.1 (gRPC and HTTP on port 0, ``--preset local``,
stderr to a file), waits for their ready lines, puts their views and stderr tails into
failure messages, and stops every process it started by its PID. The fixtures that hand
it out are in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dynago.launch import LaunchError, NodeProcess, http_json, wait_until

T = TypeVar("T")

READY_TIMEOUT_S = 15.0
"""How long one node may take to print its ready line (a loaded 2-core CI machine)."""

CONVERGE_TIMEOUT_S = 10.0
"""Default deadline of ``Cluster.wait``. Convergence takes well under 1 s with --preset local."""

LOG_TAIL_LINES = 25

STREAM_METHOD = "/dynago.v1.Membership/Stream"

RAW_TIMEOUT_S = 5.0
"""Default deadline of one RawPeer read or write."""


# ---------------------------------------------------------------------- processes


def proc_status(pid: int, key: str) -> int:
    """A numeric field of /proc/PID/status (``VmRSS`` in KiB, ``Threads``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def http_status(address: str, path: str, *, method: str = "GET",
                headers: dict[str, str] | None = None, body: bytes | None = None,
                timeout_s: float = 2.0) -> tuple[int, bytes]:
    """One request to the admin API: (HTTP status, body), 4xx and 5xx included."""

    request = urllib.request.Request(f"http://{address}{path}", method=method,
                                     data=body if method in ("POST", "PUT") else None)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with contextlib.closing(error):
            return error.code, error.read()


class Cluster:
    """The node processes of one test; see the module docstring."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.nodes: list[NodeProcess] = []
        self._lives: list[tuple[str, Path, NodeProcess]] = []

    def _launch(self, name: str, seeds: Sequence[str], extra_args: Sequence[str],
                bind: str) -> NodeProcess:
        args = ["--bind", bind, "--http", "127.0.0.1:0", "--preset", "local", "--name", name]
        for seed in seeds:
            args += ["--seed", seed]
        args += list(extra_args)
        stderr_path = self.log_dir / f"{len(self._lives):02d}-{name}.stderr.log"
        node = NodeProcess(args, stderr_path=str(stderr_path))
        self.nodes.append(node)
        self._lives.append((name, stderr_path, node))
        return node

    def _ready(self, node: NodeProcess) -> NodeProcess:
        try:
            node.wait_ready(READY_TIMEOUT_S)
        except LaunchError as error:
            pytest.fail(f"{error}\n{self.logs()}")
        return node

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
        return self._ready(self._launch(name, seeds, extra_args, bind))

    start = __call__

    def start_many(
        self, specs: Sequence[tuple[str, Sequence[str], Sequence[str]]]
    ) -> list[NodeProcess]:
        """Start several nodes at once, ``(name, seeds, extra_args)`` each; wait for all."""
        launched = [self._launch(name, seeds, extra, "127.0.0.1:0")
                    for name, seeds, extra in specs]
        return [self._ready(node) for node in launched]

    def stop(self, node: NodeProcess) -> int:
        """SIGTERM one node (it announces its leave), SIGKILL if it lingers; exit code."""
        return node.terminate()

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

    def log_lines(self, node: NodeProcess, *needles: str, level: str = "WARNING") -> list[str]:
        """Lines of ``node``'s stderr at ``level`` that contain every one of ``needles``."""
        return [line for line in self.stderr_of(node).splitlines()
                if f" {level} " in line and all(needle in line for needle in needles)]

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

    def views(self, limit: int = 12) -> str:
        """What each running node reports in /v1/members (best effort, first ``limit``)."""
        parts = []
        for name, _path, node in self._lives:
            if node.proc.poll() is not None or not node.http:
                continue
            try:
                rows = node.members_v1()
                shown = ", ".join(f"{m['name']}@{m['address']}={m['status']}/{m['incarnation']}"
                                  for m in rows[:limit])
                if len(rows) > limit:
                    shown += f", ... ({len(rows)} records)"
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

    proc_status = staticmethod(proc_status)
    http_status = staticmethod(http_status)

    @staticmethod
    def rss_mb(node: NodeProcess) -> float:
        """Resident memory of ``node``'s process, MiB."""
        return proc_status(node.pid, "VmRSS") / 1024

    @staticmethod
    def stats(node: NodeProcess, timeout_s: float = 2.0) -> dict[str, int]:
        """``GET /v1/stats`` of ``node``."""
        result: dict[str, int] = http_json(node.http, "/v1/stats", timeout_s=timeout_s)
        return result

    @staticmethod
    def statuses(node: NodeProcess) -> dict[str, str]:
        """``node``'s /v1/members as name -> status."""
        return {m["name"]: m["status"] for m in node.members_v1()}

    def assert_holds_alive(self, node: NodeProcess, members: Sequence[NodeProcess]) -> None:
        """``node`` runs and holds every one of ``members`` alive (it may hold others)."""
        assert node.proc.poll() is None, self.report(f"{node.name} exited")
        statuses = self.statuses(node)
        held = {member.name: statuses.get(member.name) for member in members}
        assert all(status == "alive" for status in held.values()), self.report(
            f"{node.name} holds {held}")

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

    def assert_serves_exactly(self, node: NodeProcess, members: Sequence[NodeProcess]) -> None:
        """``node`` runs and its /members lists exactly ``members`` (all alive, none lost,
        nothing else)."""
        assert node.proc.poll() is None, self.report(f"{node.name} exited")
        expected = sorted(m.address for m in members)
        listed = node.members()
        assert listed == expected, self.report(f"{node.name} lists {listed}, not {expected}")
        statuses = self.statuses(node)
        for member in members:
            assert statuses.get(member.name) == "alive", self.report(
                f"{node.name} holds {member.name} as {statuses.get(member.name)}")


def run_dynago(args: Sequence[str], timeout_s: float = 30.0,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m dynago ARGS...`` to completion (killed at ``timeout_s``); ``env`` adds
    to the environment (which has no DYNAGO_* variables otherwise)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DYNAGO_")}
    base.pop("GRPC_VERBOSITY", None)
    base["PYTHONUNBUFFERED"] = "1"
    env = {**base, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "dynago", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s, env=env,
    )


