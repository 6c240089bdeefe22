"""ExplainActor: ``dynago kv explain`` on one node (dynago.kv.explain says what it shows).

Two sides, like the KvActor's:

* **asked** (a peer's KvExplain, routed here by class through ``KvService.peer_routes``):
  read the local copy of the key, its write history and the hints held for the owners
  named, from the StorageActor, and answer KvExplainReply on the same stream;
* **explaining** (``ExplainKey`` from the HTTP route): ask every node of the key's
  preference list — and, on a ring of at most ``ASK_ALL_MEMBERS`` members, every other
  member, which may hold a hint for it — gather their answers (its own store is read
  directly), and call back with ``dynago.kv.explain.explain_nodes``'s document once all
  answered or ``KvConfig.request_timeout_s`` passed (who did not answer says so).

A reply that matches no request, or comes from a node not asked, is dropped and counted;
nothing here blocks (the store answers through callbacks that ``tell`` this actor).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from dynago.actors.messages import PeerMessage
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import History, Read
from dynago.actors.timers import Scheduler, Timer
from dynago.kv.explain import (
    MAX_HINTS,
    MAX_HISTORY,
    MAX_OWNERS,
    HintCopy,
    HistoryEntry,
    KvExplain,
    KvExplainReply,
    NodeAnswer,
    explain_nodes,
    hint_key,
)
from dynago.kv.members import RingKeeper
from dynago.kv.model import ObjectKey
from dynago.storage.history import WriteRecord

log = logging.getLogger(__name__)

ASK_ALL_MEMBERS = 32
"""On a ring of at most this many members every member is asked (any may hold a hint
for the key); on a larger one, only the preference list."""

ExplainCallback = Callable[[dict[str, Any]], None]
"""Called on the ExplainActor's thread with the answer: must only hand it on."""


@dataclass(frozen=True, slots=True)
class ExplainKey:
    """Explain ``key``: ``reply(document)`` (see ``explain_nodes``, plus
    ``preference_list`` and ``asked``)."""

    key: ObjectKey
    reply: ExplainCallback


@dataclass(frozen=True, slots=True)
class GetExplainStats:
    """Ask: the actor's counters (``kv_explain_*``)."""


@dataclass(frozen=True, slots=True)
class _Gathered:
    """The local store's answer for request ``request_id`` of ``requester`` ("" this
    node's own explain)."""

    requester: str
    request_id: int
    reply: KvExplainReply


@dataclass(frozen=True, slots=True)
class _Expire:
    request_id: int


@dataclass
class _Explaining:
    key: ObjectKey
    preflist: tuple[str, ...]
    reply: ExplainCallback
    waiting: set[str]
    answers: dict[str, NodeAnswer] = field(default_factory=dict)
    timer: Timer | None = None


PeerSend = Callable[[str, Any], bool]
"""Send a message to a peer by name (False: it could not be queued)."""


def gather_local(storage: pykka.ActorRef[Any], key: ObjectKey, owners: tuple[str, ...],
                 done: Callable[[KvExplainReply], None], request_id: int) -> None:
    """Ask ``storage`` for ``key``'s copy, history and hints for ``owners``; ``done``
    gets the KvExplainReply (on the StorageActor's thread: it must only tell)."""
    storage_key = key.storage_key()
    found: dict[str, Any] = {"obj": None, "history": (), "hints": [], "error": ""}
    pending = [2 + len(owners)]  # every callback runs on the StorageActor's one thread

    def step() -> None:
        pending[0] -= 1
        if pending[0] == 0:
            done(KvExplainReply(request_id, found["obj"], found["history"],
                                tuple(found["hints"][:MAX_HINTS]), found["error"]))

    def failed(error: Exception) -> None:
        found["error"] = f"storage: {error}"[:200]
        step()

    def copy(data: bytes | None) -> None:
        found["obj"] = data
        step()

    def history(records: tuple[WriteRecord, ...]) -> None:
        found["history"] = tuple(HistoryEntry(r.at, r.how, r.peer, r.size)
                                 for r in records[-MAX_HISTORY:])
        step()

    def hint_of(owner: str) -> Callable[[bytes | None], None]:
        def hint(data: bytes | None) -> None:
            if data is not None:
                found["hints"].append(HintCopy(owner, data))
            step()
        return hint

    storage.tell(Read(storage_key, reply=copy, on_error=failed))
    storage.tell(History(storage_key, reply=history))
    for owner in owners:
        storage.tell(Read(hint_key(owner, key), reply=hint_of(owner), on_error=failed))


