"""The key-value store's scenarios in the simulator: clients load the store while faults
come and go, then the faults end, the cluster settles, every key is read at R = N, and
the history is judged by the checker of the real cluster check (dynago.kv.history).

* ``kv-crash`` — one node at a time crashes and restarts on its durable store (down
  1–5 s, a crash every ~3 s), and once in the run every node crashes at the same
  instant and restarts a second later (a power loss);
* ``kv-partition`` — the cluster splits in two random sides for 2–6 s, heals for 1–3 s,
  splits again, …;
* ``kv-loss`` — every message, membership and KV alike, is lost with the run's loss
  rate (``--loss``; ``DEFAULT_KV_LOSS`` if not given);
* ``kv-mixed`` — all three at once.

Timeline: the cluster starts converged; clients run from ``CLIENTS_AT_S`` until the run's
duration, faults from ``FAULTS_AT_S`` until then. Then every crashed node restarts,
partitions heal and loss stops; the run goes on until every node holds every other
alive and no operation is in flight (at most ``SETTLE_S``), counts the **stale
replicas** (copies of a key that lack something of the merge of all its copies),
reads every key at R = N through the real get path (retrying for at most
``FINAL_READ_S``; its read repair brings the stale copies up to date), and counts the
stale replicas again. Same seed, same report, byte for byte.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

from dynago.kv import version
from dynago.kv.history import (
    FinalRead,
    Verdict,
    check_rewrite,
    check_set,
    check_unique,
)
from dynago.kv.model import QUORUM_ALL, GetReply, ObjectKey, Quorum
from dynago.kv.requests import resolve_quorum
from dynago.sim.args import DEFAULT_KV_LOSS
from dynago.sim.cluster import SimCluster
from dynago.sim.kv_clients import BUCKET, SimClients, Workload, values_of
from dynago.sim.kv_io import GetResult
from dynago.sim.kv_world import KvSimParams, KvWorld
from dynago.sim.scenarios import SimOptions

CLIENTS_AT_S = 0.5
FAULTS_AT_S = 1.0
SETTLE_S = 30.0
FINAL_READ_S = 10.0
REPAIR_S = 1.0
"""After the final reads: time for their read repairs to land before the recount."""
CRASH_EVERY_S = 3.0
POWER_LOSS_DOWN_S = 1.0

Log = list[dict[str, Any]]


def _crashes(world: KvWorld, names: list[str], rng: random.Random, start: float,
             end: float, log: Log) -> None:
    """One node down at a time, and one power loss of every node."""

    def restart(name: str) -> None:
        if not world.nodes[name].up and world.now < end:
            world.restart(name, [other for other in names if other != name])
            log.append({"at": round(world.now, 4), "fault": "restart", "node": name})

    def crash() -> None:
        if world.now >= end:
            return
        if all(world.nodes[name].up for name in names):
            victim = rng.choice(names)
            world.crash(victim)
            log.append({"at": round(world.now, 4), "fault": "crash", "node": victim})
            world.at(world.now + rng.uniform(1.0, 5.0), lambda: restart(victim))
        world.at(world.now + rng.expovariate(1.0 / CRASH_EVERY_S), crash)

    def power_loss() -> None:
        for name in names:
            world.crash(name)
        log.append({"at": round(world.now, 4), "fault": "power loss", "node": "*"})
        for name in names:
            world.at(world.now + POWER_LOSS_DOWN_S, functools.partial(restart, name))

    world.at(start + rng.expovariate(1.0 / CRASH_EVERY_S), crash)
    world.at(rng.uniform(start, max(start, end - POWER_LOSS_DOWN_S - 1.0)), power_loss)


def _partitions(world: KvWorld, names: list[str], rng: random.Random, start: float,
                end: float, log: Log) -> None:
    network = world.sim.network

    def split() -> None:
        if world.now >= end:
            return
        order = names.copy()
        rng.shuffle(order)
        cut = rng.randint(1, len(order) - 1)
        network.partition(order[:cut], order[cut:])
        log.append({"at": round(world.now, 4), "fault": "partition",
                    "node": "|".join([",".join(sorted(order[:cut])),
                                      ",".join(sorted(order[cut:]))])})
        world.at(min(end, world.now + rng.uniform(2.0, 6.0)), heal)

    def heal() -> None:
        network.heal()
        log.append({"at": round(world.now, 4), "fault": "heal", "node": "*"})
        world.at(world.now + rng.uniform(1.0, 3.0), split)

    world.at(start + rng.uniform(0.0, 1.0), split)


Faults = Callable[[KvWorld, list[str], random.Random, float, float, Log], None]
"""Schedules one kind of fault between ``start`` and ``end`` and logs each one."""


def _loss(rate: float) -> Faults:
    def faults(world: KvWorld, _names: list[str], _rng: random.Random, start: float,
               _end: float, log: Log) -> None:
        def begin() -> None:
            world.loss = world.sim.network.loss = rate
            log.append({"at": round(world.now, 4), "fault": f"loss {rate}", "node": "*"})

        world.at(start, begin)

    return faults


def _faults(options: SimOptions) -> list[Faults]:
    loss = _loss(options.loss or DEFAULT_KV_LOSS)
    table: dict[str, list[Faults]] = {
        "kv-crash": [_crashes], "kv-partition": [_partitions], "kv-loss": [loss],
        "kv-mixed": [_crashes, _partitions, loss]}
    return table[options.scenario]


def _settled(world: KvWorld, names: list[str]) -> bool:
    return all(world.nodes[a].up and all(world.nodes[a].ring.reachable(b) for b in names)
               for a in names)


def stale_replicas(world: KvWorld, keys: list[str]) -> int:
    """Copies of the keys, on their preference lists, lacking something of the merge of
    all the key's copies (a missing copy counts when some other copy exists)."""
    ring = world.nodes[sorted(world.nodes)[0]].ring.ring
    stale = 0
    for key in keys:
        storage_key = ObjectKey(BUCKET, key).storage_key()
        copies = []
        for name in ring.preference_list_for(ObjectKey(BUCKET, key)):
            data = world.stores[name].get(storage_key)
            copies.append(version.decode(data) if data is not None else version.EMPTY)
        merged = version.EMPTY
        for copy in copies:
            merged = version.merge(merged, copy)
        stale += sum(1 for copy in copies if copy != merged)
    return stale


