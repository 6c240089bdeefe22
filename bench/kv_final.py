"""The end of a bench.kv_check run: every key read at ``r=all`` from every node, and the
replicas left stale, from each node's own copy (``GET /v1/kv/explain``, which asks every
replica of the key for what it holds, dynago.kv.explain)."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from bench.kv_history import FinalRead
from bench.kv_run import BUCKET, NODES, Run, exchange, key_path, read_values

FINAL_READ_ATTEMPTS = 8


def final_read_at(run: Run, key: str, node: int) -> FinalRead:
    """``key`` read at r=all through ``node``, retried until it answers (bounded)."""
    error = ""
    for attempt in range(FINAL_READ_ATTEMPTS):
        reply = exchange(run.http_of(node), "GET", key_path(key, "?r=all"),
                         headers={"Accept": "multipart/mixed"})
        if reply.status in (200, 300, 404):
            return FinalRead(key, reply.status != 404, read_values(reply))
        error = reply.error or f"{reply.status} {reply.body[:100]!r}"
        time.sleep(0.2 * (attempt + 1))  # a benchmark's retry backoff, not a test wait
    return FinalRead(key, False, (), error or "no answer")


def final_reads(run: Run, keys: Sequence[str]) -> tuple[dict[str, FinalRead], int]:
    """Every key read at r=all from every node: the state judged (the first node that
    answered, in the order starting at the key's own) and how many keys the nodes'
    answers disagree on (as sets of values; each r=all read also repairs)."""
    def per_key(pair: tuple[int, str]) -> tuple[str, list[FinalRead]]:
        index, key = pair
        return key, [final_read_at(run, key, (index + n) % NODES) for n in range(NODES)]

    judged: dict[str, FinalRead] = {}
    disagree = 0
    with concurrent.futures.ThreadPoolExecutor(max(1, run.args.clients)) as pool:
        for key, reads in pool.map(per_key, enumerate(keys)):
            answered = [r for r in reads if not r.error]
            judged[key] = answered[0] if answered else reads[0]
            if len({frozenset(r.values) for r in answered}) > 1:
                disagree += 1
    return judged, disagree


def explain(run: Run, key: str, node: int = 0) -> dict[str, Any] | None:
    """``/v1/kv/explain`` of ``key`` through ``node``; None if it did not answer."""
    query = urlencode({"bucket": BUCKET, "key": key})
    reply = exchange(run.http_of(node), "GET", f"/v1/kv/explain?{query}")
    if reply.status != 200:
        return None
    answer: dict[str, Any] = json.loads(reply.body)
    return answer


def stale_replicas(run: Run, keys: Sequence[str]) -> dict[str, Any]:
    """Replicas (preference list nodes) whose own copy lacks a version another copy of
    the key holds (``behind`` the merged copy, or missing while another holds it), over
    ``keys``: ``{"replicas": N, "keys": N, "checked": N, "unanswered": N, "examples"}``.

    The explain route reads each replica's store directly (its copy before the route's
    own quorum read), so this is what the replicas hold, not what a quorum read
    returns."""
    def one(pair: tuple[int, str]) -> tuple[str, list[str] | None]:
        index, key = pair
        answer = explain(run, key, index % NODES)
        if answer is None or "nodes" not in answer:
            return key, None
        return key, [row["node"] for row in answer["nodes"]
                     if row["primary"] and row["behind"]]

    found: dict[str, Any] = {"replicas": 0, "keys": 0, "checked": 0, "unanswered": 0,
                             "examples": []}
    with concurrent.futures.ThreadPoolExecutor(max(1, min(4, run.args.clients))) as pool:
        for key, behind in pool.map(one, enumerate(keys)):
            if behind is None:
                found["unanswered"] += 1
                continue
            found["checked"] += 1
            if behind:
                found["replicas"] += len(behind)
                found["keys"] += 1
                if len(found["examples"]) < 5:
                    found["examples"].append(f"{key}: {','.join(behind)}")
    return found
