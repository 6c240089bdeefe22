"""Who owns each partition: a balanced rendezvous claim, a pure function of the member names.

``claim(names, partitions)`` gives every partition one owner such that

1. **It depends on the set of names only**: no history, no randomness, no order of input.
   Every node that sees the same members computes the same owners.
2. **Balance**: every member owns ``P // n`` or ``P // n + 1`` partitions (exactly
   ``P % n`` members own the extra one). Guaranteed.
3. **Little movement**: each partition ranks the members by a rendezvous (HRW) score,
   ``sha1(name, partition)``, and the claim is the assignment of highest total score under
   the balance bounds. Pure rendezvous (every partition to its best member) moves nothing
   but the joiner's share on a join, but it is not balanced; the best balanced assignment
   stays close to it, so a join moves mostly to the joiner and a leave mostly moves the
   leaver's partitions. Not every time: no history-free balanced claim can guarantee that
   for every member set (see docs/kv-ring.md); bench/ring_balance.py measures how close it
   comes.

How: start from pure rendezvous (every partition on its top member), then move partitions
off over-full members one at a time along the cheapest chain of moves (a shortest path over
members, where moving partition ``p`` from ``a`` to ``b`` costs ``score(p, a) - score(p, b)``),
until every load is within bounds. That is the successive-shortest-path method of min-cost
flow; Dijkstra with potentials keeps each step O(n^2 + moved * P). From 512 members on
(with at least as many members as partitions, so each owns 0 or 1) a consistent-hashing
walk replaces it (``_claim_one_each``): the flow's O(n^2) steps took seconds at 3,000. Scores are
integers and ties break on member index then partition, so the result is exact and the same on every
platform.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

ONE_EACH_MIN_MEMBERS = 512
"""From this many members on (and at least as many as partitions), the claim is the
consistent-hashing walk: the min-cost flow costs O(n^2) a step (70 ms at 512 members,
seconds at 3,000). Crossing this size once moves more than a join should; below it, and
above it, joins move little."""

_INF = 1 << 80
"""Above any path cost: scores are 64-bit, a path has at most n edges (n far below 2**16)."""


def score(name: str, partition: int) -> int:
    """Rendezvous score of ``name`` for ``partition``: 64 bits of SHA-1, higher wins."""
    digest = hashlib.sha1(name.encode() + b"\x00" + partition.to_bytes(4, "big")).digest()
    return int.from_bytes(digest[:8], "big")


def claim(names: Sequence[str], partitions: int) -> tuple[int, ...]:
    """Owner index (into ``sorted(names)``) of each partition, balanced to within one.

    Args:
        names: distinct member names, at least one; their order does not matter.
        partitions: number of partitions, at least one.

    Returns:
        ``owners[p]`` is an index into ``sorted(names)``.
    """
    members = sorted(names)
    n = len(members)
    if n == 0:
        raise ValueError("a claim needs at least one member")
    if len(set(members)) != n:
        raise ValueError("member names must be distinct")
    if n >= max(ONE_EACH_MIN_MEMBERS, partitions):
        return _claim_one_each(members, partitions)
    scores = [[score(name, p) for p in range(partitions)] for name in members]
    owners = [_best(scores, p) for p in range(partitions)]
    _Balancer(scores, owners, partitions).run()
    return tuple(owners)


def _claim_one_each(members: list[str], partitions: int) -> tuple[int, ...]:
    """The claim when there are at least as many members as partitions: each member owns
    at most one, so balance is "0 or 1" and the min-cost flow (O(n^2) a step) is not
    worth its cost. Consistent hashing instead: each member is a point on a 64-bit circle
    (``score(name, -1)``), and partition ``p`` goes to the first member not taken yet at
    or after the point ``p * 2**64 / P``, walking clockwise. O(n log n); deterministic;
    a joiner takes a partition only where it lands before that partition's owner."""
    points = sorted((_point(name), index) for index, name in enumerate(members))
    taken = [False] * len(members)
    owners = []
    step = (1 << 64) // partitions
    for p in range(partitions):
        at = bisect.bisect_left(points, (p * step, -1))
        while True:
            _, index = points[at % len(points)]
            if not taken[index]:
                break
            at += 1
        taken[index] = True
        owners.append(index)
    return tuple(owners)


