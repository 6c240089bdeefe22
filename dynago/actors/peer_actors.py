"""PeerActors: the PeerActors a MembershipActor runs, one per remote node, by name.

The MembershipActor starts a peer's actor on first use and stops it when the member is
gone (left, or failed and swept); every start and stop is mirrored into the node's
PeerDirectory (actors.routing), which other actors read to reach a peer directly. Only
the MembershipActor's thread calls these methods.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import pykka

from dynago.actors.peer import PeerActor
from dynago.actors.routing import PeerDirectory, RouteTable
from dynago.actors.timers import Scheduler
from dynago.clock import Clock
from dynago.config import Config
from dynago.transport.base import Transport

log = logging.getLogger(__name__)


class PeerActors:
    """Name -> PeerActor of one node, with when each was started."""

    def __init__(
        self,
        *,
        local_name: str,
        transport: Transport,
        routes: RouteTable,
        directory: PeerDirectory,
        scheduler: Scheduler,
        config: Config,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._local_name = local_name
        self._transport = transport
        self._routes = routes
        self.directory = directory
        self._scheduler = scheduler
        self._config = config
        self._clock = clock
        self._rng = rng
        self._peers: dict[str, pykka.ActorRef[Any]] = {}
        self._started: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def refs(self) -> Iterator[pykka.ActorRef[Any]]:
        return iter(list(self._peers.values()))

    def get(self, name: str) -> pykka.ActorRef[Any] | None:
        """The actor for ``name``, if one was started (it may have stopped since)."""
        return self._peers.get(name)

    def start(
        self, name: str, address: str, membership: pykka.ActorRef[Any]
    ) -> pykka.ActorRef[Any]:
        """Start (or restart) the actor for ``name``, reached at ``address``."""
        peer = PeerActor.start(
            local_name=self._local_name,
            peer_name=name,
            address=address,
            transport=self._transport,
            membership=membership,
            scheduler=self._scheduler,
            config=self._config,
            seed=self._rng.getrandbits(64),
            routes=self._routes,
            directory=self.directory,
        )
        self._peers[name] = peer
        self._started[name] = self._clock.monotonic()
        self.directory.put(name, peer)
        return peer

    def stop(self, name: str) -> None:
        """Stop the actor for ``name`` (without waiting), if there is one."""
        peer = self._peers.pop(name, None)
        self._started.pop(name, None)
        if peer is not None:
            self.directory.discard(name, peer)
            peer.stop(block=False)

    def sweep(self, now: float, gone: Callable[[str], bool]) -> None:
        """Stop the actors of peers ``gone`` says are no longer live members, once they
        had time (twice ``reconnect_interval_s``) to deliver what they were started for:
        a peer actor redials for as long as it lives, and made-up or dead members must
        not keep threads and dials going."""
        grace = 2 * self._config.reconnect_interval_s
        for name in list(self._peers):
            if not gone(name):
                continue
            if now - self._started.get(name, now) < grace:
                continue
            self.stop(name)

    def stop_all(self, timeout_s: float = 2.0) -> None:
        """Stop every actor and wait for each (bounded): a node must not leave peer
        threads behind. Peers never ask the MembershipActor anything, so this cannot
        deadlock."""
        stopping = [peer.stop(block=False) for peer in self._peers.values()]
        self._peers.clear()
        self._started.clear()
        self.directory.clear()
        for future in stopping:
            try:
                future.get(timeout=timeout_s)
            except (pykka.Timeout, pykka.ActorDeadError):
                log.warning("a peer actor did not stop within %.0f s", timeout_s)
