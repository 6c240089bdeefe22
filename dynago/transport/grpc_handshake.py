"""The acceptor's side of the node-to-node handshake over a gRPC stream.

Hello each way (cluster name and protocol versions checked, codec.check_hello), then,
with a keyring, a proof each way that both hold a cluster key (transport.handshake). A
refusal is written to the dialler with its reason before hanging up, so both sides log
it. Runs on the transport's loop thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from dynago.config import Config
from dynago.transport import codec, handshake
from dynago.transport.grpc_stream import TransportCounters

log = logging.getLogger("dynago.transport.grpc_transport")  # one logger for the transport


async def accept(
    context: Any,
    hello: codec.Hello,
    keyring: handshake.Keyring | None,
    config: Config,
    counters: TransportCounters,
    refused: Callable[[codec.Hello, str], None],
) -> codec.Hello | None:
    """Run the handshake on the accepted RPC ``context`` as node ``hello``; returns the
    dialler's Hello once it passed, else None (refused, malformed, timed out or hung
    up: ``refused`` or ``counters`` have been told)."""
    timeout = config.connect_timeout_s
    try:
        first = await asyncio.wait_for(context.read(), timeout)
        if first is grpc.aio.EOF:
            return None
        remote = read_hello(first, context.peer(), config, counters)
        if remote is None:
            return None
        reason = codec.check_hello(hello, remote)
        if reason is not None:
            refused(remote, reason)
            await context.write(codec.encode(codec.Refusal(reason)))
            return None
        own_nonce = handshake.new_nonce()
        proof = handshake.make_proof(keyring, "acceptor", hello.cluster, own_nonce,
                                     remote.nonce, hello.name, remote.name)
        await context.write(codec.encode(
            dataclasses.replace(hello, nonce=own_nonce, proof=proof)))
        second = await asyncio.wait_for(context.read(), timeout)
        if second is grpc.aio.EOF:
            return None
        auth = codec.decode(second, config.max_message_bytes)
        if isinstance(auth, codec.Refusal):
            # The dialler could not check our proof (other key, or none).
            refused(remote, f"it refused us: {auth.reason[:200]}")
            return None
        if not isinstance(auth, codec.Auth):
            raise codec.DecodeError(f"expected Auth, got {type(auth).__name__}")
        reason = handshake.check_proof(keyring, auth.proof, "dialler", hello.cluster,
                                       remote.nonce, own_nonce, remote.name, hello.name)
        if reason is not None:
            refused(remote, reason)
            await context.write(codec.encode(codec.Refusal(reason)))
            return None
    except (TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return None  # the dialler hung up or was too slow; InvalidStateError: RPC ended
    except codec.DecodeError as error:
        counters.malformed_messages += 1
        log.warning("malformed handshake from %s: %s", context.peer(), error)
        return None
    return remote


def read_hello(
    data: bytes, origin: str, config: Config, counters: TransportCounters
) -> codec.Hello | None:
    """The peer's Hello, or None (counted and logged) if ``data`` is not one."""
    try:
        message = codec.decode(data, config.max_message_bytes)
    except codec.DecodeError as error:
        counters.malformed_messages += 1
        log.warning("malformed handshake from %s: %s", origin, error)
        return None
    if not isinstance(message, codec.Hello):
        counters.malformed_messages += 1
        log.warning("stream from %s did not start with a handshake", origin)
        return None
    return message
