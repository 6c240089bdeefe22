"""Standard gRPC services on the node's port: a real grpc client gets SERVING from
``grpc.health.v1.Health/Check``, and server reflection lists and describes the services
(what grpcurl and Kubernetes' grpc probes use)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

pytestmark = pytest.mark.process

SERVICES = {"dynago.v1.Membership", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"}


def test_grpc_health_check_answers_serving(cluster: Any) -> None:
    """Check("") and Check("dynago.v1.Membership") answer SERVING on the node-to-node
    port; an unknown service is NOT_FOUND."""
    node = cluster("a")
    with grpc.insecure_channel(node.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "dynago.v1.Membership"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as error:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def _reflect(channel: grpc.Channel,
             request: reflection_pb2.ServerReflectionRequest) -> Any:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    assert len(answers) == 1
    return answers[0]


def test_grpc_reflection_lists_and_describes_the_services(cluster: Any) -> None:
    """Reflection lists the membership, health and reflection services, and describes
    dynago.v1.Membership with its Stream method from membership.proto."""
    node = cluster("a")
    with grpc.insecure_channel(node.address) as channel:
        listed = _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
        assert {s.name for s in listed.list_services_response.service} == SERVICES

        found = _reflect(channel, reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="dynago.v1.Membership"))
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in found.file_descriptor_response.file_descriptor_proto]
        services = {(f.package, s.name): [m.name for m in s.method]
                    for f in files for s in f.service}
        assert services[("dynago.v1", "Membership")] == ["Stream"]