def _final_reads(world: KvWorld, names: list[str], keys: list[str],
                 deadline: float) -> dict[str, FinalRead]:
    """Every key read at R = N through the get path (coordinators taken in turn), each
    retried every half second until it succeeds or ``deadline`` comes."""
    finals: dict[str, FinalRead] = {}
    pending = set(keys)

    def read(index: int, key: str) -> None:
        node = world.nodes[names[index % len(names)]]

        def done(result: GetResult) -> None:
            if isinstance(result, GetReply):
                finals[key] = FinalRead(key, result.found, values_of(result))
                pending.discard(key)
            elif world.now + 0.5 < deadline:
                world.at(world.now + 0.5, lambda: read(index + 1, key))
            else:
                finals[key] = FinalRead(key, False, error=str(result))
                pending.discard(key)

        node.get(ObjectKey(BUCKET, key), Quorum(r=QUORUM_ALL), done)

    for index, key in enumerate(keys):
        world.at(world.now, functools.partial(read, index, key))
    while pending and world.now < deadline:
        world.run_until(world.now + 0.25)
    for key in sorted(pending):
        finals[key] = FinalRead(key, False, error="no answer before the deadline")
    return finals


def _digest(clients: SimClients) -> str:
    digest = hashlib.sha256()
    for workload, history in clients.histories.items():
        for op in history:
            digest.update(json.dumps([workload, op.as_dict()], sort_keys=True).encode())
    return digest.hexdigest()


def _summary(verdict: Verdict) -> dict[str, Any]:
    out = verdict.as_dict()
    for name in ("lost", "unexpected", "unverified", "recovered", "stale_reads"):
        out[name] = out[name][:20]
    return out


