"""Node: assembles one node from its options and parts, starts it and stops it.

Parts: a transport, a MembershipActor (which ticks itself), the admin API, the
``--on-event`` handlers, and any services (dynago.service: the KV store is one). The
node owns the route table (wire message class -> actor) and the peer directory
(name -> PeerActor) they share (actors.routing).

The CLI builds one from NodeOptions; tests build them in-process too (with a
MemoryNetwork transport and a ManualClock if they like), with NodeOptions or with the
same fields as keywords. ``start`` binds everything or raises; ``stop`` takes it all
down again: services and actors first, then the transport (the other order waits out
gRPC's grace).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pykka

from dynago.actors import api
from dynago.actors.membership import MembershipActor
from dynago.actors.messages import MemberView, StreamOpened
from dynago.actors.refs import tell_quietly
from dynago.actors.routing import PeerDirectory, RouteTable
from dynago.actors.timers import Scheduler, ThreadScheduler
from dynago.clock import Clock, SystemClock
from dynago.node_options import NodeOptions
from dynago.service import NodeContext, Service
from dynago.transport.base import Stream, Transport
from dynago.transport.faults import Faults

if TYPE_CHECKING:
    from dynago.http.admin import AdminServer
    from dynago.http.server import RouteHook
    from dynago.ops.handlers import EventHandlers

log = logging.getLogger(__name__)


class Node:
    """One cluster node."""

    def __init__(
        self,
        options: NodeOptions | None = None,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        scheduler: Scheduler | None = None,
        faults: Faults | None = None,
        event_handlers: EventHandlers | None = None,
        services: Sequence[Service] = (),
        **settings: Any,
    ) -> None:
        """``options``, or its fields as keywords (``settings``; not both). The other
        keywords are parts: None builds the default (a GrpcTransport from the options,
        the system clock, a thread scheduler, Faults if ``fault_injection``).

        Raises what NodeOptions raises for bad options (ValueErrors), and TypeError for
        an unknown keyword.
        """
        if options is None:
            options = NodeOptions(**{k: v for k, v in settings.items() if v is not None})
        elif settings:
            raise TypeError(f"pass NodeOptions or its fields, not both: {sorted(settings)}")
        self.options = options
        self.config = options.config
        self.event_handlers = event_handlers
        """Runs the ``--on-event`` commands for every membership event (None: none)."""
        self._clock = clock or SystemClock()
        self._own_scheduler = scheduler is None
        self._scheduler: Scheduler | None = scheduler
        if faults is None and options.fault_injection:
            faults = Faults()
        self.faults = faults
        """Fault injection rules of this node (None: disabled). Also served on the admin
        API at /v1/faults when set."""
        if transport is None:
            from dynago.transport.grpc_transport import GrpcTransport

            transport = GrpcTransport(self.config, faults, keyring=options.keyring,
                                      tls=options.tls)
        self.transport: Transport = transport
        self.services = tuple(services)
        self.routes = RouteTable()
        """Wire message class -> the actor that handles it (actors.routing)."""
        self.peers = PeerDirectory()
        """Peer name -> its PeerActor, kept by the MembershipActor (actors.routing)."""
        self.membership: pykka.ActorRef[Any] | None = None
        self.address = ""
        """The address other nodes are told: ``advertise`` if given, else the bound one."""
        self.bound_address = ""
        self.name = ""
        self.http: AdminServer | None = None
        self._started_services: list[tuple[Service, list[pykka.ActorRef[Any]]]] = []
        self._stopped = False

    def start(self) -> Node:
        """Bind, start the actors and services and begin joining. Raises TransportError
        or OSError (a port in use), or what a service's start raises."""
        options = self.options
        self.bound_address = self.transport.bind(options.bind)
        self.address = options.advertise or self.bound_address
        try:
            self.name = options.name or self.address
            if options.http_bind is not None:
                # Bound before any actor starts, so that a port in use fails cleanly.
                from dynago.http.admin import AdminServer

                self.http = AdminServer(options.http_bind, self, token=options.admin_token)
            seeds = tuple(s for s in options.seeds if s != self.address)
            if self._scheduler is None:
                self._scheduler = ThreadScheduler()
            self.membership = membership = MembershipActor.start(
                name=self.name,
                address=self.address,
                config=self.config,
                transport=self.transport,
                clock=self._clock,
                scheduler=self._scheduler,
                seeds=seeds,
                seed=options.seed,
                tags=options.tags,
                self_tick=True,
                routes=self.routes,
                peers=self.peers,
                loop=getattr(self.transport, "loop", None),
            )
            if self.event_handlers is not None:
                # Subscribed before the first tick, so that no event goes unhandled.
                self.event_handlers.start(name=self.name, address=self.address,
                                          cluster=self.config.cluster)
                api.subscribe(membership, self.event_handlers.submit)
            self._start_services(membership, self._scheduler)

            def on_stream(stream: Stream) -> None:
                tell_quietly(membership, StreamOpened(stream))

            self.transport.serve(self.name, self.address, on_stream)
            if self.http is not None:
                from dynago.http.ui_routes import add_ui_routes

                for hook in self.service_http_routes():
                    self.http.add_routes(hook)
                # The web page (/ui) on every node with an admin API, KV service or not.
                self.http.add_routes(add_ui_routes)
                self.http.start()
        except BaseException:
            self.stop(leave=False)
            raise
        return self

    def _start_services(self, membership: pykka.ActorRef[Any], scheduler: Scheduler) -> None:
        context = NodeContext(
            name=self.name, address=self.address, config=self.config, clock=self._clock,
            scheduler=scheduler, transport=self.transport, membership=membership,
            routes=self.routes, peers=self.peers, tags=self.options.tags,
            loop=getattr(self.transport, "loop", None),
        )
        for service in self.services:
            refs: list[pykka.ActorRef[Any]] = []
            self._started_services.append((service, refs))  # stopped even if start fails
            service.start(context)
            for kind, ref in service.peer_routes().items():
                self.routes.register((kind,), ref)
                refs.append(ref)
            log.debug("service %s started", service.name)

    def service_http_routes(self) -> list[RouteHook]:
        """The HTTP route hooks the started services contribute, in service order."""
        return [route for service, _ in self._started_services
                for route in service.http_routes()]

    def service_metric_families(self) -> list[Any]:
        """The Prometheus metric families (prometheus_client ``Metric``) that started
        services offer through an optional ``metric_families()``, in service order
        (blocks while services read their actors: not for an actor's thread)."""
        families: list[Any] = []
        for service, _ in self._started_services:
            collect = getattr(service, "metric_families", None)
            if callable(collect):
                families.extend(collect())
        return families

    @property
    def http_address(self) -> str | None:
        return self.http.address if self.http is not None else None

    def members(self, *, live_only: bool = False) -> tuple[MemberView, ...]:
        """Snapshot of the member map (see api.snapshot)."""
        assert self.membership is not None, "start() first"
        return api.snapshot(self.membership, live_only=live_only)

    def stats(self, *, services: bool = True) -> dict[str, int]:
        """Counters of the membership actor and of the transport (if it keeps any), and
        with ``services`` those of the started services (each asks its actors)."""
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
        if services:
            for service, _ in self._started_services:
                result.update(service.stats())
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
        """Leave (unless told not to), then stop the admin API, services, actors and the
        transport."""
        if self._stopped:
            return
        self._stopped = True
        if leave:
            # Services hand their data over while this node still counts as a member
            # (once its leave is out, others stop talking to it); each bounds its wait.
            for service, _ in self._started_services:
                prepare = getattr(service, "prepare_leave", None)
                if callable(prepare):
                    try:
                        prepare()
                    except Exception:
                        log.exception("service %s failed to prepare the leave", service.name)
            self.leave()
        if self.http is not None:
            self.http.stop()
        while self._started_services:
            service, refs = self._started_services.pop()
            for ref in refs:
                self.routes.unregister(ref)
            try:
                service.stop()
            except Exception:
                log.exception("service %s failed to stop", service.name)
        if self.membership is not None:
            try:
                self.membership.stop(timeout=3.0)  # stops its peer actors too
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        if self.event_handlers is not None:
            self.event_handlers.stop(timeout_s=0.5)
        self.transport.stop()
        if self._own_scheduler and isinstance(self._scheduler, ThreadScheduler):
            self._scheduler.stop()
