"""Fixtures shared by every test directory: ``cluster`` (real node processes, see
tests/cluster_support.py), ``dynago_cli`` (one ``python -m dynago`` command line),
``kv_nodes`` (in-process nodes with the key-value store) and ``cli_main`` (``dynago``
run in this process)."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


_KV_NODE_PORTS = itertools.count(17700)
"""Addresses of in-process nodes on a MemoryNetwork: names only, nothing binds them."""


@pytest.fixture
def kv_nodes() -> Iterator[Callable[..., Any]]:
    """Factory of in-process nodes on one MemoryNetwork with an admin API on 127.0.0.1:0
    and the key-value store (``kv=False``: without it; ``kv_config``: its KvConfig):
    ``start(name, seed=NODE)``. Every
    node is stopped at teardown."""
    import pykka

    from dynago.actors.kv_service import KvService
    from dynago.config import Config
    from dynago.node import Node
    from dynago.transport.memory import MemoryNetwork

    network = MemoryNetwork()
    started: list[Node] = []

    def start(name: str, *, seed: Node | None = None, kv: bool = True,
              kv_config: Any = None) -> Node:
        node = Node(bind=f"127.0.0.1:{next(_KV_NODE_PORTS)}", name=name,
                    config=Config.local(), seeds=(seed.address,) if seed else (),
                    transport=network.transport(), http_bind="127.0.0.1:0",
                    services=[KvService(kv_config)] if kv else ())
        started.append(node)
        return node.start()

    yield start
    for node in started:
        node.stop(leave=False)
    pykka.ActorRegistry.stop_all(timeout=10)


@pytest.fixture
def cli_main(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Runs ``dynago ARGV...`` in this process (``dynago.cli.main``): (exit code, stdout,
    stderr)."""
    from dynago.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run
