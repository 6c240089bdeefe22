"""The faults of bench.kv_check, one at a time, each healed before the next begins.

* ``kill``: SIGKILL one node (any: each coordinates its clients' requests), wait a
  second, start it again on its data dir with its name and both ports;
* ``pause1`` / ``pause10``: SIGSTOP one node for 1 s / 10 s, then SIGCONT;
* ``partition``: cut the cluster into two sides (one node against the other two) through
  every node's ``POST /v1/faults`` (both directions), for ``PARTITION_S``, then heal;
* ``killall``: SIGKILL every node at once, then start them all again on their data dirs;
* ``pause``: the former 3 s pause (kept for its command line).

After each fault the nemesis waits until every node lists every member alive again and
notes how long that took (``converge_s``, from the end of the fault).
"""

from __future__ import annotations

import json
import random
import signal
import urllib.request
from typing import Any

from bench.cluster import BenchCluster, Member
from bench.kv_run import NODES, Run
from dynago.launch import LaunchError, wait_until

CONVERGE_TIMEOUT_S = 60.0
KILL_DOWN_S = 1.0
PARTITION_S = 8.0
BETWEEN_FAULTS_S = 2.0

PAUSES = {"pause1": 1.0, "pause": 3.0, "pause10": 10.0}
FAULTS = ("none", "kill", "pause1", "pause10", "partition", "killall", "pause")
"""Every ``--faults`` choice; ``--all`` runs all but ``none`` and ``pause``."""

BUDGET_S = {"kill": KILL_DOWN_S + 3.0, "killall": KILL_DOWN_S + 6.0,
            "partition": PARTITION_S + 1.0,
            **{name: pause + 1.0 for name, pause in PAUSES.items()}}
"""How long a fault takes until it healed, about: a fault starts only if it should have
healed before the clients' quiet period."""


def all_alive(cluster: BenchCluster) -> bool:
    """Every node lists every member alive, and every node's ring holds all of them."""
    names = {m.name for m in cluster.members}
    for member in cluster.members:
        seen = {r["name"]: r["status"] for r in member.process.members_v1()}
        if any(seen.get(name) != "alive" for name in names):
            return False
        if int(member.stats().get("kv_ring_members", 0)) != len(names):
            return False
    return True


def post_faults(member: Member, rules: dict[str, Any]) -> None:
    """``POST /v1/faults`` on ``member`` (started with fault injection)."""
    request = urllib.request.Request(f"http://{member.http}/v1/faults",
                                     data=json.dumps(rules).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5.0) as answer:
        answer.read()


def restart(cluster: BenchCluster, index: int) -> None:
    """Start node ``index`` again on its data dir, name and ports, seeding from the next."""
    victim = cluster.members[index]
    other = cluster.members[(index + 1) % NODES]
    reborn = cluster.launch(victim.name, bind=victim.address, http=victim.http,
                            seed=other.address)
    cluster.replace(victim, reborn)


def inject(run: Run, mode: str, index: int, fault: dict[str, Any]) -> None:
    """One fault of ``mode`` on node ``index``, until it is undone (not yet healed)."""
    cluster = run.cluster
    victim = cluster.members[index]
    if mode == "kill":
        victim.process.signal(signal.SIGKILL)
        victim.process.proc.wait(5)
        run.stop.wait(KILL_DOWN_S)
        restart(cluster, index)
    elif mode == "killall":
        fault["node"] = "all"
        for member in cluster.members:
            member.process.signal(signal.SIGKILL)
        for member in cluster.members:
            member.process.proc.wait(5)
        run.stop.wait(KILL_DOWN_S)
        for i in range(NODES):
            restart(cluster, i)
    elif mode in PAUSES:
        victim.process.signal(signal.SIGSTOP)
        run.stop.wait(PAUSES[mode])
        victim.process.signal(signal.SIGCONT)
    elif mode == "partition":
        others = [m for m in cluster.members if m is not victim]
        fault["sides"] = [[victim.name], [m.name for m in others]]
        for other in others:
            post_faults(victim, {"cut": {"node": other.name}})
            post_faults(other, {"cut": {"node": victim.name}})
        run.stop.wait(PARTITION_S)
        for member in cluster.members:
            post_faults(member, {"heal": True})
    else:
        raise ValueError(f"unknown fault {mode!r}")


def nemesis(run: Run, mode: str, until_s: float) -> None:
    """Faults of ``mode`` one at a time until ``until_s``; each healed (every node lists
    every member alive) before the next begins."""
    rng = random.Random(run.args.seed)
    while not run.stop.wait(BETWEEN_FAULTS_S) and run.now() + BUDGET_S[mode] < until_s:
        index = rng.randrange(NODES)
        fault: dict[str, Any] = {"fault": mode, "node": run.cluster.members[index].name,
                                 "at_s": round(run.now(), 2)}
        try:
            inject(run, mode, index, fault)
        except (OSError, LaunchError) as error:
            fault["error"] = f"injecting: {error}"
        fault["undone_at_s"] = round(run.now(), 2)
        try:
            wait_until(lambda: all_alive(run.cluster), timeout_s=CONVERGE_TIMEOUT_S,
                       interval_s=0.1, what="every node to list every member alive")
            fault["healed_at_s"] = round(run.now(), 2)
            fault["converge_s"] = round(fault["healed_at_s"] - fault["undone_at_s"], 2)
        except LaunchError as error:
            fault["healed_at_s"] = None
            fault["error"] = str(error)
        run.faults.append(fault)
        print(f"  {fault}", flush=True)
