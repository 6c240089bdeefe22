"""A set of member names as a plain list: O(1) add and uniform sampling, O(N) remove.

Removal is rare (a member fails or leaves) and runs at C speed; the list costs one
pointer per member, where a list plus a position index would cost four or five times
that — which matters when a simulation holds 10,000 of these sets of 10,000 names. The
caller knows whether a name is present (from the member's previous record) and adds or
removes it only when that changes.
"""

from __future__ import annotations

import random


def below(rng: random.Random, n: int) -> int:
    """A uniform integer in [0, n), n > 0: ``rng.randrange(n)`` without its argument
    checks (the same rejection sampling on ``getrandbits``, so the same draws; the
    hottest draws of a core — gossip targets, probe order — take a third of the time)."""
    bits = n.bit_length()
    value = rng.getrandbits(bits)
    while value >= n:
        value = rng.getrandbits(bits)
    return value


class NameSet:
    """Member names; the caller adds a name only when absent."""

    __slots__ = ("_names",)

    def __init__(self, names: list[str] | None = None) -> None:
        self._names: list[str] = names if names is not None else []

    def copy(self) -> NameSet:
        return NameSet(self._names.copy())

    def __len__(self) -> int:
        return len(self._names)

    def add(self, name: str) -> None:
        """Add ``name``, which must not be present."""
        self._names.append(name)

    def discard(self, name: str) -> None:
        """Remove ``name`` if present (order is not kept)."""
        names = self._names
        try:
            index = names.index(name)
        except ValueError:
            return
        last = names.pop()
        if index < len(names):
            names[index] = last

    def pick(self, rng: random.Random) -> str:
        return self._names[below(rng, len(self._names))]

    def sample(self, rng: random.Random, k: int) -> list[str]:
        """``k`` distinct names picked uniformly (all of them, shuffled, if there are fewer)."""
        names = self._names
        size = len(names)
        if k >= size:
            picked = list(names)
            rng.shuffle(picked)
            return picked
        if 4 * k > size:
            return rng.sample(names, k)
        # Few of many (the usual case: 3 gossip targets among hundreds): draw positions
        # and redraw repeats, much cheaper than random.sample's bookkeeping.
        chosen: list[int] = []
        bits = size.bit_length()
        getrandbits = rng.getrandbits
        while len(chosen) < k:
            index = getrandbits(bits)  # below(rng, size), inline
            while index >= size:
                index = getrandbits(bits)
            if index not in chosen:
                chosen.append(index)
        return [names[index] for index in chosen]

    def names(self) -> list[str]:
        return list(self._names)
