"""The KvActor's coordinating half: client puts, gets and key listings, their replica
round trips and their deadlines. Quorum counting is the state machines' (kv/requests.py);
this only does their I/O and turns outcomes into replies.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dynago.actors.kv_messages import (
    ClientPut,
    Expire,
    LocalDone,
    PutCallback,
)
from dynago.actors.kv_reads import (
    GetState,
    ListingState,
    ReadCoordinator,
    capped_quorum,
    merge_into,
)
from dynago.actors.kv_sloppy import keep_hint, sloppy_for
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import Origin, Update
from dynago.kv import version
from dynago.kv.fallback import Replica, healthy_status
from dynago.kv.messages import (
    ForwardPut,
    ForwardReply,
    KvMessage,
    ReplicaPut,
    ReplicaPutAck,
)
from dynago.kv.model import (
    BadRequest,
    Content,
    GetReply,
    KvError,
    ObjectKey,
    PutReply,
    Quorum,
    TooLarge,
    Unavailable,
)
from dynago.kv.replica import client_context as _context
from dynago.kv.replica import coordinated_write, put_unavailable
from dynago.kv.replica import forward_error as _error_of
from dynago.kv.requests import (
    PutDone,
    PutFailed,
    PutFsm,
    ResolvedQuorum,
    resolve_quorum,
)

if TYPE_CHECKING:
    from dynago.actors.timers import Timer

log = logging.getLogger(__name__)

FORWARD_MARGIN_S = 1.0
"""A forwarded put waits this much longer than the coordinator's own deadline, so that the
coordinator's 503 (with its count) arrives before the forwarder gives up on it."""


class PeerSender(Protocol):
    """Sends a KV message to a peer over its stream (its PeerActor); False when there is
    no peer of that name to send to."""

    def send(self, name: str, message: KvMessage) -> bool: ...


@dataclass
class _Put:
    op: str  # "put" or "delete"
    key: ObjectKey
    preflist: tuple[str, ...]
    fsm: PutFsm
    started: float
    return_body: bool
    client: PutCallback | None
    origin: tuple[str, int] | None  # forwarded to us: (node, its request id)
    needed: int = 0
    timer: Timer | None = None
    obj: version.Object | None = None
    replicas: tuple[Replica, ...] = ()  # the sloppy list: who gets a copy, as whom
    uncovered: tuple[str, ...] = ()  # unhealthy primaries no fallback stands in for


@dataclass
class _Forward:
    op: str
    key: ObjectKey
    coordinator: str
    started: float
    return_body: bool
    client: PutCallback
    timer: Timer | None = None


