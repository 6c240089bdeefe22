"""NodeView: the narrow, typed view of a running node that the HTTP layer, metrics and
event streams read and ask — instead of importing ``dynago.node.Node`` (which imports them).

``Node`` satisfies it structurally; tests may pass any object that does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pykka

    from dynago.actors.messages import MemberView
    from dynago.http.server import RouteHook
    from dynago.transport.faults import Faults


class NodeView(Protocol):
    """What the admin API, /metrics and /v1/events need of a node."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str:
        """The address other nodes are told (advertised, else bound)."""
        ...

    @property
    def membership(self) -> pykka.ActorRef[Any] | None:
        """The MembershipActor (None before start)."""
        ...

    @property
    def faults(self) -> Faults | None:
        """Fault-injection rules (None: disabled)."""
        ...

    @property
    def transport(self) -> object: ...

    def members(self, *, live_only: bool = False) -> tuple[MemberView, ...]: ...

    def stats(self, *, services: bool = True) -> dict[str, int]:
        """Counters; ``services=False`` leaves out the services' (their own metric
        families carry them to /metrics)."""
        ...

    def service_http_routes(self) -> list[RouteHook]:
        """Route hooks the node's services contribute (dynago.service), for the admin
        server to mount beside its own (e.g. the KV store's ``/kvstore``)."""
        ...
