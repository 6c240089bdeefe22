"""Node: wires a transport, a MembershipActor (which ticks itself) and the admin API together.

The CLI builds one; tests build them in-process too (with a MemoryNetwork transport and a
ManualClock if they like). ``start`` binds everything or raises; ``stop`` takes it all
down again: actors first, then the transport (the other order waits out gRPC's grace).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pykka

from dynago.actors import api
from dynago.actors.membership import MembershipActor
from dynago.actors.messages import MemberView, StreamOpened
from dynago.actors.refs import tell_quietly
from dynago.actors.timers import Scheduler, ThreadScheduler
from dynago.clock import Clock, SystemClock
from dynago.config import Config
from dynago.core.address import parse_address
from dynago.core.tags import make_tags
from dynago.transport.base import Stream
from dynago.transport.faults import Faults
from dynago.transport.resolve import parse_seed

if TYPE_CHECKING:
    from dynago.ops.handlers import EventHandlers
    from dynago.transport.grpc_transport import TlsFiles
    from dynago.transport.handshake import Keyring

log = logging.getLogger(__name__)


class Node:
    """One cluster node."""

    def __init__(
        self,
        *,
        bind: str,
        name: str | None = None,
        seeds: tuple[str, ...] = (),
        config: Config | None = None,
        http_bind: str | None = None,
        transport: Any = None,
        clock: Clock | None = None,
        scheduler: Scheduler | None = None,
        seed: int | None = None,
        faults: Faults | None = None,
        keyring: Keyring | None = None,
        tls: TlsFiles | None = None,
        admin_token: str | None = None,
        advertise: str | None = None,
        event_handlers: EventHandlers | None = None,
        tags: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> None:
        self.config = (config or Config.lan()).validate()
        self._tags = make_tags(tags)  # TagError (a ValueError) before anything starts
        parse_address(bind, allow_port_zero=True)
        for address in seeds:
            parse_seed(address)  # HOST:PORT, or dns:NAME:PORT (resolved at each dial)
        if advertise is not None:
            parse_address(advertise)
        self._advertise = advertise
        self.event_handlers = event_handlers
        """Runs the ``--on-event`` commands for every membership event (None: none)."""
        if http_bind is not None:
            parse_address(http_bind, allow_port_zero=True)
        self._bind = bind
        self._requested_name = name
        self._seeds = tuple(seeds)
        self._http_bind = http_bind
        self._admin_token = admin_token
        self._clock = clock or SystemClock()
        self._own_scheduler = scheduler is None
        self._scheduler: Scheduler | None = scheduler
        self._rng_seed = seed
        self.faults = faults
        """Fault injection rules of this node (None: disabled). Also served on the admin
        API at /v1/faults when set."""
        if transport is None:
            from dynago.transport.grpc_transport import GrpcTransport

            transport = GrpcTransport(self.config, faults, keyring=keyring, tls=tls)
        self.transport = transport
        self.membership: pykka.ActorRef[Any] | None = None
        self.address = ""
        """The address other nodes are told: ``advertise`` if given, else the bound one."""
        self.bound_address = ""
        self.name = ""
        self.http: Any = None
        self._stopped = False

    def start(self) -> Node:
        """Bind, start the actors and begin joining. Raises TransportError or OSError."""
        self.bound_address = self.transport.bind(self._bind)
        self.address = self._advertise or self.bound_address
        try:
            self.name = self._requested_name or self.address
            if self._http_bind is not None:
                # Bound before any actor starts, so that a port in use fails cleanly.
                from dynago.http.admin import AdminServer

                self.http = AdminServer(self._http_bind, self, token=self._admin_token)
            seeds = tuple(s for s in self._seeds if s != self.address)
            if self._scheduler is None:
                self._scheduler = ThreadScheduler()
            self.membership = MembershipActor.start(
                name=self.name,
                address=self.address,
                config=self.config,
                transport=self.transport,
                clock=self._clock,
                scheduler=self._scheduler,
                seeds=seeds,
                seed=self._rng_seed,
                tags=self._tags,
                self_tick=True,
            )
            membership = self.membership
            if self.event_handlers is not None:
                # Subscribed before the first tick, so that no event goes unhandled.
                self.event_handlers.start(name=self.name, address=self.address,
                                          cluster=self.config.cluster)
                api.subscribe(membership, self.event_handlers.submit)

            def on_stream(stream: Stream) -> None:
                tell_quietly(membership, StreamOpened(stream))

            self.transport.serve(self.name, self.address, on_stream)
            if self.http is not None:
                self.http.start()
        except BaseException:
            self.stop(leave=False)
            raise
        return self

    @property
    def http_address(self) -> str | None:
        return self.http.address if self.http is not None else None

    def members(self, *, live_only: bool = False) -> tuple[MemberView, ...]:
        """Snapshot of the member map (see api.snapshot)."""
        assert self.membership is not None, "start() first"
        return api.snapshot(self.membership, live_only=live_only)

    def stats(self) -> dict[str, int]:
        """Counters of the membership actor and of the transport (if it keeps any)."""
        assert self.membership is not None, "start() first"
        result = api.stats(self.membership)
        counters = getattr(self.transport, "counters", None)
        if counters is not None and hasattr(counters, "as_dict"):
            result.update(counters.as_dict())
        if self.event_handlers is not None:
            result.update(self.event_handlers.stats())
        if self.faults is not None:
            result["faults_dropped_out"] = self.faults.dropped_out
            result["faults_dropped_in"] = self.faults.dropped_in
        return result

    def leave(self) -> bool:
        """Announce the leave and wait (bounded by config.leave_timeout_s) until it is out."""
        if self.membership is None or not self.membership.is_alive():
            return False
        try:
            return api.leave(self.membership, timeout_s=self.config.leave_timeout_s)
        except (pykka.ActorDeadError, pykka.Timeout):
            return False

    def stop(self, *, leave: bool = True) -> None:
        """Leave (unless told not to), then stop actors, the transport and the admin API."""
        if self._stopped:
            return
        self._stopped = True
        if leave:
            self.leave()
        if self.http is not None:
            self.http.stop()
        if self.membership is not None:
            try:
                self.membership.stop(timeout=3.0)  # stops its peer actors too
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        if self.event_handlers is not None:
            self.event_handlers.stop(timeout_s=0.5)
        stop = getattr(self.transport, "stop", None)
        if stop is not None:
            stop()
        if self._own_scheduler and isinstance(self._scheduler, ThreadScheduler):
            self._scheduler.stop()