def run_kv(options: SimOptions, params: KvSimParams | None = None,
           workload: Workload | None = None) -> dict[str, Any]:
    """Run one KV scenario of ``options`` (one seed) and return its report."""
    params = params or KvSimParams()
    workload = workload or Workload(clients=options.kv_clients)
    holder: list[KvWorld] = []
    sim = SimCluster(options.config, options.seed, latency_s=options.latency_s,
                     observer=lambda now, node, event: holder[0].member_event(now, node, event))
    world = KvWorld(sim, options.config, options.seed, params, 0.0)
    holder.append(world)
    names = sim.converged(options.nodes)
    world.start(names)
    rng = random.Random(f"{options.seed}/kv-scenario")
    end = options.duration_s
    clients = SimClients(world, names, random.Random(f"{options.seed}/kv-clients"), workload)
    clients.start(CLIENTS_AT_S, end)
    log: Log = []
    for faults in _faults(options):
        faults(world, names, rng, FAULTS_AT_S, end, log)
    world.run_until(end)
    for name in names:
        if not world.nodes[name].up:
            world.restart(name, [other for other in names if other != name])
    sim.network.heal()
    world.loss = sim.network.loss = 0.0
    log.append({"at": round(world.now, 4), "fault": "all healed", "node": "*"})
    while world.now < end + SETTLE_S and not (_settled(world, names) and not clients.busy):
        world.run_until(world.now + 0.25)
    settled_s = round(world.now - end, 4)
    keys = clients.keys()
    stale = stale_replicas(world, keys)
    finals = _final_reads(world, names, keys, world.now + FINAL_READ_S)
    world.run_until(world.now + REPAIR_S)
    stale_after = stale_replicas(world, keys)
    by_workload = {name: {op.key: finals[op.key] for op in history}
                   for name, history in clients.histories.items()}
    verdicts = [check_unique(clients.histories["unique"], by_workload["unique"]),
                check_set(clients.histories["set"], by_workload["set"]),
                check_rewrite(clients.histories["rewrite"], by_workload["rewrite"])]
    quorum = resolve_quorum(options.config.n_val, Quorum())
    return {
        "scenario": options.scenario,
        "nodes": options.nodes,
        "duration_s": options.duration_s,
        "seed": options.seed,
        "preset": options.preset,
        "network": {"latency_s": options.latency_s,
                    "loss": (options.loss or DEFAULT_KV_LOSS)
                    if options.scenario in ("kv-loss", "kv-mixed") else 0.0},
        "kv": {"n_val": options.config.n_val, "r": quorum.r, "w": quorum.w,
               "request_timeout_s": params.request_timeout_s, "clients": workload.clients,
               "unsafe_ack_before_write": params.unsafe_ack_before_write},
        "faults": log,
        "operations": clients.operations,
        "lost": sum(len(v.lost) for v in verdicts),
        "unexpected": sum(len(v.unexpected) for v in verdicts),
        "recovered": sum(len(v.recovered) for v in verdicts),
        "unverified": sum(len(v.unverified) for v in verdicts),
        "stale_reads": len(verdicts[1].stale_reads),
        "stale_replicas": stale,
        "stale_after_repair": stale_after,
        "settled_s": settled_s,
        "keys": len(keys),
        "checks": {v.workload: _summary(v) for v in verdicts},
        "messages": dict(sorted(world.sent.items())),
        "messages_dropped": world.dropped,
        "read_repairs": world.stats()["kv_read_repairs"],
        "history_sha256": _digest(clients),
    }


ROW_FIELDS = ("operations", "lost", "unexpected", "recovered", "unverified", "stale_reads",
              "stale_replicas", "stale_after_repair")
"""What the many-seed summary counts, per seed and in total."""


