"""One closed-loop load generator for every system of ``bench.kv``: YCSB-like mixes of
reads and updates over a fixed key set, a scrambled Zipfian choice of key, ``clients``
connections each sending its next request as soon as the previous one was answered.

The same code drives every system; only the bytes on the wire differ (``Wire``):
HTTP/1.1 keep-alive for dynago (``/kvstore``) and etcd (its JSON gateway, base64 keys and
values), RESP for Redis (``SET`` / ``GET``). It is plain asyncio streams with a minimal
response parser (no HTTP library), so that the generator costs little per request; its
own CPU time is measured, and ``bench.kv`` reports it beside every figure (and calibrates
it against redis-benchmark), so a cell limited by the generator can be told apart.

Key choice: YCSB's ``ScrambledZipfianGenerator`` idea (Zipfian constant 0.99 over the
keys by popularity rank, the ranks scattered over the key space so that the hot keys are
not neighbours); here the scattering is a seeded permutation rather than FNV hashing.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ZIPF_THETA = 0.99
"""YCSB's default Zipfian constant."""

WORKLOADS: dict[str, float] = {"A": 0.50, "B": 0.95, "C": 1.00}
"""YCSB core workloads by their read fraction (the rest are updates of existing keys)."""


def key_name(index: int) -> str:
    return f"k{index:07d}"


class Zipfian:
    """Draws key indices in ``range(keys)``: rank r with probability ∝ 1/(r+1)^theta,
    rank r being key ``order[r]`` (a seeded shuffle)."""

    def __init__(self, keys: int, rng: random.Random, theta: float = ZIPF_THETA) -> None:
        if keys < 1:
            raise ValueError(f"keys must be ≥ 1, got {keys}")
        self._cumulative = list(itertools.accumulate((r + 1) ** -theta for r in range(keys)))
        self._order = list(range(keys))
        rng.shuffle(self._order)
        self._rng = rng

    def next(self) -> int:
        total = self._cumulative[-1]
        rank = bisect.bisect_left(self._cumulative, self._rng.random() * total)
        return self._order[min(rank, len(self._order) - 1)]


class _Uniform:
    """Draws key indices in ``range(keys)``, each as likely."""

    def __init__(self, keys: int, rng: random.Random) -> None:
        self._keys, self._rng = keys, rng

    def next(self) -> int:
        return self._rng.randrange(self._keys)


class BadAnswer(Exception):
    """The server answered something other than success (the message says what)."""


@dataclass(frozen=True)
class Wire:
    """How one system's requests and answers look. ``protocol`` is ``http`` or ``resp``."""

    system: str
    protocol: str

    def put(self, key: str, value: bytes) -> bytes:
        if self.system == "redis":
            return (b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                    % (len(key), key.encode(), len(value), value))
        if self.system == "etcd":
            body = json.dumps({"key": _b64(key.encode()), "value": _b64(value)}).encode()
            return _post("/v3/kv/put", body)
        body = json.dumps({"Key": key, "Value": value.decode()}).encode()
        return _post("/kvstore", body)

    def get(self, key: str) -> bytes:
        if self.system == "redis":
            return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key.encode())
        if self.system == "etcd":
            return _post("/v3/kv/range", json.dumps({"key": _b64(key.encode())}).encode())
        return b"GET /kvstore/%s HTTP/1.1\r\nHost: bench\r\n\r\n" % key.encode()

    async def answer(self, reader: asyncio.StreamReader, *, read: bool) -> None:
        """Read one answer; BadAnswer unless it is a success (a read must find its key)."""
        if self.protocol == "resp":
            line = await reader.readuntil(b"\r\n")
            if line.startswith(b"$"):
                size = int(line[1:-2])
                if size < 0:
                    raise BadAnswer("key missing")
                await reader.readexactly(size + 2)
                return
            if line.startswith(b"+"):
                return
            raise BadAnswer(line[:60].decode(errors="replace").strip())
        status, body = await read_http(reader)
        if status != 200:
            raise BadAnswer(f"HTTP {status}")
        if read and self.system == "etcd" and b'"kvs"' not in body:
            raise BadAnswer("key missing")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _post(path: str, body: bytes) -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))