class ExplainActor(pykka.ThreadingActor):
    """Serves and drives ``kv explain`` for node ``name`` (see the module docstring)."""

    def __init__(self, *, name: str, storage: pykka.ActorRef[Any], ring: RingKeeper,
                 send: PeerSend, scheduler: Scheduler, timeout_s: float) -> None:
        super().__init__()
        self.name = name
        self.storage = storage
        self.ring = ring
        self.send = send
        self.scheduler = scheduler
        self.timeout_s = timeout_s
        self.stats: Counter[str] = Counter()
        self._next_id = 0
        self._explaining: dict[int, _Explaining] = {}

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        except Exception:  # a bug here must not stop the actor (pykka would)
            self.stats["kv_explain_internal_errors"] += 1
            log.exception("kv explain: handling %s failed", type(message).__name__)
            return None

    def _dispatch(self, message: Any) -> Any:
        match message:
            case ExplainKey():
                self._explain(message)
            case _Gathered():
                self._gathered(message)
            case _Expire():
                self._finish(message.request_id)
            case GetExplainStats():
                return dict(self.stats)
            case PeerMessage():
                try:
                    self._peer(message.sender, message.message)
                finally:
                    if message.done is not None:
                        message.done()
            case _:
                log.warning("kv explain: unexpected message %r", type(message).__name__)
        return None

    # ------------------------------------------------------------ asked side

    def _peer(self, sender: str, message: object) -> None:
        ref = self.actor_ref
        if isinstance(message, KvExplain):
            self.stats["kv_explain_served"] += 1
            owners = tuple(o for o in message.owners[:MAX_OWNERS] if o != self.name)
            gather_local(self.storage, message.key, owners,
                         lambda reply: tell_quietly(ref, _Gathered(sender, reply.request_id,
                                                                   reply)),
                         message.request_id)
        elif isinstance(message, KvExplainReply):
            self._answered(sender, message.request_id, message)
        else:
            self.stats["kv_explain_dropped"] += 1

    # ------------------------------------------------------------ explaining side

    def _explain(self, request: ExplainKey) -> None:
        self.stats["kv_explain_requests"] += 1
        self._next_id += 1
        rid = self._next_id
        ring = self.ring.ring
        preflist = tuple(ring.preference_list_for(request.key))
        asked = list(preflist)
        if len(ring.members) <= ASK_ALL_MEMBERS:
            asked += sorted(m.name for m in ring.members if m.name not in preflist)
        if self.name not in asked:
            asked.append(self.name)  # this node may hold a hint for it too
        state = _Explaining(request.key, preflist, request.reply, set(asked))
        self._explaining[rid] = state
        state.timer = self.scheduler.call_later(
            self.timeout_s, lambda: tell_quietly(self.actor_ref, _Expire(rid)))
        owners = preflist[:MAX_OWNERS]
        ref = self.actor_ref
        for node in asked:
            if node == self.name:
                gather_local(self.storage, request.key,
                             tuple(o for o in owners if o != self.name),
                             lambda reply: tell_quietly(ref, _Gathered("", rid, reply)), rid)
            elif not self.ring.reachable(node) or not self.send(
                    node, KvExplain(rid, request.key, owners)):
                state.waiting.discard(node)
                state.answers[node] = NodeAnswer(None, "unreachable")
        self._maybe_done(rid)

    def _gathered(self, message: _Gathered) -> None:
        if message.requester:
            self.send(message.requester, message.reply)
        else:
            self._answered(self.name, message.request_id, message.reply)

    def _answered(self, node: str, rid: int, reply: KvExplainReply) -> None:
        state = self._explaining.get(rid)
        if state is None or node not in state.waiting:
            self.stats["kv_explain_dropped"] += 1  # late, duplicated, or never asked
            return
        state.waiting.discard(node)
        state.answers[node] = NodeAnswer(reply)
        self._maybe_done(rid)

    def _maybe_done(self, rid: int) -> None:
        state = self._explaining.get(rid)
        if state is not None and not state.waiting:
            self._finish(rid)

    def _finish(self, rid: int) -> None:
        state = self._explaining.pop(rid, None)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
        if state.waiting:
            self.stats["kv_explain_timeouts"] += 1
        answers = dict(state.answers)
        for node in state.waiting:
            answers[node] = NodeAnswer(None, "no answer")
        # A node outside the preference list matters only if it holds something of the key.
        shown = {node: a for node, a in answers.items()
                 if node in state.preflist or _holds_something(a)}
        document = explain_nodes(state.preflist, shown)
        self.stats["kv_explain_malformed"] += document["malformed"]
        document["preference_list"] = list(state.preflist)
        document["asked"] = sorted(answers)
        try:
            state.reply(document)
        except Exception:
            log.exception("kv explain: the reply callback raised")


def _holds_something(answer: NodeAnswer) -> bool:
    reply = answer.reply
    return reply is not None and bool(reply.obj is not None or reply.hints or reply.history
                                      or reply.error)
