"""A write acknowledged by the StorageActor survives ``kill -9`` of its process.

A child process (tests/storage/durable_writer.py) writes keys through a StorageActor on
a real LMDB or SQLite data dir and prints each key as its acknowledgement arrives. The
test SIGKILLs it mid-stream, reopens the dir and checks that every printed key is there
with its value. (A process kill, not a power cut: what it proves is that nothing is
acknowledged from a buffer the process still held.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from durable_writer import value_of  # tests/storage/ is on sys.path under pytest

from dynago.storage import open_engine

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("durable_writer.py")
ACKS_BEFORE_KILL = 2000
DEADLINE_S = 30.0


class Lines:
    """Every complete line the child prints, collected by a reader thread."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(child,), daemon=True)
        self._thread.start()

    def _read(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        for raw in child.stdout:
            if raw.endswith(b"\n"):  # a line cut by the kill was never fully printed
                with self._lock:
                    self._lines.append(raw.decode().rstrip("\n"))

    def acks(self) -> list[str]:
        with self._lock:
            return [line[4:] for line in self._lines if line.startswith("ACK ")]

    def all(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def wait_until(self, condition_count: int, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        while len(self.acks()) < condition_count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.acks())} acks in {deadline_s} s")
            time.sleep(0.01)  # polling interval

    def finish(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the child's stdout did not close"


@pytest.mark.parametrize("kind", ["lmdb", "sqlite"])
def test_storage_acked_writes_survive_sigkill(kind: str, tmp_path: Path) -> None:
    data_dir = tmp_path / kind
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, str(WRITER), kind, str(data_dir)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = Lines(child)
        lines.wait_until(ACKS_BEFORE_KILL, DEADLINE_S)
        assert child.poll() is None, "the writer stopped before it was killed"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
        lines.finish(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert not [line for line in lines.all() if line.startswith("ERROR")]
    acked = lines.acks()
    assert len(acked) >= ACKS_BEFORE_KILL
    engine = open_engine(kind, str(data_dir))
    try:
        missing = [key for key in acked if engine.get(key.encode()) != value_of(key.encode())]
        assert missing == [], f"{len(missing)} of {len(acked)} acknowledged keys lost"
        assert engine.count() >= len(acked)
    finally:
        engine.close()
