"""A closed-loop load generator for the key-value store's Riak HTTP API (asyncio and
aiohttp, keep-alive connections): ``clients`` coroutines, each sending its next request
as soon as the previous one was answered, for a fixed duration.

Requests go round-robin over the nodes' HTTP addresses, to random keys of a fixed set
(``k000000``, ``k000001``, ... in bucket ``bench``). A put sends the last causal context
(``X-Riak-Vclock``) its key was answered with, as a Riak client that keeps its objects'
contexts does: without it, every blind put would add a sibling (allow_mult semantics)
and the objects would grow to the sibling limit. Gets go only to keys already written.

Every request has a deadline; a timeout, a refused connection or an unexpected status
is counted as an error, by kind, and the loop goes on. The generator's own CPU time is
measured so that the report shows whether it, rather than the nodes, was the limit.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

BUCKET = "bench"
OK_PUT = frozenset({204})
OK_GET = frozenset({200, 300})
"""A get answered 300 (siblings: two puts of the same key crossed) still read the key."""


def key_name(index: int) -> str:
    return f"k{index:06d}"


@dataclass
class KeySpace:
    """The fixed key set, the contexts last seen per key, and which keys were written."""

    keys: int
    contexts: dict[int, str] = field(default_factory=dict)
    written: list[int] = field(default_factory=list)
    _written_set: set[int] = field(default_factory=set)

    def wrote(self, index: int, context: str | None) -> None:
        if context:
            self.contexts[index] = context
        if index not in self._written_set:
            self._written_set.add(index)
            self.written.append(index)


@dataclass
class PhaseResult:
    """What one phase measured, on the generator's side."""

    op: str
    clients: int
    seconds: float
    """Wall time from the first request sent to the last answer received."""
    latencies_s: list[float]
    """One per successful request."""
    errors: Counter[str]
    siblings: int
    """Gets answered 300 (counted as successes)."""
    cpu_s: float
    """The generator process's CPU time (user + system) over the phase."""

    @property
    def ops(self) -> int:
        return len(self.latencies_s)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of the sorted ``ordered`` (nearest rank); 0 when empty."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


async def run_phase(op: str, nodes: Sequence[str], space: KeySpace, *, clients: int,
                    seconds: float, value_bytes: int, timeout_s: float,
                    rng: random.Random) -> PhaseResult:
    """``clients`` closed-loop clients doing ``op`` ("put" or "get") for ``seconds``.

    Returns within ``seconds + timeout_s`` plus a little: every request has a total
    deadline of ``timeout_s``."""
    if op not in ("put", "get"):
        raise ValueError(f"op must be put or get, got {op!r}")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    siblings = 0
    turn = 0
    value = rng.randbytes(value_bytes)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    # One pool per node, as many connections as clients: no request waits for a socket.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     auto_decompress=False) as session:

        async def one() -> None:
            nonlocal siblings, turn
            node = nodes[turn % len(nodes)]
            turn += 1
            if op == "put":
                index = rng.randrange(space.keys)
            elif space.written:
                index = space.written[rng.randrange(len(space.written))]
            else:
                errors["no key written yet"] += 1
                await asyncio.sleep(0.01)  # nothing to read: do not spin
                return
            url = f"http://{node}/buckets/{BUCKET}/keys/{key_name(index)}"
            started = time.perf_counter()
            try:
                if op == "put":
                    headers = {"Content-Type": "application/octet-stream"}
                    context = space.contexts.get(index)
                    if context:
                        headers["X-Riak-Vclock"] = context
                    async with session.put(url, data=value, headers=headers) as answer:
                        await answer.read()
                        status = answer.status
                        if status in OK_PUT:
                            space.wrote(index, answer.headers.get("X-Riak-Vclock"))
                else:
                    async with session.get(url) as answer:
                        await answer.read()
                        status = answer.status
            except TimeoutError:  # aiohttp raises asyncio.TimeoutError, the same class
                errors["timeout"] += 1
                return
            except aiohttp.ClientError as error:
                errors[type(error).__name__] += 1
                await asyncio.sleep(0.01)  # a refused connection fails at once: no spin
                return
            elapsed = time.perf_counter() - started
            if status in (OK_PUT if op == "put" else OK_GET):
                latencies.append(elapsed)
                siblings += status == 300
            else:
                errors[f"HTTP {status}"] += 1

        async def client(deadline: float) -> None:
            while time.monotonic() < deadline:
                await one()

        cpu_before = _cpu_s()
        began = time.monotonic()
        tasks = [asyncio.ensure_future(client(began + seconds)) for _ in range(clients)]
        _done, late = await asyncio.wait(tasks, timeout=seconds + timeout_s + 5.0)
        for task in late:  # cannot happen with the per-request deadline; bounded anyway
            task.cancel()
            errors["cancelled at the phase deadline"] += 1
        if late:
            await asyncio.wait(late, timeout=5.0)
        ended = time.monotonic()
        cpu_used = _cpu_s() - cpu_before
        for task in _done:
            if not task.cancelled() and task.exception() is not None:
                errors[f"client crashed: {task.exception()!r}"] += 1
    return PhaseResult(op, clients, ended - began, latencies, errors, siblings, cpu_used)


def summary(result: PhaseResult) -> dict[str, Any]:
    """The phase's figures as JSON-ready values (latencies in milliseconds)."""
    ordered = sorted(result.latencies_s)
    return {
        "op": result.op, "clients": result.clients, "seconds": round(result.seconds, 3),
        "ops": result.ops, "ops_per_s": round(result.ops / max(result.seconds, 1e-9), 1),
        "p50_ms": round(percentile(ordered, 0.50) * 1e3, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1e3, 3),
        "p999_ms": round(percentile(ordered, 0.999) * 1e3, 3),
        "max_ms": round(ordered[-1] * 1e3, 3) if ordered else 0.0,
        "errors": sum(result.errors.values()), "errors_by_kind": dict(result.errors),
        "siblings_answers": result.siblings,
        "generator_cpu_s": round(result.cpu_s, 3),
        "generator_cpu_percent": round(100 * result.cpu_s / max(result.seconds, 1e-9), 1),
    }
