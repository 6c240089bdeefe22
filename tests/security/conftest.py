"""Fixtures of the security tests: real ``dynago node`` processes on 127.0.0.1, and a raw
gRPC client that speaks the wire protocol by hand (an intruder, a buggy peer, a replayer).

* ``cluster`` and ``dynago_cli`` come from tests/conftest.py (tests/cluster_support.py).
* ``raw_peer`` — a factory ``raw_peer(address) -> RawPeer``; every channel it opened is
  closed at teardown.
* ``key_file`` — writes a cluster key file (base64 keys, one per line, first is primary).
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from dynago.config import MIN_COMPATIBLE_PROTOCOL_VERSION, PROTOCOL_VERSION
from dynago.transport import batch_codec, codec, handshake

T = TypeVar("T")

STREAM_METHOD = "/dynago.v1.Membership/Stream"

RAW_TIMEOUT_S = 5.0
"""Default deadline of one RawPeer read or write."""


# ---------------------------------------------------------------------- keys


@pytest.fixture
def key_file(tmp_path: Path) -> Callable[..., str]:
    """``key_file(name, key, ...)`` writes the keys (raw bytes) base64-encoded, one per
    line, first is primary, to ``tmp_path/keys/name`` and returns its path."""
    directory = tmp_path / "keys"
    directory.mkdir()

    def write(name: str, *keys: bytes) -> str:
        path = directory / name
        lines = ["# dynago cluster keys, first is primary"]
        lines += [base64.b64encode(key).decode() for key in keys]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    return write


# ---------------------------------------------------------------------- raw wire client


class RawPeer:
    """One ``Membership/Stream`` call made by hand: raw bytes each way, no serializers.

    A reader thread moves what the node sends into a queue, so every read is bounded in
    time; ``closed`` is set (with ``end``, the call's final status) once the node ends
    the stream. Writes go through a small queue that gRPC drains as fast as the stream's
    flow control allows.
    """

    def __init__(self, address: str, *, credentials: grpc.ChannelCredentials | None = None,
                 options: Sequence[tuple[str, Any]] = ()) -> None:
        opts = [("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20), *options]
        if credentials is None:
            self.channel = grpc.insecure_channel(address, options=opts)
        else:
            self.channel = grpc.secure_channel(address, credentials, options=opts)
        self._outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()
        self._stopping = threading.Event()
        self.end: str = ""
        self.call = self.channel.stream_stream(STREAM_METHOD)(self._requests())
        self._reader = threading.Thread(target=self._read, daemon=True, name="raw-peer-read")
        self._reader.start()
        self.nonce = b""
        self.remote: codec.Hello | None = None

    def _requests(self) -> Iterator[bytes]:
        # Runs on gRPC's request thread until close(); wakes up every 0.1 s to notice it.
        while not self._stopping.is_set():
            try:
                item = self._outbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            yield item

    def _read(self) -> None:
        try:
            for data in self.call:
                # This peer speaks the current protocol, so the node may batch: one
                # envelope at a time for the tests, as if each had come alone.
                parts = (batch_codec.split_batch(data, 1 << 30)
                         if batch_codec.is_batch(data) else [data])
                for part in parts:
                    self._inbox.put(part)
            self.end = "OK: closed by the node"
        except grpc.RpcError as error:
            self.end = f"{error.code().name}: {error.details()}"
        finally:
            self.closed.set()
            self._inbox.put(None)

    # ------------------------------------------------------------------ bytes

    def send(self, data: bytes, timeout_s: float = RAW_TIMEOUT_S) -> bool:
        """Queue ``data``; False if the stream closed (or stayed full) before it fit."""
        deadline = time.monotonic() + timeout_s
        while not self.closed.is_set():
            try:
                self._outbox.put(data, timeout=0.05)
                return True
            except queue.Full:
                if time.monotonic() >= deadline:
                    return False
        return False

    def recv(self, timeout_s: float = RAW_TIMEOUT_S) -> bytes | None:
        """The next message from the node; None if the stream ended. Raises TimeoutError."""
        try:
            return self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"no message from the node within {timeout_s} s") from None

    def recv_message(self, timeout_s: float = RAW_TIMEOUT_S) -> Any:
        """The next message, decoded; None if the stream ended."""
        data = self.recv(timeout_s)
        return None if data is None else codec.decode(data, 1 << 30)

    def wait_closed(self, timeout_s: float = RAW_TIMEOUT_S) -> bool:
        """True once the node ended the stream (within ``timeout_s``)."""
        return self.closed.wait(timeout_s)

    # ------------------------------------------------------------------ protocol

    def hello(self, name: str = "intruder", *, cluster: str = "dynago",
              address: str = "127.0.0.1:9", nonce: bytes | None = None) -> Any:
        """Send our Hello (fresh 16-byte nonce unless given); return the node's answer
        (its Hello, or a Refusal; None if it closed the stream)."""
        self.nonce = os.urandom(handshake.NONCE_BYTES) if nonce is None else nonce
        self.send(codec.encode(codec.Hello(
            name=name, address=address, cluster=cluster, protocol_version=PROTOCOL_VERSION,
            min_protocol_version=MIN_COMPATIBLE_PROTOCOL_VERSION, nonce=self.nonce)))
        answer = self.recv_message()
        if isinstance(answer, codec.Hello):
            self.remote = answer
        return answer

    def dialler_proof(self, keyring: handshake.Keyring | None, name: str,
                      cluster: str = "dynago") -> bytes:
        """The proof a dialler named ``name`` owes the node after its Hello."""
        assert self.remote is not None, "hello() first"
        return handshake.make_proof(keyring, "dialler", cluster, self.nonce, self.remote.nonce,
                                    name, self.remote.name)

    def handshake(self, name: str = "intruder", *, keyring: handshake.Keyring | None = None,
                  cluster: str = "dynago") -> Any:
        """Hello, the node's Hello, Auth with our proof (empty without a keyring); return
        the node's first message after that (its StateSync when it accepted us)."""
        answer = self.hello(name, cluster=cluster)
        assert isinstance(answer, codec.Hello), f"node answered the Hello with {answer!r}"
        self.send(codec.encode(codec.Auth(self.dialler_proof(keyring, name, cluster))))
        return self.recv_message()

    def close(self) -> None:
        """Half-close, cancel, close the channel; bounded."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._outbox.put_nowait(None)
        self.call.cancel()
        self.channel.close()
        self._reader.join(RAW_TIMEOUT_S)


@pytest.fixture
def raw_peer() -> Iterator[Callable[..., RawPeer]]:
    """Factory of RawPeer streams; every one is closed at teardown."""
    opened: list[RawPeer] = []

    def open_one(address: str, **kwargs: Any) -> RawPeer:
        peer = RawPeer(address, **kwargs)
        opened.append(peer)
        return peer

    try:
        yield open_one
    finally:
        for peer in opened:
            with contextlib.suppress(Exception):
                peer.close()
