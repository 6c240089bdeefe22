"""A set of member names with O(1) add, remove and uniform sampling."""

from __future__ import annotations

import random


class NameSet:
    """A set of member names with O(1) add, remove and sampling."""

    __slots__ = ("_names", "_index")

    def __init__(self) -> None:
        self._names: list[str] = []
        self._index: dict[str, int] = {}

    def copy(self) -> NameSet:
        other = NameSet()
        other._names = self._names.copy()
        other._index = self._index.copy()
        return other

    @property
    def index(self) -> dict[str, int]:
        """Name -> position; use for membership tests only."""
        return self._index

    def __len__(self) -> int:
        return len(self._names)

    def add(self, name: str) -> None:
        if name not in self._index:
            self._index[name] = len(self._names)
            self._names.append(name)

    def discard(self, name: str) -> None:
        index = self._index.pop(name, None)
        if index is None:
            return
        last = self._names.pop()
        if index < len(self._names):
            self._names[index] = last
            self._index[last] = index

    def pick(self, rng: random.Random) -> str:
        return self._names[rng.randrange(len(self._names))]

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
        while len(chosen) < k:
            index = rng.randrange(size)
            if index not in chosen:
                chosen.append(index)
        return [names[index] for index in chosen]

    def names(self) -> list[str]:
        return list(self._names)
