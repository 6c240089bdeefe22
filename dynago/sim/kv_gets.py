"""The reading half of a simulated KV node (as dynago.actors.kv_reads is the KvActor's):
client gets over GetFsm, and read repair once every replica answered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from dynago.kv import version
from dynago.kv.members import RingKeeper
from dynago.kv.messages import KvMessage, ReplicaGet, ReplicaGetReply, ReplicaPut
from dynago.kv.model import GetReply, KvError, ObjectKey, Quorum, Unavailable
from dynago.kv.replica import capped_quorum, merge_into
from dynago.kv.requests import GetDone, GetFailed, GetFsm, resolve_quorum
from dynago.sim.kv_io import GetResult, StoreOps


@dataclass
class _Get:
    key: ObjectKey
    preflist: tuple[str, ...]
    fsm: GetFsm
    include_deleted: bool
    client: Callable[[GetResult], None]
    answered: bool = False


class SimGets:
    """Mixin of SimKvNode (which provides the attributes below)."""

    name: str
    up: bool
    ring: RingKeeper
    world: StoreOps
    n_val: int
    timeout_s: float
    stats: Counter[str]
    _gets: dict[int, _Get]
    _rid: Callable[[], int]
    _send: Callable[[str, KvMessage], None]
    _expire: Callable[[int], None]

    def get(self, key: ObjectKey, quorum: Quorum, reply: Callable[[GetResult], None], *,
            include_deleted: bool = False) -> None:
        """A client get; ``reply`` gets the outcome."""
        now = self.world.now
        try:
            resolved = resolve_quorum(self.n_val, quorum)
        except KvError as exc:
            reply(exc)
            return
        rid = self._rid()
        preflist = self.ring.ring.preference_list_for(key)
        r = capped_quorum(quorum.r, resolved.r, preflist)
        fsm = GetFsm(rid, key, preflist, frozenset(preflist), r, resolved.pr,
                     now + self.timeout_s)
        get = _Get(key, preflist, fsm, include_deleted, reply)
        self._gets[rid] = get
        if fsm.outcome is not None:  # R can never be met
            self._get_step(rid, get, fsm.outcome)
            self._gets.pop(rid, None)
            return
        self.world.later(self, self.timeout_s, lambda: self._expire(rid))
        for node in preflist:
            if node == self.name:
                self.world.read(self, key.storage_key(),
                                lambda data: self._get_local_done(rid, data))
            elif not self.ring.reachable(node):
                self._get_step(rid, get, fsm.failed(node, "unreachable", now))
                if rid not in self._gets:
                    return
            else:
                self._send(node, ReplicaGet(rid, key))

    def _get_local_done(self, rid: int, data: bytes | None) -> None:
        get = self._gets.get(rid)
        if get is None:
            return
        now = self.world.now
        try:
            obj = version.decode(data) if data is not None else None
        except ValueError:
            self._get_step(rid, get, get.fsm.failed(self.name, "unreadable", now))
            return
        self._get_step(rid, get, get.fsm.replied(self.name, obj, now))

    def _replica_replied(self, sender: str, message: ReplicaGetReply) -> None:
        get = self._gets.get(message.request_id)
        if get is None:
            return
        now = self.world.now
        if message.error:
            self._get_step(message.request_id, get, get.fsm.failed(sender, message.error, now))
            return
        try:
            obj = version.decode(message.obj) if message.obj is not None else None
        except ValueError:
            self.stats["kv_replica_messages_dropped"] += 1
            self._get_step(message.request_id, get, get.fsm.failed(sender, "malformed", now))
            return
        self._get_step(message.request_id, get, get.fsm.replied(sender, obj, now))

    def _get_step(self, rid: int, get: _Get, outcome: GetDone | GetFailed | None) -> None:
        if outcome is not None and not get.answered:
            get.answered = True
            self._answer_get(get, outcome)
        if get.answered and get.fsm.complete:
            self._read_repair(get)
        if get.answered and (get.fsm.complete or isinstance(outcome, GetFailed)):
            self._gets.pop(rid, None)

    def _read_repair(self, get: _Get) -> None:
        behind = get.fsm.behind()
        if not behind:
            return
        merged = get.fsm.merged
        data = version.encode(merged)
        for node in behind:
            if node == self.name:
                self.world.update(self, get.key.storage_key(), merge_into(merged),
                                  _ignore, _ignore)
            else:
                self._send(node, ReplicaPut(self._rid(), get.key, data, "read repair"))
        self.stats["kv_read_repairs"] += len(behind)

    def _answer_get(self, get: _Get, outcome: GetDone | GetFailed) -> None:
        if isinstance(outcome, GetFailed):
            get.client(Unavailable(
                f"{outcome.answered} of the {outcome.needed} replica replies needed arrived "
                f"({outcome.reason})", answered=outcome.answered, needed=outcome.needed))
            return
        obj = outcome.obj
        get.client(GetReply(
            siblings=version.siblings(obj, include_deleted=get.include_deleted),
            context=version.encode_context(version.context_of(obj)),
            node=get.preflist[0] if get.preflist else self.name))

    def _expire_get(self, rid: int) -> bool:
        """The deadline of get ``rid``, if it is one: True if it was."""
        get = self._gets.get(rid)
        if get is None:
            return False
        got = get.fsm.expire(self.world.now)
        if got is not None and not get.answered:
            get.answered = True
            self._answer_get(get, got)
        self._gets.pop(rid, None)
        return True


def _ignore(_result: object) -> None:
    return None
