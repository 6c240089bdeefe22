"""Fixtures of the chaos tests: real nodes in network namespaces (root, nftables).

Every test in this directory carries the ``chaos`` marker, which the default test command
deselects (pyproject addopts); run them with ``python -m pytest -m chaos``.

* ``chaos_ready`` (session, automatic): removes leftovers of killed runs, then proves a
  namespace with an nftables table can be made — and FAILS every chaos test with the
  reason if not (never a silent skip).
* ``chaos_cluster(n, preset="lan", data=False)``: a ``ChaosNet`` of n namespaces and a
  ``ChaosCluster`` of n (not yet started) node definitions (``data``: each node keeps its
  store in a data dir of its own, kept across restarts); at teardown every process is
  stopped by its PID, every namespace and link removed, and the removal checked.
* ``scenario(name, expectation, nodes)``: the record the scenario writes its figures
  into; the JSON report and the table are written at the end of the session.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from chaos_netns import ChaosNet, NetnsError, preflight, reap_leftovers
from chaos_nodes import ChaosCluster
from chaos_report import ChaosReport, Scenario

HERE = Path(__file__).parent
REPORT = ChaosReport()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``chaos`` before ``-m`` deselects anything."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.chaos)


def _interrupt_on_sigterm() -> None:
    """A SIGTERM to the test run unwinds like Ctrl-C, so finalizers remove what the run
    created (the atexit hook of chaos_netns is the last resort)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def handler(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="session", autouse=True)
def chaos_ready() -> None:
    _interrupt_on_sigterm()
    try:
        reap_leftovers()
        preflight()
    except NetnsError as error:
        pytest.fail(f"chaos tests cannot run on this machine: {error}", pytrace=False)


@pytest.fixture
def chaos_cluster(tmp_path: Path) -> Iterator[Callable[..., ChaosCluster]]:
    made: list[tuple[ChaosNet, ChaosCluster]] = []

    def make(hosts: int, preset: str = "lan", data: bool = False) -> ChaosCluster:
        log_dir = tmp_path / f"net{len(made) + 1}"
        log_dir.mkdir()
        net = ChaosNet(hosts)
        cluster = ChaosCluster(net, log_dir, preset,
                               data_root=log_dir / "data" if data else None)
        made.append((net, cluster))
        return cluster

    try:
        yield make
    finally:
        leftovers = []
        for net, cluster in made:
            cluster.close()
            net.close()
            leftovers += net.leftovers()
        assert not leftovers, f"teardown left behind: {leftovers}"


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[Callable[..., Scenario]]:
    records: list[Scenario] = []
    started = time.monotonic()

    def make(name: str, expectation: str, nodes: int, preset: str = "lan") -> Scenario:
        record = REPORT.scenario(request.node.nodeid, name, expectation, nodes, preset)
        records.append(record)
        return record

    yield make
    for record in records:
        record.duration_s = time.monotonic() - started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    record = REPORT.scenarios.get(item.nodeid)
    if record is None:
        return
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            record.outcome = "xfailed" if report.skipped else "XPASS"
        else:
            record.outcome = report.outcome
    elif report.failed:
        record.outcome = f"error in {report.when}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    if REPORT.scenarios:
        REPORT.write()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT.scenarios:
        return
    terminalreporter.section("chaos figures")
    for line in REPORT.table().splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"written to {REPORT.path()}")
