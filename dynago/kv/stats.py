"""The KV actor's counters and latency histograms (for /stats, /v1/stats and /metrics).
Pure: durations are passed in."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
                     2.0, 5.0, 10.0)
"""Upper bounds of the request latency histogram buckets (seconds; +Inf implied)."""

OPERATIONS = ("get", "put", "delete")
OUTCOMES = ("ok", "not_found", "unavailable", "bad_request", "too_large", "error")


class Histogram:
    """Cumulative-style buckets as Prometheus wants them, plus sum and count."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it); the last bound is +inf."""
        total = 0
        out = []
        for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out

    def quantile(self, q: float) -> float:
        """An upper bound of the q-quantile (the bucket it falls in); 0 when empty."""
        if not self.count:
            return 0.0
        rank = q * self.count
        for bound, total in self.cumulative():
            if total >= rank:
                return bound
        return float("inf")


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """One reading of a Histogram: ``buckets`` are (upper bound, observations at or below
    it), cumulative, the last bound +inf (its count equals ``count``)."""

    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


@dataclass(frozen=True, slots=True)
class KvSnapshot:
    """One reading of a KvStats, safe to hand to another thread.

    ``requests`` has every (operation, outcome) of OPERATIONS x OUTCOMES, zero included;
    ``latency`` every operation; ``counters`` the named counters counted so far.
    """

    requests: Mapping[tuple[str, str], int]
    latency: Mapping[str, HistogramSnapshot]
    counters: Mapping[str, int]
    in_flight: int = 0

    def as_dict(self) -> dict[str, int]:
        """Flat counters (``kv_get_ok``, ..., ``kv_requests_in_flight``) for /v1/stats."""
        out = {f"kv_{op}_{outcome}": n for (op, outcome), n in self.requests.items()}
        out.update(self.counters)
        out["kv_requests_in_flight"] = self.in_flight
        return out


class KvStats:
    """Requests by operation and outcome, latencies by operation, and named counters."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.latency = {op: Histogram() for op in OPERATIONS}
        self.counters: Counter[str] = Counter()

    def request(self, op: str, outcome: str, seconds: float) -> None:
        self.requests[(op, outcome)] += 1
        self.latency[op].observe(seconds)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def snapshot(self, in_flight: int = 0) -> KvSnapshot:
        """A copy of every count now (``in_flight``: requests still waiting)."""
        return KvSnapshot(
            requests={(op, outcome): self.requests[(op, outcome)]
                      for op in OPERATIONS for outcome in OUTCOMES},
            latency={op: HistogramSnapshot(tuple(h.cumulative()), h.sum, h.count)
                     for op, h in self.latency.items()},
            counters=dict(self.counters), in_flight=in_flight)

    def as_dict(self) -> dict[str, int]:
        """Flat counters (``kv_get_ok``, ``kv_put_unavailable``, ...) for /v1/stats."""
        out = {f"kv_{op}_{outcome}": self.requests[(op, outcome)]
               for op in OPERATIONS for outcome in OUTCOMES}
        out.update(self.counters)
        return out
