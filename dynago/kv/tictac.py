"""Tictac hash trees for active anti-entropy: one per partition, updated in O(1) per write.

Pure (no I/O, no clock). The shape follows Riak's tictac AAE (basho/kv_index_tictactree):
a tree of fixed shape whose hashes are combined by XOR instead of by hashing children,
so a write changes its leaf without rehashing the leaf's neighbours:

* a key's **object hash** is ``object_hash(stored bytes)``: the stored bytes are
  ``version.encode`` of the object, a function of the Object alone (clock sorted by
  replica, versions sorted by dot) and ``version.decode`` accepts only that form, so two
  replicas holding the same logical object hold the same bytes and hash equal;
* a key lives in one of ``SEGMENTS`` segments (``segment_of``), chosen by a hash of its
  storage key that is independent of the partition's bits;
* a segment's hash is the XOR of ``leaf_hash(key, object hash)`` over its keys;
  ``BRANCHES`` branches each XOR ``BRANCH_WIDTH`` consecutive segments; the root XORs
  the branches.

Laws (tests/kv/test_kv_tictac.py checks them with Hypothesis):

1. The tree of a key→hash map does not depend on the order of the updates that built it
   (XOR is commutative and associative, and every update XORs out what it XORs in).
2. Two trees differ exactly in the segments holding a key whose hash differs (up to a
   64-bit collision), so ``differing_segments`` of their branch and segment hashes names
   those segments and no others.

An exchange walks the levels: equal roots end it; else the branches that differ; else
the segments under them; then ``compare_keys`` on the keys of those segments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SEGMENTS = 1024
"""Leaves per tree. More: fewer keys per differing segment (less sent per repair), but a
bigger level to send when many differ."""

BRANCH_WIDTH = 32
"""Segments under one branch."""

BRANCHES = SEGMENTS // BRANCH_WIDTH
"""Branches per tree (32): the first level an exchange sends, 32 × 8 bytes."""

_MASK = (1 << 64) - 1


def object_hash(stored: bytes) -> int:
    """The 64-bit hash of a key's stored bytes (see the module docstring: canonical)."""
    return int.from_bytes(hashlib.blake2b(stored, digest_size=8).digest(), "big")


def segment_of(key: bytes) -> int:
    """The segment of storage key ``key`` (0..SEGMENTS-1)."""
    digest = hashlib.blake2b(key, digest_size=8, person=b"dynago-seg").digest()
    return int.from_bytes(digest, "big") % SEGMENTS


def leaf_hash(key: bytes, obj_hash: int) -> int:
    """What one key contributes to its segment's hash: a hash of the key and its object's
    hash, so that the same object under two keys, or two keys swapping objects, differ."""
    digest = hashlib.blake2b(key + obj_hash.to_bytes(8, "big"), digest_size=8,
                             person=b"dynago-leaf").digest()
    return int.from_bytes(digest, "big")


class TicTacTree:
    """The XOR tree of one partition. ``update`` is O(1); equal key→hash maps give equal
    trees (``==``) whatever the order of updates."""

    __slots__ = ("segments", "branches")

    def __init__(self) -> None:
        self.segments = [0] * SEGMENTS
        self.branches = [0] * BRANCHES

    @classmethod
    def of(cls, items: Iterable[tuple[bytes, int]]) -> TicTacTree:
        """The tree of (storage key, object hash) pairs, each key once."""
        tree = cls()
        for key, obj in items:
            tree.update(key, None, obj)
        return tree

    def update(self, key: bytes, old: int | None, new: int | None,
               segment: int | None = None) -> None:
        """``key``'s object hash went from ``old`` to ``new`` (None: absent); ``segment``
        is ``segment_of(key)``, computed if not given."""
        if old == new:
            return
        change = 0
        if old is not None:
            change ^= leaf_hash(key, old)
        if new is not None:
            change ^= leaf_hash(key, new)
        if segment is None:
            segment = segment_of(key)
        self.segments[segment] ^= change
        self.branches[segment // BRANCH_WIDTH] ^= change

    @property
    def root(self) -> int:
        root = 0
        for branch in self.branches:
            root ^= branch
        return root

    def segment_hashes(self, branches: Iterable[int]) -> dict[int, int]:
        """Segment id → hash for every segment under ``branches`` (ids checked)."""
        out: dict[int, int] = {}
        for branch in branches:
            if not 0 <= branch < BRANCHES:
                raise ValueError(f"branch {branch} is outside 0..{BRANCHES - 1}")
            first = branch * BRANCH_WIDTH
            for segment in range(first, first + BRANCH_WIDTH):
                out[segment] = self.segments[segment]
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TicTacTree):
            return NotImplemented
        return self.segments == other.segments

    __hash__ = None  # type: ignore[assignment]  # mutable