async def read_http(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response: its status and body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length) if length else b""
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return status, b"".join(parts)


@dataclass
class CellResult:
    """What one run of the generator measured, on its side."""

    seconds: float
    latencies_s: dict[str, list[float]] = field(default_factory=lambda: {"get": [], "put": []})
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0

    @property
    def ops(self) -> int:
        return sum(len(v) for v in self.latencies_s.values())


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank quantile of the sorted ``ordered``; 0 when empty."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


async def run(wire: Wire, endpoints: Sequence[tuple[str, int]], *, clients: int,
              seconds: float, read_fraction: float, keys: int, value: bytes,
              rng: random.Random, timeout_s: float = 5.0,
              sequential: bool = False, first: int = 0,
              uniform: bool = False) -> CellResult:
    """``clients`` connections (client i to ``endpoints[i % len]``) for ``seconds``.

    ``sequential`` writes keys first..keys-1 once each instead (the load phase;
    ``seconds`` is then only a bound). ``uniform`` picks every key with the same
    probability instead of the scrambled Zipfian. Every request has a ``timeout_s``
    deadline; a timeout or a failed answer is counted by kind and the connection is
    opened anew."""
    chooser: Any = None
    if not sequential:
        chooser = _Uniform(keys, rng) if uniform else Zipfian(keys, rng)
    result = CellResult(0.0)
    next_key = iter(range(first, keys))
    gets, puts = result.latencies_s["get"], result.latencies_s["put"]

    async def client(host: str, port: int, deadline: float) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                if chooser is None:
                    index = next(next_key, None)
                    if index is None:
                        return
                    is_read = False
                else:
                    index = chooser.next()
                    is_read = rng.random() < read_fraction
                name = key_name(index)
                request = wire.get(name) if is_read else wire.put(name, value)
                started = time.perf_counter()
                try:
                    writer.write(request)
                    await asyncio.wait_for(wire.answer(reader, read=is_read), timeout_s)
                except BadAnswer as error:
                    result.errors[str(error)] += 1
                    continue
                except (TimeoutError, OSError, asyncio.IncompleteReadError,
                        asyncio.LimitOverrunError, ValueError) as error:
                    result.errors[type(error).__name__] += 1
                    writer.close()
                    await asyncio.sleep(0.01)  # a refused connection fails at once: no spin
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                (gets if is_read else puts).append(time.perf_counter() - started)
        finally:
            writer.close()

    cpu_before = _cpu_s()
    began = time.monotonic()
    deadline = began + seconds
    tasks = [asyncio.ensure_future(client(*endpoints[i % len(endpoints)], deadline))
             for i in range(clients)]
    done, late = await asyncio.wait(tasks, timeout=seconds + timeout_s + 5.0)
    for task in late:  # every request has a deadline: cannot happen; bounded anyway
        task.cancel()
        result.errors["cancelled at the cell deadline"] += 1
    for task in done:
        if task.exception() is not None:
            result.errors[f"client failed: {task.exception()!r}"] += 1
    result.seconds = time.monotonic() - began
    result.cpu_s = _cpu_s() - cpu_before
    return result


def summary(result: CellResult) -> dict[str, Any]:
    """The figures as JSON-ready values (latencies in ms), all ops and per op."""
    every = sorted(result.latencies_s["get"] + result.latencies_s["put"])
    row: dict[str, Any] = {
        "seconds": round(result.seconds, 3), "ops": result.ops,
        "ops_per_s": round(result.ops / max(result.seconds, 1e-9), 1),
        "p50_ms": round(percentile(every, 0.50) * 1e3, 3),
        "p99_ms": round(percentile(every, 0.99) * 1e3, 3),
        "p999_ms": round(percentile(every, 0.999) * 1e3, 3),
        "errors": sum(result.errors.values()), "errors_by_kind": dict(result.errors),
        "generator_cpu_percent": round(100 * result.cpu_s / max(result.seconds, 1e-9), 1),
    }
    for op, values in result.latencies_s.items():
        ordered = sorted(values)
        row[op] = {"ops": len(ordered), "p50_ms": round(percentile(ordered, 0.5) * 1e3, 3),
                   "p99_ms": round(percentile(ordered, 0.99) * 1e3, 3)}
    return row
