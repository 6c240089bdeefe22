"""Fixtures shared by every test directory: ``cluster`` (real node processes, see
tests/cluster_support.py) and ``dynago_cli`` (one ``python -m dynago`` command line)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_support import Cluster, run_dynago  # tests/ is on sys.path under pytest


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


@pytest.fixture
def dynago_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs one ``dynago`` command line to completion; see ``run_dynago``."""
    return run_dynago
