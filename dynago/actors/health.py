"""The MembershipActor's local health watchers (WatchLocalHealth): told this node's
Lifeguard local health score when they register and each time it changes."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class LocalHealthWatchers:
    """Callables told the score on the membership actor's thread; one that raises is
    dropped (and logged)."""

    def __init__(self) -> None:
        self._watchers: list[Callable[[int], None]] = []
        self._told = 0
        self.errors = 0

    def add(self, watcher: Callable[[int], None], score: int) -> None:
        """Register ``watcher`` and tell it ``score`` at once."""
        self._watchers.append(watcher)
        self._told = score
        self._tell(watcher)

    def update(self, score: int) -> None:
        """Tell every watcher ``score`` if it differs from the last one told."""
        if not self._watchers or score == self._told:
            return
        self._told = score
        for watcher in list(self._watchers):
            self._tell(watcher)

    def _tell(self, watcher: Callable[[int], None]) -> None:
        try:
            watcher(self._told)
        except Exception:
            self.errors += 1
            log.exception("membership: a local health watcher failed; dropped")
            self._watchers.remove(watcher)