class Coordinator(ReadCoordinator):
    """Mixin of KvActor (which provides name, ring, storage, peers, clock, scheduler,
    kv_config, config, stats, max_object_bytes, actor_ref, new_request_id)."""

    name: str
    ring: Any
    trust_suspicion: bool
    storage: Any
    peers: PeerSender
    clock: Any
    scheduler: Any
    kv_config: Any
    config: Any
    stats: Any
    max_object_bytes: int
    actor_ref: Any
    new_request_id: Callable[[], int]

    def init_requests(self) -> None:
        """Set up the request tables (called from KvActor.__init__)."""
        self._puts: dict[int, _Put] = {}
        self._gets: dict[int, GetState] = {}
        self._forwards: dict[int, _Forward] = {}
        self._listings: dict[int, ListingState] = {}

    def in_flight(self) -> int:
        return len(self._puts) + len(self._gets) + len(self._forwards) + len(self._listings)

    def _timer(self, request_id: int, delay_s: float) -> Timer:
        ref = self.actor_ref
        timer: Timer = self.scheduler.call_later(
            delay_s, lambda: tell_quietly(ref, Expire(request_id)))
        return timer

    # ------------------------------------------------------------ puts

    def start_put(self, request: ClientPut) -> None:
        op = "delete" if request.content.deleted else "put"
        now = self.clock.monotonic()
        try:
            quorum = resolve_quorum(self.config.n_val, request.quorum)
            context = _context(request.context)
        except KvError as exc:
            self._finish_client(op, now, request.reply, exc)
            return
        preflist = self.ring.ring.preference_list_for(request.key)
        w = capped_quorum(request.quorum.w, quorum.w, preflist)
        quorum = ResolvedQuorum(quorum.r, w, quorum.pr, quorum.pw)
        if self.name in preflist:
            self._coordinate(op, request.key, request.content, context, request.overwrite,
                             quorum.w, quorum.pw, self.kv_config.request_timeout_s,
                             request.return_body, request.reply, None)
            return
        # Healthy primaries first (membership's suspicion, before any timeout), then any
        # reachable one: a suspect may still be alive.
        healthy = [n for n in preflist if healthy_status(
            self.ring.status(n), trust_suspicion=self.trust_suspicion)]
        for node in (*healthy, *(n for n in preflist if n not in healthy)):
            if not self.ring.reachable(node):
                continue
            rid = self.new_request_id()
            timeout_ms = int(self.kv_config.request_timeout_s * 1000)
            if self.peers.send(node, ForwardPut(rid, request.key, request.content,
                                                request.context, request.overwrite,
                                                quorum.w, quorum.pw, timeout_ms)):
                fwd = _Forward(op, request.key, node, now, request.return_body, request.reply)
                fwd.timer = self._timer(rid, self.kv_config.request_timeout_s
                                        + FORWARD_MARGIN_S)
                self._forwards[rid] = fwd
                self.stats.count("kv_forwarded")
                return
        self._finish_client(op, now, request.reply, Unavailable(
            f"no node of the key's preference list ({', '.join(preflist)}) is reachable",
            answered=0, needed=quorum.w))

    def coordinate_forwarded(self, sender: str, message: ForwardPut) -> None:
        n_val = self.config.n_val
        op = "delete" if message.content.deleted else "put"
        try:
            quorum = resolve_quorum(n_val, Quorum(w=message.w, pw=message.pw or None))
            context = _context(message.context)
        except KvError as exc:
            self.peers.send(sender, ForwardReply(message.request_id, exc.status, str(exc)))
            return
        timeout_s = min(max(message.timeout_ms, 1) / 1000, self.kv_config.request_timeout_s)
        self._coordinate(op, message.key, message.content, context, message.overwrite,
                         quorum.w, quorum.pw, timeout_s, False, None,
                         (sender, message.request_id))

    def _coordinate(self, op: str, key: ObjectKey, content: Content,
                    context: version.Clock | None, overwrite: bool, w: int, pw: int,
                    timeout_s: float, return_body: bool, client: PutCallback | None,
                    origin: tuple[str, int] | None) -> None:
        now = self.clock.monotonic()
        rid = self.new_request_id()
        # The coordinator's wall clock, for Last-Modified and /kvstore's sibling pick only.
        content = dataclasses.replace(content, last_modified_us=int(self.clock.wall() * 1e6))
        preflist = self.ring.ring.preference_list_for(key)
        if self.name not in preflist:  # forwarded by a node with another view of the ring
            preflist = (self.name, *preflist[:-1])
        # Sloppy quorum: a fallback stands in for each unhealthy primary; its ack counts
        # toward W, never toward PW (only the primaries are PutFsm's primaries).
        sloppy = sloppy_for(self.ring, self.name, key, preflist,
                            trust_suspicion=self.trust_suspicion)
        replicas = (*sloppy.nodes, *sloppy.uncovered)
        fsm = PutFsm(rid, key, replicas, sloppy.primaries | set(sloppy.uncovered), w, pw,
                     now + timeout_s)
        put = _Put(op, key, replicas, fsm, now, return_body, client, origin, needed=w,
                   replicas=sloppy.replicas, uncovered=sloppy.uncovered)
        self._puts[rid] = put
        for node in sloppy.uncovered:  # a suspect one is still tried (it may be alive)
            if not self.ring.reachable(node):
                fsm.failed(node, "unreachable", now)
        if fsm.outcome is not None:  # W can never be met now: write nothing
            self._put_outcome(rid, put, fsm.outcome)
            return
        put.timer = self._timer(rid, timeout_s)
        ref = self.actor_ref
        write = coordinated_write(context, self.name, content, overwrite=overwrite,
                                  limit=self.max_object_bytes)
        self.storage.tell(Update(
            key.storage_key(), write,
            reply=lambda data: tell_quietly(ref, LocalDone(rid, data)),
            on_error=lambda exc: tell_quietly(ref, LocalDone(rid, None, exc)),
            origin=Origin("coordinated", origin[0] if origin is not None else "")))

    def _put_local_done(self, rid: int, put: _Put, done: LocalDone) -> None:
        now = self.clock.monotonic()
        if done.error is not None or done.obj is None:
            error = done.error if isinstance(done.error, KvError) else Unavailable(
                f"the coordinator's own write failed: {done.error}", answered=0,
                needed=put.needed)
            self._end_put(rid, put, error)
            return
        put.obj = obj = version.decode(done.obj)
        # A primary no copy can reach now gets a hint kept here, caught up when it is back.
        for owner in put.uncovered:
            keep_hint(self.storage, self.stats, owner, put.key, merge_into(obj),
                      Origin("hint"))
        tried = (*put.replicas, *(Replica(n) for n in put.uncovered if self.ring.reachable(n)))
        for replica in tried:
            node = replica.node
            if node == self.name:
                continue
            if not self.peers.send(node, ReplicaPut(rid, put.key, done.obj,
                                                    hint_for=replica.hint_for)):
                if node not in put.uncovered:  # those have their hint already
                    keep_hint(self.storage, self.stats, replica.hint_for or node, put.key,
                              merge_into(obj), Origin("hint"))
                outcome = put.fsm.failed(node, "unreachable", now)
                if outcome is not None:
                    self._put_outcome(rid, put, outcome)
                    return
        outcome = put.fsm.acked(self.name, now)
        if outcome is not None:
            self._put_outcome(rid, put, outcome)

    def replica_acked(self, sender: str, message: ReplicaPutAck) -> None:
        put = self._puts.get(message.request_id)
        if put is None:
            return
        now = self.clock.monotonic()
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
        if put.timer is not None:
            put.timer.cancel()
        if put.origin is not None:
            node, their_rid = put.origin
            if isinstance(result, KvError):
                answered = getattr(result, "answered", 0)
                needed = getattr(result, "needed", 0)
                self.peers.send(node, ForwardReply(their_rid, result.status, str(result),
                                                   answered=answered, needed=needed))
            else:
                self.peers.send(node, ForwardReply(their_rid, 200, obj=version.encode(result)))
            self.stats.count("kv_coordinated_for_others")
            return
        assert put.client is not None
        reply: PutReply | KvError = (result if isinstance(result, KvError)
                                     else self._put_reply(put.key, result, put.return_body))
        self._finish_client(put.op, put.started, put.client, reply)

    def _put_reply(self, key: ObjectKey, obj: version.Object, return_body: bool) -> PutReply:
        return PutReply(node=self.first_node(key),
                        context=version.encode_context(version.context_of(obj)),
                        siblings=version.siblings(obj) if return_body else ())

    def forward_replied(self, sender: str, message: ForwardReply) -> None:
        fwd = self._forwards.pop(message.request_id, None)
        if fwd is None or sender != fwd.coordinator:
            if fwd is not None:
                self._forwards[message.request_id] = fwd
            return
        if fwd.timer is not None:
            fwd.timer.cancel()
        result: PutReply | KvError
        if message.status == 200:
            try:
                result = self._put_reply(fwd.key, version.decode(message.obj), fwd.return_body)
            except ValueError:
                self.stats.count("kv_replica_messages_dropped")
                result = KvError(f"coordinator {sender} answered with a malformed object")
        else:
            result = _error_of(message)
        self._finish_client(fwd.op, fwd.started, fwd.client, result)

    def first_node(self, key: ObjectKey) -> str:
        return str(self.ring.ring.preference_list_for(key)[0])

    # ------------------------------------------------------------ completions, deadlines

    def local_done(self, done: LocalDone) -> None:
        rid = done.request_id
        put = self._puts.get(rid)
        if put is not None:
            self._put_local_done(rid, put, done)
            return
        get = self._gets.get(rid)
        if get is not None:
            now = self.clock.monotonic()
            try:
                obj = version.decode(done.obj) if done.obj is not None else None
            except ValueError as exc:
                log.error("kv: stored object of %r does not decode: %s", get.key, exc)
                self._get_step(rid, get, get.fsm.failed(self.name, "unreadable", now))
                return
            self._get_step(rid, get, get.fsm.replied(self.name, obj, now))

    def expire(self, rid: int) -> None:
        now = self.clock.monotonic()
        if (put := self._puts.get(rid)) is not None:
            outcome = put.fsm.expire(now)
            if outcome is not None:
                self._put_outcome(rid, put, outcome)
            else:
                self._end_put(rid, put, Unavailable("the request timed out", answered=0,
                                                    needed=put.needed))
        elif (get := self._gets.get(rid)) is not None:
            got = get.fsm.expire(now)
            if got is not None and not get.answered:
                get.answered = True
                self._answer_get(get, got)
            self._end_get(rid, get)
        elif (fwd := self._forwards.pop(rid, None)) is not None:
            self._finish_client(fwd.op, fwd.started, fwd.client, Unavailable(
                f"coordinator {fwd.coordinator} did not answer in time", answered=0,
                needed=0))
        elif (listing := self._listings.pop(rid, None)) is not None:
            if listing.waiting - {self.name}:
                listing.client(Unavailable(
                    f"{len(listing.waiting)} node(s) did not list their keys in time: "
                    f"{', '.join(sorted(listing.waiting))}", answered=0,
                    needed=len(listing.waiting)))
            else:
                listing.client(sorted(listing.keys))

    def _finish_client(self, op: str, started: float, reply: Callable[[Any], None],
                       result: Any) -> None:
        seconds = self.clock.monotonic() - started
        self.stats.request(op, _outcome(result), seconds)
        try:
            reply(result)
        except Exception:  # a caller's callback must not kill the actor
            log.exception("kv: reply callback failed")


def _outcome(result: Any) -> str:
    if isinstance(result, GetReply):
        return "ok" if result.found else "not_found"
    if isinstance(result, Unavailable):
        return "unavailable"
    if isinstance(result, BadRequest):
        return "bad_request"
    if isinstance(result, TooLarge):
        return "too_large"
    if isinstance(result, KvError):
        return "error"
    return "ok"
