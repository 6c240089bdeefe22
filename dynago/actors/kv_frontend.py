"""ActorFrontend: the ``KvFrontend`` (dynago/kv/model.py) of a running node, for the
HTTP layer and in-process callers on an asyncio loop.

Each call checks its input (so that bad input changes nothing and never reaches the
cluster), tells the KvActor a request carrying a callback, and awaits an asyncio future
that the callback resolves with ``loop.call_soon_threadsafe``: no thread waits per
request. The KvActor always answers within its request deadline; the wait here is bounded
a little beyond it in case the actor itself is gone.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pykka

from dynago.actors.kv_messages import ClientGet, ClientListKeys, ClientPut
from dynago.kv.config import KvConfig
from dynago.kv.members import RingKeeper
from dynago.kv.model import (
    Content,
    GetReply,
    KvError,
    ObjectKey,
    PutReply,
    Quorum,
    TooLarge,
    Unavailable,
)

T = TypeVar("T")

_ANSWER_MARGIN_S = 3.0
"""How much longer than the request deadline a caller waits for the KvActor itself."""


class ActorFrontend:
    """``KvFrontend`` over a KvActor."""

    def __init__(self, kv: pykka.ActorRef[Any], ring: RingKeeper, kv_config: KvConfig) -> None:
        self._kv = kv
        self._ring = ring
        self._config = kv_config
        self._wait_s = kv_config.request_timeout_s + _ANSWER_MARGIN_S

    async def _ask(self, make: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def resolve(result: Any) -> None:
            loop.call_soon_threadsafe(_settle, future, result)

        try:
            self._kv.tell(make(resolve))
        except pykka.ActorDeadError:
            raise Unavailable("the key-value store is stopping", answered=0, needed=0) from None
        try:
            result = await asyncio.wait_for(future, self._wait_s)
        except TimeoutError:
            raise Unavailable("the key-value store did not answer in time", answered=0,
                              needed=0) from None
        if isinstance(result, KvError):
            raise result
        return result

    async def get(self, key: ObjectKey, quorum: Quorum, *,
                  include_deleted: bool = False) -> GetReply:
        key.check(self._config.max_key_bytes)
        result: GetReply = await self._ask(
            lambda reply: ClientGet(key, quorum, include_deleted, reply))
        return result

    async def put(self, key: ObjectKey, content: Content, context: bytes | None,
                  quorum: Quorum, *, overwrite: bool = False,
                  return_body: bool = False) -> PutReply:
        key.check(self._config.max_key_bytes)
        if len(content.value) > self._config.max_value_bytes:
            raise TooLarge(f"the value is {len(content.value)} bytes, more than "
                           f"{self._config.max_value_bytes}")
        result: PutReply = await self._ask(
            lambda reply: ClientPut(key, content, context, quorum, overwrite, return_body,
                                    reply))
        return result

    async def delete(self, key: ObjectKey, context: bytes | None, quorum: Quorum) -> PutReply:
        key.check(self._config.max_key_bytes)
        tombstone = Content(b"", deleted=True)
        result: PutReply = await self._ask(
            lambda reply: ClientPut(key, tombstone, context, quorum, False, False, reply))
        return result

    async def list_keys(self, bucket: str) -> list[str]:
        ObjectKey(bucket, "-").check(self._config.max_key_bytes)
        result: list[str] = await self._ask(lambda reply: ClientListKeys(bucket, reply))
        return result

    def first_node(self, key: ObjectKey) -> str:
        return self._ring.ring.preference_list_for(key)[0]


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # the caller may have given up already
        future.set_result(result)
