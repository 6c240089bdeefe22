"""Reads during a handoff: the KvActor's replica side asks the nodes still handing a
partition to this node, so that a new owner answers with what it will hold once the
handoff is done, not only with what arrived so far.

When a ReplicaGet arrives for a key whose partition is still coming in from some
nodes (``InboundView``, kept by the HandoffActor from the chunks it receives), this node
reads its own copy and sends a ReplicaGet to each of those nodes, merges what answers
within ``PROXY_TIMEOUT_S`` (or the request timeout's half, if shorter) and answers the
coordinator with the merge: one reply, standing for this replica. Writes need nothing
of the kind: a put reaches the new owner, which holds it; a write the old holder still
takes (from a coordinator with an older ring) is forwarded by its HandoffActor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dynago.actors.kv_handoff_messages import InboundView
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import Read
from dynago.kv import version
from dynago.kv.handoff import storage_partition
from dynago.kv.messages import ReplicaGet, ReplicaGetReply

if TYPE_CHECKING:
    from dynago.actors.timers import Timer

PROXY_TIMEOUT_S = 2.0
"""Longest wait for the nodes still handing a partition over, per proxied read."""


@dataclass(frozen=True, slots=True)
class ProxyLocal:
    """Private: the local copy for proxied read ``proxy_id``."""

    proxy_id: int
    obj: bytes | None


@dataclass(frozen=True, slots=True)
class ProxyExpire:
    """Private: proxied read ``proxy_id`` waited long enough."""

    proxy_id: int


@dataclass
class _Proxy:
    sender: str
    request_id: int
    waiting: set[str]
    objs: list[version.Object] = field(default_factory=list)
    asked: dict[int, str] = field(default_factory=dict)
    timer: Timer | None = None


class HandoffReads:
    """Mixin of KvActor: ``proxy_get`` for ReplicaGet, ``proxy_replied`` for replies."""

    name: str
    ring: Any
    storage: Any
    peers: Any
    scheduler: Any
    kv_config: Any
    stats: Any
    actor_ref: Any
    new_request_id: Callable[[], int]
    inbound: InboundView

    def init_proxies(self) -> None:
        self._proxies: dict[int, _Proxy] = {}
        self._proxy_of: dict[int, int] = {}  # request id sent -> proxy id

    def proxy_get(self, sender: str, message: ReplicaGet) -> bool:
        """Serve ``message`` with the nodes still handing its partition here; False if
        none is (the caller serves it from the local store alone)."""
        raw = message.key.storage_key()
        others = {n for n in self.inbound.senders(storage_partition(raw, self.ring.ring.partitions))
                  if n not in (sender, self.name)}
        if not others:
            return False
        pid = self.new_request_id()
        proxy = _Proxy(sender, message.request_id, {self.name})
        self._proxies[pid] = proxy
        for node in others:
            rid = self.new_request_id()
            if self.peers.send(node, ReplicaGet(rid, message.key)):
                proxy.waiting.add(node)
                proxy.asked[rid] = node
                self._proxy_of[rid] = pid
        ref = self.actor_ref
        wait = min(PROXY_TIMEOUT_S, self.kv_config.request_timeout_s / 2)
        proxy.timer = self.scheduler.call_later(wait, lambda: tell_quietly(ref, ProxyExpire(pid)))
        self.storage.tell(Read(raw, reply=lambda data: tell_quietly(ref, ProxyLocal(pid, data))))
        self.stats.count("kv_handoff_proxied_reads")
        return True

    def proxy_replied(self, sender: str, message: ReplicaGetReply) -> bool:
        """True if ``message`` answers one of this node's proxied reads."""
        pid = self._proxy_of.get(message.request_id)
        if pid is None:
            return False
        del self._proxy_of[message.request_id]
        proxy = self._proxies.get(pid)
        if proxy is None or proxy.asked.get(message.request_id) != sender:
            return True
        if not message.error and message.obj is not None:
            try:
                proxy.objs.append(version.decode(message.obj))
            except ValueError:
                self.stats.count("kv_replica_messages_dropped")
        self._heard(pid, proxy, sender)
        return True

    def proxy_message(self, message: ProxyLocal | ProxyExpire) -> None:
        proxy = self._proxies.get(message.proxy_id)
        if proxy is None:
            return
        if isinstance(message, ProxyExpire):
            self._answer(message.proxy_id, proxy)
            return
        if message.obj is not None:
            try:
                proxy.objs.append(version.decode(message.obj))
            except ValueError:
                pass  # an unreadable local copy: the others may still answer
        self._heard(message.proxy_id, proxy, self.name)

    def _heard(self, pid: int, proxy: _Proxy, node: str) -> None:
        proxy.waiting.discard(node)
        if not proxy.waiting:
            self._answer(pid, proxy)

    def _answer(self, pid: int, proxy: _Proxy) -> None:
        del self._proxies[pid]
        for rid in proxy.asked:
            self._proxy_of.pop(rid, None)
        if proxy.timer is not None:
            proxy.timer.cancel()
        merged: version.Object | None = None
        for obj in proxy.objs:
            merged = obj if merged is None else version.merge(merged, obj)
        self.peers.send(proxy.sender, ReplicaGetReply(
            proxy.request_id, version.encode(merged) if merged is not None else None))
