"""What /proc says about node processes, and an idle window that measures their CPU use."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from dynago.launch import NodeProcess


def proc_status(pid: int, names: Sequence[str] = ("VmRSS", "Threads")) -> dict[str, int]:
    """Fields ``names`` of process ``pid``'s /proc status (memory ones in KiB): by
    default ``VmRSS`` and ``Threads``."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in names:
                fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        parts = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / ticks


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time of process ``pid`` so far, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        parts = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(parts[11]) / ticks, int(parts[12]) / ticks


def context_switches(pid: int) -> int:
    """Voluntary plus involuntary context switches of all threads of ``pid`` so far
    (threads that ended are not counted: a node's threads live as long as it does)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                for line in status:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            continue  # the thread ended meanwhile
    return total


def idle_cpu_percent(nodes: Sequence[NodeProcess], seconds: float) -> tuple[list[float], float]:
    """Leave ``nodes`` alone for ``seconds`` (an observation window, not a test wait) and
    return each one's CPU use in percent of one core over it, and the window's length."""
    before = [cpu_seconds(node.pid) for node in nodes]
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    elapsed = time.monotonic() - started
    after = [cpu_seconds(node.pid) for node in nodes]
    return [100 * (b - a) / elapsed for a, b in zip(before, after, strict=True)], elapsed