def _point(name: str) -> int:
    """A member's point on the circle of the one-each claim."""
    return int.from_bytes(hashlib.sha1(b"point\x00" + name.encode()).digest()[:8], "big")


def _best(scores: list[list[int]], partition: int) -> int:
    """The member with the highest score for ``partition`` (the lowest index on a tie)."""
    best = 0
    for m in range(1, len(scores)):
        if scores[m][partition] > scores[best][partition]:
            best = m
    return best


class _Balancer:
    """Moves partitions between members until every load is ``q`` or ``q + 1``."""

    def __init__(self, scores: list[list[int]], owners: list[int], partitions: int) -> None:
        self.scores = scores
        self.owners = owners
        self.n = len(scores)
        self.held: list[set[int]] = [set() for _ in range(self.n)]
        for p, m in enumerate(owners):
            self.held[m].add(p)
        self.q, self.r = divmod(partitions, self.n)
        # Potentials keep reduced edge costs >= 0 for Dijkstra. Every partition starts on
        # its best member, so every move costs >= 0 and zero potentials are valid.
        self.potential = [0] * self.n
        # edge[a][b] = (cost, partition): the cheapest partition to move from a to b.
        self.edge: list[list[tuple[int, int]]] = [self._row(a) for a in range(self.n)]

    def _row(self, a: int) -> list[tuple[int, int]]:
        row = [(_INF, -1)] * self.n
        sa = self.scores[a]
        for p in sorted(self.held[a]):
            base = sa[p]
            for b in range(self.n):
                if b != a:
                    cost = base - self.scores[b][p]
                    if cost < row[b][0]:
                        row[b] = (cost, p)
        return row

    def run(self) -> None:
        hi = self.q + 1 if self.r else self.q
        # Phase 1: nothing above hi; excess goes wherever there is room below hi.
        while True:
            loads = [len(h) for h in self.held]
            sources = [m for m in range(self.n) if loads[m] > hi]
            if not sources:
                break
            self._augment(sources, [m for m in range(self.n) if loads[m] < hi])
        if not self.r:
            return
        # Phase 2: members below q take from members at q + 1 (there are then more than
        # r of those); the total is q * n + r, so when no member is below q, exactly r
        # members hold q + 1.
        while True:
            loads = [len(h) for h in self.held]
            sinks = [m for m in range(self.n) if loads[m] < self.q]
            if not sinks:
                break
            self._augment([m for m in range(self.n) if loads[m] > self.q], sinks)

    def _augment(self, sources: list[int], sinks: list[int]) -> None:
        """Move one partition-worth of load from a source to a sink on the cheapest path."""
        n, edge, pot = self.n, self.edge, self.potential
        dist = [_INF] * n
        prev = [-1] * n
        done = [False] * n
        for s in sources:
            dist[s] = -pot[s]
        for _ in range(n):
            u = -1
            for v in range(n):
                if not done[v] and dist[v] < _INF and (u < 0 or dist[v] < dist[u]):
                    u = v
            if u < 0:
                break
            done[u] = True
            du = dist[u] + pot[u]
            row = edge[u]
            for v in range(n):
                if not done[v]:
                    cost = row[v][0]
                    if cost < _INF:
                        nd = du + cost - pot[v]
                        if nd < dist[v]:
                            dist[v] = nd
                            prev[v] = u
        sink_set = set(sinks)
        target = min((v for v in sink_set if dist[v] < _INF), key=lambda v: (dist[v] + pot[v], v))
        reached = max(d for d in dist if d < _INF)
        for v in range(n):
            self.potential[v] += dist[v] if dist[v] < _INF else reached
        touched = {target}
        v = target
        while prev[v] >= 0:  # the path starts at a source, the only nodes without prev
            u = prev[v]
            p = edge[u][v][1]
            self.held[u].remove(p)
            self.held[v].add(p)
            self.owners[p] = v
            touched.add(u)
            v = u
        for m in touched:
            edge[m] = self._row(m)
