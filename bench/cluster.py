"""Real node processes for the benchmarks: staggered launches, the nodes' own log lines,
and teardown of every process by its PID, also on Ctrl-C, SIGTERM or an error.

Times of membership changes come from the nodes' own INFO log lines ("member X (ADDR) is
now STATUS", millisecond timestamps of the machine's clock) rather than from polling the
admin API: a poll adds its own period and load to every figure, a log line does not.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NamedTuple

from bench.procstat import cpu_seconds
from dynago.launch import NodeProcess, http_json, wait_until

MEMBER_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) INFO \S+: member (?P<name>\S+) "
    r"\((?P<address>[^)]*)\) is now (?P<status>\w+)"
)
"""A membership change as logged by ``dynago node`` (text log format)."""


class Event(NamedTuple):
    """One logged membership change: when (unix time), about whom, the new status."""

    at: float
    member: str
    status: str


class LogWatcher:
    """Reads one node's stderr log incrementally and keeps its membership events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[Event] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[Event]:
        """Read what was appended since the last call; return the new events."""
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next call
        new = []
        for raw in lines:
            match = MEMBER_LINE.match(raw.decode(errors="replace"))
            if match:
                moment = datetime.datetime.fromisoformat(match["ts"]).timestamp()
                new.append(Event(moment, match["name"], match["status"]))
        self.events.extend(new)
        return new

    def latest(self) -> dict[str, Event]:
        """The last event logged about each member."""
        return {event.member: event for event in self.events}

    def first(self, member: str, statuses: Iterable[str], since: float) -> Event | None:
        """The first event about ``member`` with one of ``statuses`` at or after ``since``."""
        wanted = set(statuses)
        for event in self.events:
            if event.member == member and event.status in wanted and event.at >= since:
                return event
        return None


