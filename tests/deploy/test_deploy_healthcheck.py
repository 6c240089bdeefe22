"""``python -m dynago.ops.healthcheck HOST:PORT`` (the image's HEALTHCHECK) against a real
node process: 0 while it serves, 1 once it stopped or where nothing listens, 2 on bad
input."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.process


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynago.ops.healthcheck", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=30)


def free_port() -> int:
    """A port nothing listens on (bound then closed; nobody else binds it in between
    as far as this test is concerned)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_healthcheck_serving_node_exits_0_then_1_once_it_stopped(cluster: Any) -> None:
    node = cluster("a")
    done = healthcheck(node.address)
    assert (done.returncode, done.stderr) == (0, "")
    # The Dockerfile's own arguments, against this node's address.
    done = healthcheck(node.address, "--timeout", "3", "--service", "dynago.v1.Membership")
    assert done.returncode == 0, done.stderr

    done = healthcheck(node.address, "--service", "no.such.Service")
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr

    assert cluster.stop(node) == 0
    done = healthcheck(node.address, "--timeout", "2")
    assert done.returncode == 1
    assert done.stderr.startswith(f"healthcheck: {node.address}: UNAVAILABLE")


def test_healthcheck_nothing_listening_exits_1() -> None:
    address = f"127.0.0.1:{free_port()}"
    done = healthcheck(address, "--timeout", "2")
    assert done.returncode == 1
    assert done.stderr.startswith(f"healthcheck: {address}: UNAVAILABLE")


@pytest.mark.parametrize("args", [
    ["nonsense"],
    ["127.0.0.1:99999"],
    ["[::1:7001"],
    [],
    ["127.0.0.1:7001", "--timeout", "0"],
    ["127.0.0.1:7001", "--timeout", "soon"],
    ["127.0.0.1:7001", "--tls-cert", "/no/such.pem"],  # TLS needs all three files
    ["127.0.0.1:7001", "--tls-cert", "/no/c.pem", "--tls-key", "/no/k.pem",
     "--tls-ca", "/no/ca.pem"],
])
def test_healthcheck_bad_input_exits_2(args: list[str]) -> None:
    done = healthcheck(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("healthcheck: error: ") and done.stderr.count("\n") == 1