def run_kv_seeds(options: SimOptions, params: KvSimParams | None = None,
                 workload: Workload | None = None) -> dict[str, Any]:
    """Run ``options.scenario`` for seeds ``options.seed`` to ``seed + seeds - 1``: one
    row per seed, the totals, and the seeds where the checker found something wrong."""
    rows = []
    first: dict[str, Any] = {}
    for seed in range(options.seed, options.seed + options.seeds):
        report = run_kv(dataclasses.replace(options, seed=seed, seeds=1), params, workload)
        first = first or report
        rows.append({"seed": seed, **{name: report[name] for name in ROW_FIELDS},
                     "history_sha256": report["history_sha256"]})
    totals = {name: sum(row[name] for row in rows) for name in ROW_FIELDS}
    return {
        "scenario": options.scenario,
        "nodes": options.nodes,
        "duration_s": options.duration_s,
        "first_seed": options.seed,
        "seeds": options.seeds,
        "preset": options.preset,
        "network": first["network"],
        "kv": first["kv"],
        "totals": totals,
        "failing_seeds": [row["seed"] for row in rows
                          if row["lost"] or row["unexpected"] or row["unverified"]],
        "runs": rows,
    }


def render_kv(report: dict[str, Any]) -> str:
    """A KV report (one seed, or the summary of many) as a few readable lines."""
    kv = report["kv"]
    setting = (f"{report['nodes']} nodes, {report['duration_s']} s of faults, preset "
               f"{report['preset']}, loss {report['network']['loss']}, N={kv['n_val']} "
               f"R={kv['r']} W={kv['w']}, {kv['clients']} clients")
    if "runs" in report:
        totals = report["totals"]
        return "\n".join([
            f"{report['scenario']}: seeds {report['first_seed']}–"
            f"{report['first_seed'] + report['seeds'] - 1}, {setting}",
            table_header(),
            table_row(report["scenario"], report["seeds"], totals),
            "seeds where something acknowledged was lost or something unexpected found: "
            + (", ".join(str(s) for s in report["failing_seeds"]) or "none"),
        ])
    faults = [entry["fault"] for entry in report["faults"]]
    counts = {kind: faults.count(kind) for kind in ("crash", "power loss", "partition")}
    return "\n".join([
        f"{report['scenario']}: seed {report['seed']}, {setting}",
        f"  faults: {counts['crash']} crashes, {counts['power loss']} power losses, "
        f"{counts['partition']} partitions; all healed at {report['duration_s']} s, "
        f"settled {report['settled_s']} s later",
        f"  operations {report['operations']} on {report['keys']} keys (ok/info/fail): "
        + "; ".join(f"{name} {_ops(check['ops'])}" for name, check in report["checks"].items()),
        f"  lost {report['lost']}, unexpected {report['unexpected']}, recovered "
        f"{report['recovered']}, unverified {report['unverified']}, stale reads "
        f"{report['stale_reads']}",
        f"  stale replicas {report['stale_replicas']} after settling, "
        f"{report['stale_after_repair']} after the final reads' repair "
        f"({report['read_repairs']} read repairs in all)",
        f"  {sum(report['messages'].values())} KV messages, {report['messages_dropped']} "
        f"not delivered; history sha256 {report['history_sha256'][:16]}…",
    ])


def _ops(ops: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{kind} {c['ok']}/{c['info']}/{c['fail']}" for kind, c in ops.items()
                     if c["invoked"])


def table_header() -> str:
    return (f"{'scenario':<14}{'seeds':>6}{'operations':>12}{'lost':>6}{'unexpected':>12}"
            f"{'recovered':>11}{'unverified':>12}{'stale reads':>13}{'stale replicas':>16}"
            f"{'after repair':>14}")


def table_row(scenario: str, seeds: int, totals: dict[str, int]) -> str:
    return (f"{scenario:<14}{seeds:>6}{totals['operations']:>12}{totals['lost']:>6}"
            f"{totals['unexpected']:>12}{totals['recovered']:>11}{totals['unverified']:>12}"
            f"{totals['stale_reads']:>13}{totals['stale_replicas']:>16}"
            f"{totals['stale_after_repair']:>14}")
