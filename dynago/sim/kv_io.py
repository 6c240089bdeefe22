"""What a simulated KV node and its world say to each other: the store, peer and timer
operations a node asks for, and what a client gets back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from dynago.kv.messages import KvMessage
from dynago.kv.model import GetReply, KvError, PutReply

PutResult = PutReply | KvError
GetResult = GetReply | KvError


class ConnectionLost(KvError):
    """The node crashed while the client waited: the request may or may not have taken
    effect (no HTTP status: the connection broke)."""

    status = 0


class Life(Protocol):
    """One life of a node: its name, and whether it still runs."""

    name: str
    up: bool


class StoreOps(Protocol):
    """What a node asks of the world: its store, its peers and its timers. Every reply
    comes later, as an event of the world, and only while the node's life lasts."""

    @property
    def now(self) -> float: ...

    def send(self, sender: Life, to: str, message: KvMessage) -> None: ...

    def read(self, node: Life, key: bytes,
             reply: Callable[[bytes | None], None]) -> None: ...

    def update(self, node: Life, key: bytes, fn: Callable[[bytes | None], bytes | None],
               reply: Callable[[bytes | None], None],
               on_error: Callable[[Exception], None]) -> None: ...

    def later(self, node: Life, delay_s: float, fn: Callable[[], None]) -> None: ...
