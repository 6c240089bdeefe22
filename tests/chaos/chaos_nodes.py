"""``dynago node`` processes inside the namespaces of a ``ChaosNet``, and what they log.

Node ``nI`` runs in host I's namespace with gRPC on ``<host ip>:7000`` and the admin API on
``<host ip>:8000`` (the same address in every life, so a restart reuses it), ``--preset
lan`` unless told otherwise. Each life writes its stderr to its own file; every membership
change a node makes is one INFO line there ("member X (ADDRESS) is now STATUS, incarnation
N [KIND]", dynago/actors/membership.py), which ``events()`` parses into the timeline the
scenarios measure from (millisecond timestamps, the same machine clock as ``time.time()``).

Signals go to the node's own PID (``ip netns exec`` execs in place): SIGKILL, SIGSTOP,
SIGCONT, SIGTERM. ``close()`` stops every process this cluster started, by its PID.
"""

from __future__ import annotations

import datetime
import json
import re
import signal
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from chaos_netns import ChaosNet, Host

from dynago.launch import LaunchError, NodeProcess, wait_until

T = TypeVar("T")

GRPC_PORT = 7000
HTTP_PORT = 8000
READY_TIMEOUT_S = 20.0
POLL_S = 0.1
HTTP_TIMEOUT_S = 1.0
LOG_TAIL_LINES = 30

_EVENT = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) INFO \S+: member (?P<member>\S+) "
    r"\((?P<address>[^)]*)\) is now (?P<status>\w+), incarnation (?P<inc>\d+)"
)

# Urllib would send requests for 198.18.x.y through a proxy named in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(address: str, path: str, timeout_s: float = HTTP_TIMEOUT_S) -> Any:
    """GET ``path`` on an admin API, never through a proxy."""
    with _OPENER.open(f"http://{address}{path}", timeout=timeout_s) as response:
        return json.loads(response.read().decode())


@dataclass(frozen=True)
class Event:
    """One membership change logged by ``observer``: ``member`` became ``status``."""

    at: float
    observer: str
    member: str
    status: str
    incarnation: int


@dataclass
class ChaosNode:
    """Node ``name`` on ``host``; ``process`` is its current life (None while down)."""

    name: str
    host: Host
    seeds: list[str]
    process: NodeProcess | None = None
    lives: list[tuple[NodeProcess, Path]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host.ip}:{GRPC_PORT}"

    @property
    def http(self) -> str:
        return f"{self.host.ip}:{HTTP_PORT}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.proc.poll() is None


