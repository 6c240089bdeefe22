"""Two small JSON reads of the key-value store for the web page (``/ui``) and operators.

* ``GET /v1/kv/latency`` — this node's KV request latency histograms, as ``/metrics``
  has them (``dynago_kv_request_duration_seconds``), in one JSON document::

      {"node": NAME,
       "bounds": [0.0005, 0.001, ..., 10.0],          # upper bounds, seconds (+Inf implied)
       "ops": {"get": {"cumulative": [c0, ..., cN], "count": int, "sum": float},
               "put": {...}, "delete": {...}}}

  ``cumulative[i]`` counts the requests that took at most ``bounds[i]``; it has one
  entry more than ``bounds`` (the +Inf bucket, equal to ``count``). The counts only grow
  while the node runs: a client takes two readings and the differences are the requests
  between them (the page computes p99 over the last minute that way). 503 if the KV
  actor does not answer.

* ``GET /v1/kv/explain?bucket=B&key=K`` — what this node knows of one key: its partition
  and preference list in this node's ring now (``partition_of``,
  ``Ring.preference_list_for``), and what a read at quorum (r = N//2+1) through this
  node returns: siblings (values as text when they are UTF-8, else base64; the first
  ``VALUE_PREVIEW_BYTES`` only), the causal context (base64) and the coordinator's answer
  or its error (``read.status`` and ``read.error``). Bad bucket or key: 400 (413 too long),
  and nothing is read.

  With the KV service's explainer (``explain``), before that read, every node of the
  preference list (and, on a small ring, every member holding something of the key, a
  hint say) is asked for its own copy and write history (dynago.kv.explain): ``nodes``
  lists per node its ``status`` ("holds", "not found", "no answer", "unreachable",
  "error", "malformed"), ``primary``, the ``object`` it holds (clock and siblings with
  their dots), whether it is ``behind`` the ``merged`` value of every copy, its
  ``history`` ([{at, how, peer, size}], ``at`` in seconds since the epoch) and the
  ``hints`` it holds for the key; ``asked`` names the nodes asked. If the explainer does
  not answer, ``nodes_error`` says so and the rest is still given.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dynago.http.membership_api import rfc3339
from dynago.kv.model import QUORUM_MAJORITY, GetReply, KvError, KvFrontend, ObjectKey, Quorum
from dynago.kv.ring import Ring, partition_of
from dynago.kv.stats import LATENCY_BUCKETS_S, KvSnapshot

VALUE_PREVIEW_BYTES = 4096
"""Most bytes of one sibling's value that ``/v1/kv/explain`` shows (values reach 1 MiB)."""


def latency_json(node: str, snapshot: KvSnapshot) -> dict[str, Any]:
    """The ``/v1/kv/latency`` document of one KV reading (see the module docstring)."""
    return {
        "node": node,
        "bounds": list(LATENCY_BUCKETS_S),
        "ops": {op: {"cumulative": [count for _bound, count in histogram.buckets],
                     "count": histogram.count, "sum": histogram.sum}
                for op, histogram in snapshot.latency.items()},
    }


def sibling_json(content_value: bytes, content_type: str, vtag: str, deleted: bool,
                 last_modified_us: int) -> dict[str, Any]:
    """One sibling for the page: its value as text if UTF-8 (else base64), cut short."""
    shown = content_value[:VALUE_PREVIEW_BYTES]
    try:
        value, encoding = shown.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(shown).decode(), "base64"
    return {"vtag": vtag, "content_type": content_type, "value": value,
            "value_encoding": encoding, "value_bytes": len(content_value),
            "truncated": len(content_value) > VALUE_PREVIEW_BYTES, "deleted": deleted,
            "last_modified": rfc3339(last_modified_us / 1e6) if last_modified_us else None}


def read_json(reply: GetReply) -> dict[str, Any]:
    """A quorum read's answer as ``/v1/kv/explain`` shows it."""
    return {
        "status": 200 if reply.found else 404,
        "found": reply.found,
        "node": reply.node,
        "context": base64.b64encode(reply.context).decode(),
        "siblings": [sibling_json(s.content.value, s.content.content_type, s.vtag,
                                  s.content.deleted, s.content.last_modified_us)
                     for s in reply.siblings],
    }


def explain_json(node: str, ring: Ring, key: ObjectKey) -> dict[str, Any]:
    """Where ``key`` lives in ``ring`` (the read is added by the handler)."""
    return {
        "node": node,
        "bucket": key.bucket,
        "key": key.key,
        "partition": partition_of(key, ring.partitions),
        "partitions": ring.partitions,
        "n_val": ring.n_val,
        "preference_list": list(ring.preference_list_for(key)),
        "r": ring.n_val // 2 + 1,
    }


def add_kv_ui_routes(app: web.Application, *, node_name: str, frontend: KvFrontend,
                     ring: Callable[[], Ring], kv_snapshot: Callable[[], KvSnapshot | None],
                     max_key_bytes: int,
                     explain: Callable[[ObjectKey], Awaitable[dict[str, Any] | None]]
                     | None = None) -> None:
    """Register ``GET /v1/kv/latency`` and ``GET /v1/kv/explain`` on ``app``.

    Args:
        node_name: this node's name (in both answers).
        frontend: the node's KV frontend (the explain read goes through it).
        ring: the ring now (called on the loop: must not block).
        kv_snapshot: a KV reading, or None when the KV actor does not answer; it may block
            (it asks an actor), so it runs on a worker thread, never on the loop.
        max_key_bytes: the longest key a read may name (longer: 413).
        explain: the per-node explainer (KvService.explain); None: only the read.
    """

    async def latency(_request: web.Request) -> web.StreamResponse:
        snapshot = await asyncio.get_running_loop().run_in_executor(None, kv_snapshot)
        if snapshot is None:
            return web.json_response({"error": "the key-value store did not answer"},
                                     status=503)
        return web.json_response(latency_json(node_name, snapshot))

    async def explain_route(request: web.Request) -> web.StreamResponse:
        query = request.query
        unknown = set(query) - {"bucket", "key"}
        if unknown:
            return web.json_response(
                {"error": f"unknown query parameters: {', '.join(sorted(unknown))}"},
                status=400)
        key = ObjectKey(query.get("bucket", ""), query.get("key", ""))
        try:
            key.check(max_key_bytes)
        except KvError as error:
            return web.json_response({"error": str(error)}, status=error.status)
        answer = explain_json(node_name, ring(), key)
        if explain is not None:
            # Asked before the read below, which may repair what it finds behind.
            document = await explain(key)
            if document is None:
                answer["nodes_error"] = "the explainer did not answer"
            else:
                answer.update(merged=document["merged"], nodes=document["nodes"],
                              asked=document["asked"])
        try:
            reply = await frontend.get(key, Quorum(r=QUORUM_MAJORITY))
        except KvError as error:
            answer["read"] = {"status": error.status, "error": str(error) or type(error).__name__}
        else:
            answer["read"] = read_json(reply)
        return web.json_response(answer)

    app.router.add_get("/v1/kv/latency", latency)
    app.router.add_get("/v1/kv/explain", explain_route)