@dataclass
class Member:
    """One node process of a BenchCluster and the watcher of its log."""

    name: str
    process: NodeProcess
    log: LogWatcher
    started_wall: float
    """time.time() just before the process was started."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return self.process.address

    @property
    def http(self) -> str:
        return self.process.http

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = http_json(self.http, "/v1/stats", timeout_s=5.0)
        return result


@dataclass
class BenchCluster:
    """Node processes on 127.0.0.1, all seeding from the first one (a star).

    Use it as a context manager: on leaving the block every process it ever started is
    stopped by its PID (SIGTERM to all, then SIGKILL to whatever is left)."""

    logdir: Path
    preset: str = "lan"
    stagger_s: float = 0.05
    """Extra pause after each node's ready line before the next node is started."""
    extra_args: Sequence[str] = ()
    node_args: Callable[[str], Sequence[str]] | None = None
    """Arguments for one node only, by its name (e.g. its own ``--data-dir``)."""
    verbose: bool = False
    """Print a line per 10 launched nodes (ready latency, load)."""
    members: list[Member] = field(default_factory=list)
    _all: list[NodeProcess] = field(default_factory=list)
    launch_s: float = 0.0
    """Wall time of the whole staggered launch of ``start``."""
    ready_s: list[float] = field(default_factory=list)
    """Seconds from each node's start to its ready line, in launch order."""
    launch_load: list[float] = field(default_factory=list)
    """1-minute load average as each node of ``start`` was ready."""
    launch_cpu: list[float] = field(default_factory=list)
    """CPU of all running nodes together (percent of one core) over each launch step of
    ``start``: from the previous node's step to this one's (its start-up included)."""

    def __enter__(self) -> BenchCluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop_all()

    def launch(self, name: str, *, bind: str = "127.0.0.1:0", http: str = "127.0.0.1:0",
               seed: str | None = None, ready_timeout_s: float = 30.0) -> Member:
        """Start node ``name`` seeding from ``seed`` (default: the first member) and wait
        for its ready line; ``bind`` and ``http`` reuse a former life's ports."""
        seed = seed or (self.members[0].address if self.members else None)
        seeds = ["--seed", seed] if seed else []
        log_path = self.logdir / f"{name}.log"
        started = time.time()
        process = NodeProcess(
            ["--bind", bind, "--http", http, "--preset", self.preset,
             "--name", name, *seeds, *self.extra_args,
             *(self.node_args(name) if self.node_args else ())],
            stderr_path=str(log_path),
        )
        self._all.append(process)
        watcher = LogWatcher(log_path)
        watcher.poll()  # a restart appends to the same file: skip the earlier life's lines
        watcher.events.clear()
        member = Member(name, process, watcher, started)
        process.wait_ready(ready_timeout_s)
        return member

    def start(self, n: int, *, wait_joined_s: float = 0.0) -> Member:
        """Start ``n`` nodes one after the other (each waits for the previous one's ready
        line, then ``stagger_s``); returns the last one.

        With ``wait_joined_s`` > 0, each launch also waits (up to that long) until every
        running node has logged the previous one alive: joins then never overlap."""
        began = time.monotonic()
        step_began, cpu_before = began, self._cpu_total()
        for i in range(n):
            if i and self.stagger_s:
                time.sleep(self.stagger_s)  # the launch stagger, reported with the results
            member = self.launch(f"n{i:03d}")
            self.members.append(member)
            if wait_joined_s > 0 and i:
                self.wait_logs(
                    lambda new=member: all(
                        m.log.first(new.name, ["alive"], 0.0) for m in self.members[:-1]),
                    timeout_s=wait_joined_s, interval_s=0.2,
                    what=f"every node to log {member.name} alive")
            self.ready_s.append(time.time() - member.started_wall)
            self.launch_load.append(os.getloadavg()[0])
            now, cpu_now = time.monotonic(), self._cpu_total()
            self.launch_cpu.append(100 * (cpu_now - cpu_before) / max(now - step_began, 1e-6))
            step_began, cpu_before = now, cpu_now
            if self.verbose and (i + 1) % 10 == 0:
                print(f"  {i + 1} nodes ready; last ready {self.ready_s[-1]:.2f} s after "
                      f"its start; load {self.launch_load[-1]:.2f}; all nodes' CPU over "
                      f"the last step {self.launch_cpu[-1]:.0f} %", flush=True)
        self.launch_s = time.monotonic() - began
        return self.members[-1]

    def _cpu_total(self) -> float:
        total = 0.0
        for member in self.members:
            try:
                total += cpu_seconds(member.pid)
            except (OSError, IndexError, ValueError):
                pass  # it exited
        return total

    def poll_logs(self, members: Sequence[Member] | None = None) -> None:
        for member in members if members is not None else self.members:
            member.log.poll()

    def wait_logs(self, done: Any, *, timeout_s: float, what: str,
                  members: Sequence[Member] | None = None, interval_s: float = 0.05) -> None:
        """Poll the logs of ``members`` (default: all) every ``interval_s`` until
        ``done()``."""

        def check() -> bool:
            self.poll_logs(members)
            return bool(done())

        wait_until(check, timeout_s=timeout_s, interval_s=interval_s, what=what)

    def converged_at(self, members: Sequence[Member] | None = None) -> float | None:
        """When the last of ``members`` logged the last other member alive (every node
        then held every other one alive), or None while one is still missing."""
        group = list(members if members is not None else self.members)
        names = {m.name for m in group}
        moments: list[float] = []
        for member in group:
            latest = member.log.latest()
            others = names - {member.name}
            if any(latest.get(o) is None or latest[o].status != "alive" for o in others):
                return None
            moments.extend(latest[o].at for o in others)
        return max(moments, default=0.0)

    def all_list_all(self, members: Sequence[Member] | None = None) -> bool:
        """Every member's GET /members lists exactly the addresses of ``members``."""
        group = list(members if members is not None else self.members)
        expected = sorted(m.address for m in group)
        return all(sorted(m.process.members()) == expected for m in group)

    def replace(self, old: Member, new: Member) -> None:
        self.members[self.members.index(old)] = new

    def stop_all(self, timeout_s: float = 10.0) -> None:
        """SIGTERM every process started here, wait (bounded), SIGKILL the rest."""
        for process in self._all:
            try:
                process.signal(signal.SIGCONT)
                process.signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        for process in self._all:
            remaining = deadline - time.monotonic()
            if remaining > 0 and process.proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.proc.wait(remaining)
        # SIGKILL every one left before reaping any: on a loaded machine (a hundred nodes
        # leaving at once) one slow exit must not keep the others running.
        for process in self._all:
            if process.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.signal(signal.SIGCONT)
                    os.kill(process.pid, signal.SIGKILL)
        reap_deadline = time.monotonic() + 60.0
        for process in self._all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.proc.wait(max(0.1, reap_deadline - time.monotonic()))
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.close()
        self._all.clear()


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that the ``finally`` blocks and context
    managers stop every node process, as on Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of ``values`` (which must not be empty)."""
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}