class ChaosCluster:
    """The nodes of one scenario, one per host of ``net``; see the module docstring."""

    def __init__(self, net: ChaosNet, log_dir: Path, preset: str = "lan",
                 data_root: Path | None = None) -> None:
        self.net = net
        self.log_dir = log_dir
        self.preset = preset
        self.data_root = data_root
        """With it, node nI keeps its store in ``data_root/nI`` (the same in every life)."""
        self.nodes: list[ChaosNode] = []

    # ------------------------------------------------------------------ lifecycle

    def add(self, seeds: Sequence[ChaosNode] = ()) -> ChaosNode:
        """Define the node of the next free host (not started yet)."""
        host = self.net.host(len(self.nodes) + 1)
        node = ChaosNode(f"n{host.index}", host, [seed.address for seed in seeds])
        self.nodes.append(node)
        return node

    def _launch(self, node: ChaosNode, seeds: Sequence[str] | None = None) -> NodeProcess:
        if node.running():
            raise RuntimeError(f"{node.name} is already running (pid {node.pid})")
        args = ["--bind", node.address, "--http", node.http, "--preset", self.preset,
                "--name", node.name]
        for seed in node.seeds if seeds is None else seeds:
            args += ["--seed", seed]
        if self.data_root is not None:
            args += ["--data-dir", str(self.data_root / node.name)]
        path = self.log_dir / f"{node.name}.life{len(node.lives) + 1}.log"
        process = NodeProcess(args, stderr_path=str(path), prefix=node.host.exec_prefix())
        node.process = process
        node.lives.append((process, path))
        return process

    def _ready(self, node: ChaosNode) -> ChaosNode:
        assert node.process is not None
        try:
            node.process.wait_ready(READY_TIMEOUT_S)
        except LaunchError as error:
            pytest.fail(self.report(f"{node.name}: {error}"))
        return node

    def start(self, node: ChaosNode, seeds: Sequence[str] | None = None) -> ChaosNode:
        """Start ``node`` (seeds: its own unless given) and wait for its ready line."""
        self._launch(node, seeds)
        return self._ready(node)

    def start_all(self, nodes: Sequence[ChaosNode] | None = None,
                  stagger_s: float = 0.05) -> None:
        """Start ``nodes`` (default all) a little apart, then wait for every ready line.
        The stagger spreads the start-up CPU burst on a small machine; it waits for
        nothing."""
        chosen = list(self.nodes if nodes is None else nodes)
        for node in chosen:
            self._launch(node)
            time.sleep(stagger_s)
        for node in chosen:
            self._ready(node)

    def form(self, count: int, timeout_s: float = 30.0) -> list[ChaosNode]:
        """Define and start ``count`` nodes, n1 the seed of all the others, and wait until
        every node lists every node alive."""
        seed = self.add()
        nodes = [seed, *(self.add([seed]) for _ in range(count - 1))]
        self.start_all(nodes)
        self.wait(lambda: self.all_alive(nodes, nodes),
                  f"all {count} nodes to list each other alive", timeout_s)
        return nodes

    def kill(self, node: ChaosNode) -> None:
        """SIGKILL (a crash: no leave is announced)."""
        assert node.process is not None
        node.process.kill()

    def pause(self, node: ChaosNode) -> None:
        """SIGSTOP: the process and its open connections stay, it answers nothing."""
        assert node.process is not None
        node.process.signal(signal.SIGSTOP)

    def resume(self, node: ChaosNode) -> None:
        assert node.process is not None
        node.process.signal(signal.SIGCONT)

    def stop(self, node: ChaosNode) -> int:
        """SIGTERM: the node announces its leave and exits (SIGKILL if it lingers)."""
        assert node.process is not None
        return node.process.terminate()

    def close(self) -> None:
        """Stop every process this cluster started, by its PID (SIGCONT first if paused)."""
        for node in self.nodes:
            for process, _path in node.lives:
                process.close()

    # ------------------------------------------------------------------ observing

    def view(self, node: ChaosNode) -> dict[str, str]:
        """``node``'s /v1/members as member name -> status."""
        return {m["name"]: m["status"] for m in get_json(node.http, "/v1/members")}

    def views(self, observers: Iterable[ChaosNode]) -> dict[str, dict[str, str]]:
        return {node.name: self.view(node) for node in observers}

    def all_alive(self, observers: Sequence[ChaosNode], members: Sequence[ChaosNode]) -> bool:
        """Every observer holds every one of ``members`` (and itself) alive."""
        names = {m.name for m in members}
        for observer in observers:
            view = self.view(observer)
            if any(view.get(name) != "alive" for name in names | {observer.name}):
                return False
        return True

    def all_hold(self, observers: Iterable[ChaosNode], member: ChaosNode, status: str) -> bool:
        """Every observer holds ``member`` with ``status`` (e.g. "failed")."""
        return all(self.view(observer).get(member.name) == status for observer in observers)

    def events(self, since: float = 0.0) -> list[Event]:
        """Every membership change logged by any life of any node at or after ``since``
        (time.time()), about another member, in time order."""
        found = []
        for node in self.nodes:
            for _process, path in node.lives:
                if not path.exists():
                    continue
                for line in path.read_text(errors="replace").splitlines():
                    match = _EVENT.match(line)
                    if not match or match["member"] == node.name:
                        continue
                    at = datetime.datetime.fromisoformat(match["ts"]).timestamp()
                    if at >= since - 0.001:
                        found.append(Event(at, node.name, match["member"], match["status"],
                                           int(match["inc"])))
        return sorted(found, key=lambda event: event.at)

    def wait(self, condition: Callable[[], T], what: str, timeout_s: float) -> T:
        """Poll ``condition`` every 0.1 s until truthy; fail the test with every node's
        view and log tail at the deadline."""
        try:
            return wait_until(condition, timeout_s=timeout_s, interval_s=POLL_S, what=what)
        except LaunchError as error:
            pytest.fail(self.report(str(error)))

    def report(self, headline: str) -> str:
        """A failure message: ``headline``, each running node's view, nftables rules, and
        the tail of every life's log."""
        parts = [headline, "views (/v1/members):"]
        for node in self.nodes:
            if not node.running():
                parts.append(f"  {node.name}: not running")
                continue
            try:
                parts.append(f"  {node.name}: {self.view(node)}")
            except Exception as error:  # noqa: BLE001 - diagnostics only
                parts.append(f"  {node.name}: (no answer: {error})")
        for node in self.nodes:
            rules = [line.strip() for line in self.net.rules(node.host).splitlines()
                     if " drop" in line]
            if rules:
                parts.append(f"  nft rules of {node.name}: {'; '.join(rules)}")
        for node in self.nodes:
            for number, (process, path) in enumerate(node.lives, 1):
                code = process.proc.poll()
                state = "running" if code is None else f"exited {code}"
                text = path.read_text(errors="replace") if path.exists() else ""
                tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
                parts.append(f"--- {node.name} life {number} (pid {process.pid}, {state}) "
                             f"---\n{tail}")
        return "\n".join(parts)


