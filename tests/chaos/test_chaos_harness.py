"""The chaos harness itself: its faults are silent and one-way where they say so, and it
leaves nothing behind — not when a run dies on an exception, not when it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_netns import ChaosNet, Host, reap_leftovers, run

pytestmark = pytest.mark.chaos

HERE = Path(__file__).parent

TCP_PORT = 9000
UDP_PORT = 9001

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print("connected")
except TimeoutError:
    print("timeout")
except OSError as error:
    print(type(error).__name__)
"""

TCP_LISTEN = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    server.accept()[0].close()
"""

UDP_RECEIVE = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    print(sock.recv(100).decode(), flush=True)
"""

UDP_SEND = """
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
"""


def _names_with(tag: str) -> list[str]:
    """Namespaces and root-namespace links whose name starts with ``tag``."""
    names = [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines()]
    names += [line.split(":")[1].strip().split("@")[0]
              for line in run(["ip", "-o", "link", "show"]).stdout.splitlines()]
    return sorted(name for name in names if name.startswith(tag))


def _python_in(host: Host, script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([*host.exec_prefix(), sys.executable, "-c", script,
                             *map(str, args)], stdout=subprocess.PIPE, text=True)


def _connect(source: Host, target: Host, timeout_s: float = 1.0) -> str:
    done = subprocess.run([*source.exec_prefix(), sys.executable, "-c", CONNECT, target.ip,
                           str(TCP_PORT), str(timeout_s)],
                          capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


@pytest.fixture
def two_hosts() -> Iterator[tuple[ChaosNet, Host, Host, subprocess.Popen[str]]]:
    """Two namespaces; host 2 accepts TCP, host 1 receives UDP and prints each datagram."""
    net = ChaosNet(2)
    helpers: list[subprocess.Popen[str]] = []
    try:
        one, two = net.host(1), net.host(2)
        helpers.append(_python_in(two, TCP_LISTEN, two.ip, TCP_PORT))
        helpers.append(_python_in(one, UDP_RECEIVE, one.ip, UDP_PORT))
        for helper in helpers:
            assert helper.stdout is not None and helper.stdout.readline().strip() == "listening"
        yield net, one, two, helpers[1]
    finally:
        for helper in helpers:
            helper.kill()
            helper.wait(5)
        net.close()
    assert net.leftovers() == []


def test_chaos_harness_one_way_drop_is_silent_and_one_way(
    two_hosts: tuple[ChaosNet, Host, Host, subprocess.Popen[str]]
) -> None:
    """drop(out) on host 1 towards host 2: host 1's connects time out (dropped, not
    refused or reset) while host 2's datagrams still reach host 1; heal restores both."""
    net, one, two, receiver = two_hosts
    assert _connect(one, two) == "connected"

    net.drop(one, [two], "out")
    assert _connect(one, two) == "timeout"
    subprocess.run([*two.exec_prefix(), sys.executable, "-c", UDP_SEND, one.ip, str(UDP_PORT)],
                   check=True, timeout=30)
    assert receiver.stdout is not None
    assert receiver.stdout.readline().strip() == "hello"

    net.heal(one)
    assert _connect(one, two) == "connected"
    net.cut_link(two)
    assert _connect(one, two) in ("timeout", "OSError")  # no answer: no RST, no refusal
    net.restore_link(two)
    assert _connect(one, two, timeout_s=5.0) == "connected"


def test_chaos_harness_cleans_up_when_the_run_dies_on_an_exception() -> None:
    """A run that raises without closing its net: the atexit hook removes it."""
    script = ("import chaos_netns\nnet = chaos_netns.ChaosNet(2)\nprint(net.tag, flush=True)\n"
              "raise RuntimeError('a failing run')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)})
    assert "a failing run" in done.stderr and done.returncode != 0
    tag = done.stdout.strip()
    assert tag.startswith("dgc")
    assert _names_with(tag) == []


def test_chaos_harness_reaps_what_a_killed_run_left() -> None:
    """A run killed with SIGKILL leaves its namespaces and links; the next run's
    ``reap_leftovers`` (session start) removes them because their PID is gone."""
    script = ("import chaos_netns, time\nnet = chaos_netns.ChaosNet(2)\n"
              "print(net.tag, flush=True)\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             text=True, cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)})
    try:
        assert child.stdout is not None
        tag = child.stdout.readline().strip()
        assert tag.startswith("dgc")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
    left = _names_with(tag)
    assert len(left) == 5, left  # bridge, two veths, two namespaces
    deadline = time.monotonic() + 5
    removed = reap_leftovers()
    while _names_with(tag) and time.monotonic() < deadline:
        time.sleep(0.1)  # namespace deletion is asynchronous in the kernel
    assert _names_with(tag) == []
    assert len([entry for entry in removed if tag in entry]) >= 3  # veths go with the netns
