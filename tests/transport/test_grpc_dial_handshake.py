"""GrpcTransport dials whose RPC ends in the middle of the handshake.

On a loaded machine the acceptor's connect timeout can run out between the dialler's
read of the acceptor's Hello and its write of the Auth; grpc.aio then raises
asyncio.InvalidStateError ("RPC already finished") from that write. The dial must end
like any failed dial: ``on_failed`` is called (the peer actor redials on it), the dial is
counted, and the channel is closed. Before this was handled, the exception escaped the
dial task, ``on_failed`` was never called and the peer actor waited for a stream forever.

The gRPC channel is replaced by a scripted one so that the race is hit every time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dynago.config import MIN_COMPATIBLE_PROTOCOL_VERSION, PROTOCOL_VERSION, Config
from dynago.transport import codec
from dynago.transport.grpc_transport import GrpcTransport

REMOTE = "127.0.0.1:9"
WAIT_S = 5.0


class ScriptedCall:
    """A stream call that answers the Hello, then has ended when the Auth is written."""

    def __init__(self, cluster: str, error: BaseException) -> None:
        self._hello = codec.encode(codec.Hello(
            name="remote", address=REMOTE, cluster=cluster,
            protocol_version=PROTOCOL_VERSION,
            min_protocol_version=MIN_COMPATIBLE_PROTOCOL_VERSION))
        self._error = error
        self.writes: list[bytes] = []
        self.cancelled = False

    async def write(self, data: bytes) -> None:
        if self.writes:
            raise self._error
        self.writes.append(data)

    async def read(self) -> bytes:
        return self._hello

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class ScriptedChannel:
    def __init__(self, call: ScriptedCall) -> None:
        self.call = call
        self.closed = False

    def stream_stream(self, method: str) -> Any:
        return lambda: self.call

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def transport() -> Iterator[GrpcTransport]:
    grpc_transport = GrpcTransport(Config.local())
    address = grpc_transport.bind("127.0.0.1:0")
    grpc_transport.serve("local", address, lambda stream: stream.close())
    try:
        yield grpc_transport
    finally:
        grpc_transport.stop()


@pytest.mark.parametrize("error", [
    asyncio.InvalidStateError("RPC already finished."),
    RuntimeError("an unexpected failure inside grpc"),
], ids=["rpc-finished", "unexpected"])
def test_dial_that_fails_while_writing_the_auth_reports_the_failure(
    transport: GrpcTransport, error: BaseException, monkeypatch: pytest.MonkeyPatch,
) -> None:
    call = ScriptedCall(transport.config.cluster, error)
    channel = ScriptedChannel(call)
    monkeypatch.setattr(transport, "_channel", lambda address: channel)
    failed = threading.Event()
    reasons: list[str] = []

    def on_failed(reason: str) -> None:
        reasons.append(reason)
        failed.set()

    transport.dial(REMOTE, "remote", on_failed)

    assert failed.wait(WAIT_S), "the dial ended without calling on_failed"
    assert len(call.writes) == 1, "the Hello was written, the Auth write failed"
    assert reasons and "handshake" in reasons[0], reasons
    assert transport.counters.dials_failed == 1
    assert transport.counters.streams_opened == 0
    assert call.cancelled and channel.closed