class PartitionTree:
    """The tree of one partition and how many keys each segment holds: what the node
    keeps in memory per partition, whatever its key count (the keys themselves and their
    hashes are records on disk: dynago.kv.aae_index)."""

    __slots__ = ("tree", "counts", "_count")

    def __init__(self) -> None:
        self.tree = TicTacTree()
        self.counts = [0] * SEGMENTS
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def update(self, key: bytes, old: int | None, new: int | None,
               segment: int | None = None) -> None:
        """``key`` (of ``segment``, computed if not given) went from an object of hash
        ``old`` to one of hash ``new`` (None: absent)."""
        if old == new:
            return
        segment = segment_of(key) if segment is None else segment
        self.tree.update(key, old, new, segment)
        change = (new is not None) - (old is not None)
        self.counts[segment] += change
        self._count += change


def differing(mine: Mapping[int, int], theirs: Mapping[int, int]) -> list[int]:
    """Ids (branches or segments) whose hash differs, ascending; an id on one side only
    counts as 0 on the other (an empty segment's hash)."""
    return sorted(i for i in set(mine) | set(theirs) if mine.get(i, 0) != theirs.get(i, 0))


def differing_branches(mine: Sequence[int], theirs: Sequence[int]) -> list[int]:
    """Branches whose hash differs (both sequences are BRANCHES long)."""
    if len(mine) != BRANCHES or len(theirs) != BRANCHES:
        raise ValueError(f"branch hashes come {BRANCHES} at a time")
    return [i for i in range(BRANCHES) if mine[i] != theirs[i]]


@dataclass(frozen=True, slots=True)
class KeyDiff:
    """What an exchange repairs: ``send`` keys whose object this side holds and the other
    lacks or holds differently; ``fetch`` keys the other side holds and this side lacks
    or holds differently. A key held differently on both is in both (each side then
    merges the other's object into its own: both end with the merge)."""

    send: tuple[bytes, ...]
    fetch: tuple[bytes, ...]


def compare_keys(mine: Mapping[bytes, int], theirs: Mapping[bytes, int]) -> KeyDiff:
    """The keys of the differing segments compared one by one."""
    send = sorted(k for k, h in mine.items() if theirs.get(k) != h)
    fetch = sorted(k for k, h in theirs.items() if mine.get(k) != h)
    return KeyDiff(tuple(send), tuple(fetch))


class TokenBucket:
    """A rate limit: ``rate`` units per second, bursts up to ``burst``. Pure: ``now`` is
    passed in (monotonic seconds)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not rate > 0 or not burst > 0:
            raise ValueError("a token bucket needs a rate and a burst greater than 0")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def available(self, now: float) -> float:
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)
        return self._tokens

    def take(self, amount: float, now: float) -> bool:
        """Take ``amount`` if that many are there; False (nothing taken) otherwise. An
        amount over the burst passes when the bucket is full and leaves it in debt, so a
        large object is sent at the average rate instead of never."""
        if self.available(now) < min(amount, self.burst):
            return False
        self._tokens -= amount
        return True
