"""gRPC settings of the node-to-node transport: the port check before binding, channel
and server options (message limits, keepalive), and the client channel (plaintext or
mutual TLS)."""

from __future__ import annotations

import errno
import socket
from typing import Any

import grpc
import grpc.aio

from dynago.config import Config
from dynago.transport.base import TransportError
from dynago.transport.tls import TlsFiles


def check_port_free(host: str, port: int) -> None:
    """Raise TransportError if ``host:port`` cannot be bound for listening.

    gRPC would say so too, but only through its own log line on stderr; this check gives
    the one clear error. SO_REUSEADDR as gRPC sets it: a port held only by connections in
    TIME_WAIT (a node restarted on its old port) is free.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise TransportError(f"cannot bind {host}:{port}: {error.strerror or error}") from None
    for family, kind, proto, _name, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                reason = "address in use" if error.errno == errno.EADDRINUSE else (
                    error.strerror or str(error))
                raise TransportError(f"cannot bind {host}:{port}: {reason}") from None


def message_options(config: Config) -> list[tuple[str, Any]]:
    # gRPC's own limit sits well above ours, so that oversized messages up to 4x the
    # limit reach the codec, which refuses, logs and counts them. Beyond that gRPC
    # cuts the stream itself before dynago sees the message: the node is fine, but
    # the acceptor only sees the stream end (the dialler's side counts it).
    limit = 4 * config.max_message_bytes + 1024
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
    ]

def server_options(config: Config) -> list[tuple[str, Any]]:
    keepalive_ms = int(config.keepalive_interval_s * 1000)
    return [
        *message_options(config),
        ("grpc.so_reuseport", 0),  # a port in use must fail, not be shared
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", keepalive_ms // 2),
        ("grpc.http2.max_ping_strikes", 0),
    ]

def client_options(config: Config) -> list[tuple[str, Any]]:
    keepalive_ms = int(config.keepalive_interval_s * 1000)
    return [
        *message_options(config),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.enable_retries", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


def channel(address: str, config: Config, tls: TlsFiles | None) -> grpc.aio.Channel:
    options = client_options(config)
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key,
        certificate_chain=tls.cert)
    options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(address, credentials, options=options)
