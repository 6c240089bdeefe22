"""Fixtures of the security tests: real ``dynago node`` processes on 127.0.0.1, and a raw
gRPC client that speaks the wire protocol by hand (an intruder, a buggy peer, a replayer).

Self-contained on purpose (nothing is imported from tests/process):

* ``cluster`` — a factory ``cluster(name, seeds=[...], extra_args=[]) -> NodeProcess`` that
  starts one node (gRPC and HTTP on ``127.0.0.1:0``, ``--preset local``, stderr to a file
  under ``tmp_path``) and waits for its ready line; ``cluster.start_many([...])`` starts
  several at once and waits for all of them. Every process it started is stopped by its
  PID at teardown, whatever the outcome of the test. ``wait``, ``report`` and ``logs``
  put the nodes' views and the tail of their stderr into failure messages.
* ``raw_peer`` — a factory ``raw_peer(address) -> RawPeer``; every channel it opened is
  closed at teardown.
* ``key_file`` — writes a cluster key file (base64 keys, one per line, first is primary).
* ``dynago_cli`` — runs ``python -m dynago ARGS...`` to completion, bounded in time.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from dynago.config import MIN_COMPATIBLE_PROTOCOL_VERSION, PROTOCOL_VERSION
from dynago.launch import LaunchError, NodeProcess, http_json, wait_until
from dynago.transport import codec, handshake

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
                                     data=body if method == "POST" else None)
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
    """``python -m dynago ARGS...`` to completion (killed at ``timeout_s``)."""
    env = dict(os.environ)
    env.pop("GRPC_VERBOSITY", None)
    env.pop("DYNAGO_ADMIN_TOKEN", None)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "dynago", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s, env=env,
    )


@pytest.fixture
def dynago_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs one ``dynago`` command line to completion; see ``run_dynago``."""
    return run_dynago


# ---------------------------------------------------------------------- keys


@pytest.fixture
def key_file(tmp_path: Path) -> Callable[..., str]:
    """``key_file(name, key, ...)`` writes the keys (raw bytes) base64-encoded, one per
    line, first is primary, to ``tmp_path/keys/name`` and returns its path."""
    directory = tmp_path / "keys"
    directory.mkdir()

    def write(name: str, *keys: bytes) -> str:
        path = directory / name
        lines = ["# dynago cluster keys, first is primary"]
        lines += [base64.b64encode(key).decode() for key in keys]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    return write


# ---------------------------------------------------------------------- raw wire client


class RawPeer:
    """One ``Membership/Stream`` call made by hand: raw bytes each way, no serializers.

    A reader thread moves what the node sends into a queue, so every read is bounded in
    time; ``closed`` is set (with ``end``, the call's final status) once the node ends
    the stream. Writes go through a small queue that gRPC drains as fast as the stream's
    flow control allows.
    """

    def __init__(self, address: str, *, credentials: grpc.ChannelCredentials | None = None,
                 options: Sequence[tuple[str, Any]] = ()) -> None:
        opts = [("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20), *options]
        if credentials is None:
            self.channel = grpc.insecure_channel(address, options=opts)
        else:
            self.channel = grpc.secure_channel(address, credentials, options=opts)
        self._outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()
        self._stopping = threading.Event()
        self.end: str = ""
        self.call = self.channel.stream_stream(STREAM_METHOD)(self._requests())
        self._reader = threading.Thread(target=self._read, daemon=True, name="raw-peer-read")
        self._reader.start()
        self.nonce = b""
        self.remote: codec.Hello | None = None

    def _requests(self) -> Iterator[bytes]:
        # Runs on gRPC's request thread until close(); wakes up every 0.1 s to notice it.
        while not self._stopping.is_set():
            try:
                item = self._outbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            yield item

    def _read(self) -> None:
        try:
            for data in self.call:
                self._inbox.put(data)
            self.end = "OK: closed by the node"
        except grpc.RpcError as error:
            self.end = f"{error.code().name}: {error.details()}"
        finally:
            self.closed.set()
            self._inbox.put(None)

    # ------------------------------------------------------------------ bytes

    def send(self, data: bytes, timeout_s: float = RAW_TIMEOUT_S) -> bool:
        """Queue ``data``; False if the stream closed (or stayed full) before it fit."""
        deadline = time.monotonic() + timeout_s
        while not self.closed.is_set():
            try:
                self._outbox.put(data, timeout=0.05)
                return True
            except queue.Full:
                if time.monotonic() >= deadline:
                    return False
        return False

    def recv(self, timeout_s: float = RAW_TIMEOUT_S) -> bytes | None:
        """The next message from the node; None if the stream ended. Raises TimeoutError."""
        try:
            return self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"no message from the node within {timeout_s} s") from None

    def recv_message(self, timeout_s: float = RAW_TIMEOUT_S) -> Any:
        """The next message, decoded; None if the stream ended."""
        data = self.recv(timeout_s)
        return None if data is None else codec.decode(data, 1 << 30)

    def wait_closed(self, timeout_s: float = RAW_TIMEOUT_S) -> bool:
        """True once the node ended the stream (within ``timeout_s``)."""
        return self.closed.wait(timeout_s)

    # ------------------------------------------------------------------ protocol

    def hello(self, name: str = "intruder", *, cluster: str = "dynago",
              address: str = "127.0.0.1:9", nonce: bytes | None = None) -> Any:
        """Send our Hello (fresh 16-byte nonce unless given); return the node's answer
        (its Hello, or a Refusal; None if it closed the stream)."""
        self.nonce = os.urandom(handshake.NONCE_BYTES) if nonce is None else nonce
        self.send(codec.encode(codec.Hello(
            name=name, address=address, cluster=cluster, protocol_version=PROTOCOL_VERSION,
            min_protocol_version=MIN_COMPATIBLE_PROTOCOL_VERSION, nonce=self.nonce)))
        answer = self.recv_message()
        if isinstance(answer, codec.Hello):
            self.remote = answer
        return answer

    def dialler_proof(self, keyring: handshake.Keyring | None, name: str,
                      cluster: str = "dynago") -> bytes:
        """The proof a dialler named ``name`` owes the node after its Hello."""
        assert self.remote is not None, "hello() first"
        return handshake.make_proof(keyring, "dialler", cluster, self.nonce, self.remote.nonce,
                                    name, self.remote.name)

    def handshake(self, name: str = "intruder", *, keyring: handshake.Keyring | None = None,
                  cluster: str = "dynago") -> Any:
        """Hello, the node's Hello, Auth with our proof (empty without a keyring); return
        the node's first message after that (its StateSync when it accepted us)."""
        answer = self.hello(name, cluster=cluster)
        assert isinstance(answer, codec.Hello), f"node answered the Hello with {answer!r}"
        self.send(codec.encode(codec.Auth(self.dialler_proof(keyring, name, cluster))))
        return self.recv_message()

    def close(self) -> None:
        """Half-close, cancel, close the channel; bounded."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._outbox.put_nowait(None)
        self.call.cancel()
        self.channel.close()
        self._reader.join(RAW_TIMEOUT_S)


@pytest.fixture
def raw_peer() -> Iterator[Callable[..., RawPeer]]:
    """Factory of RawPeer streams; every one is closed at teardown."""
    opened: list[RawPeer] = []

    def open_one(address: str, **kwargs: Any) -> RawPeer:
        peer = RawPeer(address, **kwargs)
        opened.append(peer)
        return peer

    try:
        yield open_one
    finally:
        for peer in opened:
            with contextlib.suppress(Exception):
                peer.close()
