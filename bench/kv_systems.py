"""The systems ``bench.kv`` compares, each started here on 127.0.0.1 in a temporary
directory and stopped by its PIDs: dynago (3 nodes, N=3, R=W=2; or one node, N=1), etcd
(3 members) and Redis (one server, ``appendonly yes`` + ``appendfsync always``).

Every setting keeps acknowledged writes: dynago commits durably (SQLite, one fsync per
group commit) before it answers; etcd fsyncs its WAL before a proposal is committed (its
default, never turned off here); Redis with ``appendfsync always`` fsyncs the AOF before
it answers a write. (Redis ``everysec`` or etcd ``--unsafe-no-fsync`` would lose
acknowledged writes on a crash: not measured.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.cluster import BenchCluster
from bench.kv_gen import Wire
from bench.procstat import cpu_seconds
from dynago.launch import LaunchError, wait_until

READY_TIMEOUT_S = 60.0

SYSTEMS = ("dynago", "etcd", "redis", "dynago-1")
"""Names of the systems, in the order of the table."""

BINARIES = {"etcd": "etcd", "redis": "redis-server"}
PACKAGES = {"etcd": "etcd-server", "redis": "redis-server"}


@dataclass
class Running:
    """One started system: where to send requests, whose CPU to count, how to stop it."""

    name: str
    wire: Wire
    endpoints: list[tuple[str, int]]
    pids: list[int]
    describe: str
    stop: Callable[[], None]
    version: str = ""
    data_dirs: list[Path] = field(default_factory=list)
    """Each server's data directory, in ``pids`` order (where the system has one)."""

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of every server process so far."""
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += cpu_seconds(pid)
        return total


def missing(name: str) -> str | None:
    """Why system ``name`` cannot run here (its binary is absent), or None."""
    binary = BINARIES.get(name)
    if binary and shutil.which(binary) is None:
        return (f"{name}: skipped, no {binary} on PATH "
                f"(apt-get install {PACKAGES[name]})")
    return None


def free_port() -> int:
    """A port the kernel just gave out (for servers that need theirs in advance)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def start_dynago(root: Path, nodes: int) -> Running:
    """``nodes`` dynago nodes, one data dir each; N=3 (R=W=2) for 3 nodes, N=1 for 1."""
    base = root / f"dynago-{nodes}"
    base.mkdir()
    config = base / "node.toml"
    config.write_text(f"[membership]\nn_val = {min(nodes, 3)}\n")

    def node_args(name: str) -> list[str]:
        return ["--data-dir", str(base / name), "--config", str(config)]

    cluster = BenchCluster(logdir=base, node_args=node_args)
    try:
        cluster.start(nodes)
        wait_until(lambda: cluster.all_list_all() and all(
            int(m.stats().get("kv_ring_members", 0)) == nodes for m in cluster.members),
            timeout_s=READY_TIMEOUT_S, interval_s=0.2,
            what="every dynago node to hold every member in its ring")
    except BaseException:
        cluster.stop_all()
        raise
    name = "dynago" if nodes > 1 else "dynago-1"
    n = min(nodes, 3)
    return Running(name, Wire(name, "http"), [_split(m.http) for m in cluster.members],
                   [m.pid for m in cluster.members],
                   f"{nodes} node{'s' if nodes > 1 else ''}, N={n} R=W={n // 2 + 1}, "
                   f"SQLite, POST/GET /kvstore", cluster.stop_all,
                   data_dirs=[base / m.name for m in cluster.members])


@dataclass
class _Children:
    """Server processes started here; ``stop`` ends them by PID (TERM, then KILL)."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10.0)
        self.procs.clear()


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10.0, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def start_etcd(root: Path, members: int = 3) -> Running:
    """``members`` etcd members (one data dir each), fsync on (etcd's default)."""
    children = _Children()
    clients = [free_port() for _ in range(members)]
    peers = [free_port() for _ in range(members)]
    cluster = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(peers))
    try:
        for i in range(members):
            data = root / f"etcd-e{i}"
            children.start([
                "etcd", "--name", f"e{i}", "--data-dir", str(data),
                "--listen-client-urls", f"http://127.0.0.1:{clients[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{clients[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{peers[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peers[i]}",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", "bench-kv", "--logger", "zap",
                "--log-level", "error"], root / f"etcd-e{i}.log")

        def healthy() -> bool:
            for port in clients:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health",
                                            timeout=2.0) as answer:
                    if b'"true"' not in answer.read():
                        return False
            return True

        wait_until(healthy, timeout_s=READY_TIMEOUT_S, interval_s=0.2,
                   what="every etcd member to report healthy")
    except BaseException:
        children.stop()
        raise
    return Running("etcd", Wire("etcd", "http"), [("127.0.0.1", p) for p in clients],
                   [p.pid for p in children.procs],
                   f"{members} members, fsync on, JSON gateway /v3/kv/put and /v3/kv/range",
                   children.stop, _version(["etcd", "--version"]))


def start_redis(root: Path) -> Running:
    """One Redis server with ``appendonly yes``, ``appendfsync always``, no RDB saves."""
    children = _Children()
    port = free_port()
    data = root / "redis"
    data.mkdir()
    try:
        children.start([
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no", "--protected-mode", "no", "--logfile", ""],
            root / "redis.log")

        def pong() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=2.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")

        wait_until(pong, timeout_s=READY_TIMEOUT_S, interval_s=0.1,
                   what="redis-server to answer PING")
    except BaseException:
        children.stop()
        raise
    return Running("redis", Wire("redis", "resp"), [("127.0.0.1", port)],
                   [p.pid for p in children.procs],
                   "1 server, appendonly yes, appendfsync always, RESP SET/GET",
                   children.stop, _version(["redis-server", "--version"]))


def start(name: str, root: Path) -> Running:
    """Start system ``name`` (one of SYSTEMS); LaunchError if it does not come up."""
    if name == "dynago":
        return start_dynago(root, 3)
    if name == "dynago-1":
        return start_dynago(root, 1)
    if name == "etcd":
        return start_etcd(root)
    if name == "redis":
        return start_redis(root)
    raise LaunchError(f"unknown system {name!r}")
