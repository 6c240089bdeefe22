"""Standard gRPC services on the node-to-node port, so that ordinary tools work:

* **Health checking** (``grpc.health.v1.Health``, from grpcio-health-checking): ``Check``
  and ``Watch`` answer SERVING for the whole server (service ``""``) and for
  ``dynago.v1.Membership`` while the node serves, NOT_SERVING from the moment it stops.
  Kubernetes' ``grpc`` probes, ``grpc_health_probe`` and load balancers use it.
* **Server reflection** (``grpc.reflection.v1alpha.ServerReflection``, from
  grpcio-reflection): ``grpcurl -plaintext HOST:PORT list`` names the services, and
  ``describe`` prints the membership protocol from dynago/proto/membership.proto.

Neither service goes through the cluster handshake: they reveal only that a dynago node
listens and the (public) schema of its protocol, never the member list. With mutual TLS
they need a client certificate like everything else on the port.
"""

from __future__ import annotations

from typing import Any

import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import dynago.proto.membership_pb2 as membership_pb2

MEMBERSHIP_SERVICE = membership_pb2.DESCRIPTOR.services_by_name["Membership"].full_name
"""``dynago.v1.Membership``: the node-to-node stream service."""

HEALTH_SERVICE = health.SERVICE_NAME
REFLECTION_SERVICE = reflection.SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcServices:
    """The health and reflection services of one aio server. Every method runs on the
    server's event loop."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._health: Any = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (MEMBERSHIP_SERVICE, HEALTH_SERVICE, REFLECTION_SERVICE), server)

    async def set_serving(self, serving: bool) -> None:
        """Report the node (service ``""``) and its membership service as serving or not."""
        status = SERVING if serving else NOT_SERVING
        for service in ("", MEMBERSHIP_SERVICE):
            await self._health.set(service, status)

    async def shutdown(self) -> None:
        """NOT_SERVING for good: later ``set_serving`` calls change nothing."""
        await self._health.enter_graceful_shutdown()
