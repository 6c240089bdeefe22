"""Fixtures of the process tests: real ``dynago node`` processes on 127.0.0.1.

* ``cluster`` — a factory ``cluster(name, seeds=[...], extra_args=[]) -> NodeProcess``
  (also spelled ``cluster.start(...)``) that starts one node (gRPC and HTTP on
  ``127.0.0.1:0``, ``--preset local``, stderr to a file under ``tmp_path``) and waits for
  its ready line. Every process it started is stopped by its PID at teardown, whatever
  the outcome of the test. Its helpers ``wait``, ``report`` and ``logs`` put the tail of
  every node's stderr into failure messages.
* ``dynago_cli`` — runs ``python -m dynago ARGS...`` to completion, bounded in time.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