# ---------------------------------------------------------------------- figures


def hold_fault(seconds: float) -> None:
    """Keep the fault in place for ``seconds``: the duration the scenario prescribes (a
    30 s partition, say), not a wait for some condition."""
    time.sleep(seconds)


def first_time(events: Iterable[Event], observer: str, member: str,
               statuses: Sequence[str], after: float) -> float | None:
    """When ``observer`` first logged ``member`` in one of ``statuses`` at/after ``after``."""
    for event in events:
        if (event.observer == observer and event.member == member
                and event.status in statuses and event.at >= after - 0.001):
            return event.at
    return None


def detection(events: Sequence[Event], pairs: Iterable[tuple[str, str]],
              fault_at: float) -> dict[str, float | None]:
    """For (observer, member) pairs that should lose each other at ``fault_at``: seconds
    to the first suspicion (or failure) of any pair, and to the last pair's failure
    (None if some pair never logged one)."""
    suspected, failed = [], []
    for observer, member in pairs:
        first = first_time(events, observer, member, ("suspect", "failed"), fault_at)
        if first is not None:
            suspected.append(first - fault_at)
        failed.append(first_time(events, observer, member, ("failed",), fault_at))
    return {
        "first_suspicion_s": round(min(suspected), 3) if suspected else None,
        "failed_everywhere_s": (None if not failed or any(t is None for t in failed)
                                else round(max(t for t in failed if t is not None)
                                           - fault_at, 3)),
    }


def last_change(events: Sequence[Event], since: float, until: float) -> float | None:
    """Seconds from ``since`` to the last membership change logged before ``until``."""
    times = [event.at for event in events if since - 0.001 <= event.at <= until]
    return round(max(times) - since, 3) if times else None


def false_alarms(events: Iterable[Event], expected: Callable[[Event], bool]
                 ) -> dict[str, int]:
    """Suspicions and failures that ``expected`` does not account for."""
    counts = {"false_suspicions": 0, "false_failures": 0}
    for event in events:
        if event.status in ("suspect", "failed") and not expected(event):
            counts["false_suspicions" if event.status == "suspect" else "false_failures"] += 1
    return counts


def false_alarms_around(events: Sequence[Event], expected: Callable[[Event], bool],
                        healed_at: float) -> dict[str, Any]:
    """``false_alarms`` in total, and the false failures logged after ``healed_at``
    separately (``false_failures_after_heal``): those come from stale records that the
    cut-off side brings back with it, not from the fault itself."""
    counts: dict[str, Any] = dict(false_alarms(events, expected))
    after = false_alarms([e for e in events if e.at > healed_at], expected)
    counts["false_failures_after_heal"] = after["false_failures"]
    counts["false_failure_longest_s"] = longest_false_failure(events, expected)
    return counts


def longest_false_failure(events: Sequence[Event], expected: Callable[[Event], bool]
                          ) -> float | None:
    """Longest time an observer held a member failed that ``expected`` does not account
    for, until it logged that member alive again (None if there was no such failure)."""
    longest = None
    for index, event in enumerate(events):
        if event.status != "failed" or expected(event):
            continue
        back = next((later.at for later in events[index + 1:]
                     if later.observer == event.observer and later.member == event.member
                     and later.status == "alive"), None)
        if back is not None:
            span = round(back - event.at, 3)
            longest = span if longest is None else max(longest, span)
    return longest
