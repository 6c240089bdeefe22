"""SimKvNode: one simulated node's KV request driver, the KvActor's I/O over the pure
cores, on the simulator's virtual clock.

It does what dynago.actors.kv, kv_coordinate and kv_reads do, step for step, with the
same pure code deciding: ``resolve_quorum`` and ``capped_quorum`` for the quorum,
``Ring.preference_list_for`` for the replicas, ``RingKeeper.reachable`` for whom to ask,
``PutFsm`` and ``GetFsm`` for every outcome, ``version.coordinate`` for the
coordinator's write, ``merge_into`` for a replica's, ``GetFsm.behind`` for read repair.
Only the I/O differs: the store, the peers and the timers are the world's (``StoreOps``),
and the client is a callback.

* A **put** is coordinated by a node of the key's preference list: this one, else the
  first reachable one, to which it is forwarded (ForwardPut). The coordinator writes
  locally first, then sends the object to the other N-1 (ReplicaPut) and answers after
  W durable acknowledgements, its own included.
* A **get** asks all N replicas (its own store directly) and answers after R replies,
  merged; once every replica answered, those behind get the merged object (read repair).
* Each request has a deadline timer (``request_timeout_s``); a forwarded put waits
  ``FORWARD_MARGIN_S`` longer for its coordinator's answer.

A crash ends the node's life: every client still waiting gets ``ConnectionLost``. The
reading half (gets, read repair) is in dynago.sim.kv_gets, as kv_reads is the actor's.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from dynago.kv import version
from dynago.kv.members import RingKeeper
from dynago.kv.messages import (
    ForwardPut,
    ForwardReply,
    KvMessage,
    ReplicaGet,
    ReplicaGetReply,
    ReplicaPut,
    ReplicaPutAck,
)
from dynago.kv.model import (
    Content,
    KvError,
    ObjectKey,
    PutReply,
    Quorum,
    Unavailable,
)
from dynago.kv.replica import (
    capped_quorum,
    client_context,
    coordinated_write,
    forward_error,
    merge_into,
    put_unavailable,
)
from dynago.kv.requests import (
    PutDone,
    PutFailed,
    PutFsm,
    resolve_quorum,
)
from dynago.sim.kv_gets import SimGets, _Get
from dynago.sim.kv_io import ConnectionLost, PutResult, StoreOps

FORWARD_MARGIN_S = 1.0
"""As dynago.actors.kv_coordinate.FORWARD_MARGIN_S (the sim imports no actor module)."""

@dataclass
class _Put:
    key: ObjectKey
    preflist: tuple[str, ...]
    fsm: PutFsm
    client: Callable[[PutResult], None] | None
    origin: tuple[str, int] | None  # forwarded to us: (node, its request id)
    needed: int
    obj: version.Object | None = None


@dataclass
class _Forward:
    key: ObjectKey
    coordinator: str
    client: Callable[[PutResult], None]


class SimKvNode(SimGets):
    """One life of one node's KV layer (see the module docstring)."""

    def __init__(self, name: str, ring: RingKeeper, world: StoreOps, n_val: int,
                 timeout_s: float, max_object_bytes: int) -> None:
        self.name = name
        self.max_object_bytes = max_object_bytes
        self.ring = ring
        self.world = world
        self.n_val = n_val
        self.timeout_s = timeout_s
        self.up = True
        self.stats: Counter[str] = Counter()
        self._next_id = 0
        self._puts: dict[int, _Put] = {}
        self._gets: dict[int, _Get] = {}
        self._forwards: dict[int, _Forward] = {}

    def _rid(self) -> int:
        self._next_id += 1
        return self._next_id

    def _send(self, to: str, message: KvMessage) -> None:
        self.world.send(self, to, message)

    def crash(self) -> None:
        """This life ends: the clients still waiting see their connection break."""
        self.up = False
        waiting: list[Callable[[ConnectionLost], None]] = []
        waiting += [put.client for put in self._puts.values() if put.client is not None]
        waiting += [get.client for get in self._gets.values() if not get.answered]
        waiting += [fwd.client for fwd in self._forwards.values()]
        self._puts.clear()
        self._gets.clear()
        self._forwards.clear()
        for client in waiting:
            client(ConnectionLost("the node crashed"))

    # ------------------------------------------------------------ puts

    def put(self, key: ObjectKey, content: Content, context: bytes | None, quorum: Quorum,
            reply: Callable[[PutResult], None], *, overwrite: bool = False) -> None:
        """A client put (a delete: ``content.deleted``); ``reply`` gets the outcome."""
        try:
            resolved = resolve_quorum(self.n_val, quorum)
            clock = client_context(context)
        except KvError as exc:
            reply(exc)
            return
        preflist = self.ring.ring.preference_list_for(key)
        w = capped_quorum(quorum.w, resolved.w, preflist)
        if self.name in preflist:
            self._coordinate(key, content, clock, overwrite, w, resolved.pw, self.timeout_s,
                             reply, None)
            return
        target = next((node for node in preflist if self.ring.reachable(node)), None)
        if target is not None:
            rid = self._rid()
            self._send(target, ForwardPut(rid, key, content, context, overwrite, w,
                                          resolved.pw, int(self.timeout_s * 1000)))
            self._forwards[rid] = _Forward(key, target, reply)
            self.world.later(self, self.timeout_s + FORWARD_MARGIN_S,
                             lambda: self._expire(rid))
            self.stats["kv_forwarded"] += 1
            return
        reply(Unavailable(f"no node of the key's preference list ({', '.join(preflist)}) "
                          "is reachable", answered=0, needed=w))

    def _coordinate_forwarded(self, sender: str, message: ForwardPut) -> None:
        try:
            resolved = resolve_quorum(self.n_val, Quorum(w=message.w, pw=message.pw or None))
            clock = client_context(message.context)
        except KvError as exc:
            self._send(sender, ForwardReply(message.request_id, exc.status, str(exc)))
            return
        timeout_s = min(max(message.timeout_ms, 1) / 1000, self.timeout_s)
        self._coordinate(message.key, message.content, clock, message.overwrite, resolved.w,
                         resolved.pw, timeout_s, None, (sender, message.request_id))

    def _coordinate(self, key: ObjectKey, content: Content, context: version.Clock | None,
                    overwrite: bool, w: int, pw: int, timeout_s: float,
                    client: Callable[[PutResult], None] | None,
                    origin: tuple[str, int] | None) -> None:
        now = self.world.now
        rid = self._rid()
        content = dataclasses.replace(content, last_modified_us=int(now * 1e6))
        preflist = self.ring.ring.preference_list_for(key)
        if self.name not in preflist:  # every ring of a run is alike: forwarded to us
            raise AssertionError(f"{self.name} coordinates {key} outside {preflist}")
        fsm = PutFsm(rid, key, preflist, frozenset(preflist), w, pw, now + timeout_s)
        put = _Put(key, preflist, fsm, client, origin, needed=w)
        self._puts[rid] = put
        for node in preflist:
            if node != self.name and not self.ring.reachable(node):
                fsm.failed(node, "unreachable", now)
        if fsm.outcome is not None:  # W can never be met now: write nothing
            self._put_outcome(rid, put, fsm.outcome)
            return
        self.world.later(self, timeout_s, lambda: self._expire(rid))
        write = coordinated_write(context, self.name, content, overwrite=overwrite,
                                  limit=self.max_object_bytes)
        self.world.update(self, key.storage_key(), write,
                          lambda data: self._put_local_done(rid, data, None),
                          lambda exc: self._put_local_done(rid, None, exc))

    def _put_local_done(self, rid: int, data: bytes | None, error: Exception | None) -> None:
        put = self._puts.get(rid)
        if put is None:
            return
        now = self.world.now
        if error is not None or data is None:
            self._end_put(rid, put, error if isinstance(error, KvError) else Unavailable(
                f"the coordinator's own write failed: {error}", answered=0,
                needed=put.needed))
            return
        put.obj = version.decode(data)
        for node in put.preflist:
            if node == self.name:
                continue
            if not self.ring.reachable(node):
                outcome = put.fsm.failed(node, "unreachable", now)
                if outcome is not None:
                    self._put_outcome(rid, put, outcome)
                    return
            else:
                self._send(node, ReplicaPut(rid, put.key, data))
        outcome = put.fsm.acked(self.name, now)
        if outcome is not None:
            self._put_outcome(rid, put, outcome)

    def _replica_acked(self, sender: str, message: ReplicaPutAck) -> None:
        put = self._puts.get(message.request_id)
        if put is None:
            return
        now = self.world.now
        outcome = (put.fsm.acked(sender, now) if message.ok
                   else put.fsm.failed(sender, message.error or "refused", now))
        if outcome is not None:
            self._put_outcome(message.request_id, put, outcome)

    def _put_outcome(self, rid: int, put: _Put, outcome: PutDone | PutFailed) -> None:
        if isinstance(outcome, PutFailed):
            self._end_put(rid, put, put_unavailable(outcome))
            return
        assert put.obj is not None
        self._end_put(rid, put, put.obj)

    def _end_put(self, rid: int, put: _Put, result: version.Object | KvError) -> None:
        self._puts.pop(rid, None)
        if put.origin is not None:
            node, their_rid = put.origin
            if isinstance(result, KvError):
                self._send(node, ForwardReply(
                    their_rid, result.status, str(result),
                    answered=getattr(result, "answered", 0),
                    needed=getattr(result, "needed", 0)))
            else:
                self._send(node, ForwardReply(their_rid, 200, obj=version.encode(result)))
            return
        assert put.client is not None
        put.client(result if isinstance(result, KvError) else _put_reply(put.preflist, result))

    def _forward_replied(self, sender: str, message: ForwardReply) -> None:
        fwd = self._forwards.get(message.request_id)
        if fwd is None or sender != fwd.coordinator:
            return
        del self._forwards[message.request_id]
        result: PutResult
        if message.status == 200:
            try:
                obj = version.decode(message.obj)
            except ValueError:
                self.stats["kv_replica_messages_dropped"] += 1
                result = KvError(f"coordinator {sender} answered with a malformed object")
            else:
                result = _put_reply(self.ring.ring.preference_list_for(fwd.key), obj)
        else:
            result = forward_error(message)
        fwd.client(result)

    def _expire(self, rid: int) -> None:
        now = self.world.now
        if (put := self._puts.get(rid)) is not None:
            outcome = put.fsm.expire(now)
            if outcome is not None:
                self._put_outcome(rid, put, outcome)
            else:
                self._end_put(rid, put, Unavailable("the request timed out", answered=0,
                                                    needed=put.needed))
        elif self._expire_get(rid):
            return
        elif (fwd := self._forwards.pop(rid, None)) is not None:
            fwd.client(Unavailable(f"coordinator {fwd.coordinator} did not answer in time",
                                   answered=0, needed=0))

    # ------------------------------------------------------------ replica side

    def receive(self, sender: str, message: KvMessage) -> None:
        """A replica message from ``sender`` (as routed to the KvActor)."""
        match message:
            case ReplicaPut():
                try:
                    incoming = version.decode(message.obj)
                except ValueError:
                    self.stats["kv_replica_messages_dropped"] += 1
                    self._send(sender, ReplicaPutAck(message.request_id, False,
                                                     "malformed object"))
                    return
                rid = message.request_id
                self.world.update(
                    self, message.key.storage_key(), merge_into(incoming),
                    lambda _data: self._send(sender, ReplicaPutAck(rid, True)),
                    lambda exc: self._send(sender, ReplicaPutAck(rid, False,
                                                                 str(exc) or "error")))
            case ReplicaGet():
                rid = message.request_id
                self.world.read(self, message.key.storage_key(), lambda data: self._send(
                    sender, ReplicaGetReply(rid, data)))
            case ForwardPut():
                self._coordinate_forwarded(sender, message)
            case ReplicaPutAck():
                self._replica_acked(sender, message)
            case ReplicaGetReply():
                self._replica_replied(sender, message)
            case ForwardReply():
                self._forward_replied(sender, message)
            case _:  # key listings: not simulated
                self.stats["kv_replica_messages_dropped"] += 1


def _ignore(_result: object) -> None:
    return None


def _put_reply(preflist: tuple[str, ...], obj: version.Object) -> PutReply:
    return PutReply(node=preflist[0] if preflist else "",
                    context=version.encode_context(version.context_of(obj)))

