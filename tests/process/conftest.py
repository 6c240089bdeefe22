"""Fixtures of the process tests: real ``dynago node`` processes on 127.0.0.1.

* ``cluster`` and ``dynago_cli`` come from tests/conftest.py (tests/cluster_support.py):
  ``cluster(name, seeds=[...], extra_args=[])`` starts a ready node and every process is
  stopped by its PID at teardown.
* ``fd`` — failure-detection helpers (``FdTools``): poll every node's /v1/members every
  50 ms with an invariant checked on each poll, hold a SIGSTOP for a measured time,
  GET/POST JSON on the admin API (/v1/faults).
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
from cluster_support import Cluster  # tests/ is on sys.path under pytest

from dynago.launch import NodeProcess

T = TypeVar("T")



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
