"""The KvActor's reading half: client gets (any node coordinates them) and key
listings over the cluster. Quorum counting is GetFsm's (kv/requests.py).

Who a get asks (``KvConfig.read_fanout``): ``"all"`` (the default, as Riak and Dynamo)
asks every replica of the key's sloppy list at once and read-repairs every one that
answered behind. ``"quorum"`` (as Cassandra's coordinator) asks only R of them, this
node first, and the others only if one of those fails or none answered within
``speculative_read_s`` (a speculative read); once the get has its outcome, replicas not
asked count as "not asked", read repair covers those that answered, and anti-entropy the
rest. With R + W > N every read still meets every acknowledged write; what "quorum"
gives up is the repair of the replicas it did not ask, for half the replica messages of
a get (N=3, R=2: 2 instead of 4). A get with PR > 0 asks every replica either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dynago.actors.kv_messages import (
    ClientGet,
    ClientListKeys,
    GetCallback,
    KeysCallback,
    LocalDone,
    LocalKeys,
    Speculate,
)
from dynago.actors.kv_sloppy import sloppy_for
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import ListKeys as StoreListKeys
from dynago.actors.storage_messages import Origin, Read, Update
from dynago.kv import version
from dynago.kv.fallback import hint_key
from dynago.kv.messages import KeyList, ListKeys, ReplicaGet, ReplicaGetReply, ReplicaPut
from dynago.kv.model import GetReply, KvError, ObjectKey, Unavailable
from dynago.kv.replica import capped_quorum as capped_quorum  # kv_coordinate imports it here
from dynago.kv.replica import merge_into as merge_into  # and kv.py this
from dynago.kv.requests import GetDone, GetFailed, GetFsm, resolve_quorum

if TYPE_CHECKING:
    from dynago.actors.timers import Timer


@dataclass
class GetState:
    key: ObjectKey
    preflist: tuple[str, ...]
    fsm: GetFsm
    started: float
    include_deleted: bool
    client: GetCallback
    answered: bool = False
    timer: Timer | None = None
    hint_for: dict[str, str] = field(default_factory=dict)  # fallback -> the primary
    held: list[str] = field(default_factory=list)
    """Replicas not asked yet (``read_fanout = "quorum"``)."""
    speculate: Timer | None = None


@dataclass
class ListingState:
    client: KeysCallback
    waiting: set[str]
    keys: set[str] = field(default_factory=set)
    timer: Timer | None = None


class ReadCoordinator:
    """Mixin of KvActor (through Coordinator): gets and listings."""

    name: str
    ring: Any
    trust_suspicion: bool
    storage: Any
    peers: Any
    clock: Any
    scheduler: Any
    kv_config: Any
    config: Any
    stats: Any
    actor_ref: Any
    new_request_id: Callable[[], int]
    _gets: dict[int, GetState]
    _listings: dict[int, ListingState]
    _timer: Callable[[int, float], Timer]
    _finish_client: Callable[..., None]

    # ------------------------------------------------------------ gets

    def start_get(self, request: ClientGet) -> None:
        now = self.clock.monotonic()
        try:
            quorum = resolve_quorum(self.config.n_val, request.quorum)
        except KvError as exc:
            self._finish_client("get", now, request.reply, exc)
            return
        rid = self.new_request_id()
        preflist = self.ring.ring.preference_list_for(request.key)
        timeout_s = self.kv_config.request_timeout_s
        r = capped_quorum(request.quorum.r, quorum.r, preflist)
        # The same sloppy list as puts: a fallback answers from its hint (toward R, never PR).
        sloppy = sloppy_for(self.ring, self.name, request.key, preflist,
                            trust_suspicion=self.trust_suspicion)
        asked = (*sloppy.nodes, *sloppy.uncovered)
        fsm = GetFsm(rid, request.key, asked, sloppy.primaries | set(sloppy.uncovered), r,
                     quorum.pr, now + timeout_s)
        get = GetState(request.key, preflist, fsm, now, request.include_deleted, request.reply,
                       hint_for={x.node: x.hint_for for x in sloppy.replicas if x.hint_for})
        self._gets[rid] = get
        for node in sloppy.uncovered:  # a suspect one is still asked (it may be alive)
            if not self.ring.reachable(node):
                fsm.failed(node, "unreachable", now)
        if fsm.outcome is not None:  # R can never be met
            self._get_step(rid, get, fsm.outcome)
            self._end_get(rid, get)
            return
        get.timer = self._timer(rid, timeout_s)
        targets = [*sloppy.nodes, *(n for n in sloppy.uncovered if self.ring.reachable(n))]
        if self.kv_config.read_fanout == "quorum" and quorum.pr == 0 and len(targets) > r:
            targets.sort(key=lambda n: n != self.name)  # this node first, then list order
            targets, get.held = targets[:r], targets[r:]
            ref = self.actor_ref
            get.speculate = self.scheduler.call_later(
                self.kv_config.speculative_read_s, lambda: tell_quietly(ref, Speculate(rid)))
        for node in targets:
            if not self._ask_replica(rid, get, node, now):
                return

    def _ask_replica(self, rid: int, get: GetState, node: str, now: float) -> bool:
        """Ask ``node`` for the key of get ``rid``; False if that ended the get."""
        owner = get.hint_for.get(node, "")
        if node == self.name:
            stored = hint_key(owner, get.key.storage_key()) if owner else get.key.storage_key()
            ref = self.actor_ref
            self.storage.tell(Read(stored,
                                   reply=lambda data: tell_quietly(ref, LocalDone(rid, data))))
        elif not self.peers.send(node, ReplicaGet(rid, get.key, owner)):
            self._get_step(rid, get, get.fsm.failed(node, "unreachable", now))
        return rid in self._gets

    def speculate(self, rid: int) -> None:
        """The speculative-read timer of get ``rid``: still waiting, ask the others."""
        get = self._gets.get(rid)
        if get is not None and get.held and not get.answered:
            self.stats.count("kv_speculative_reads")
            self._release(rid, get)

    def _release(self, rid: int, get: GetState) -> None:
        now = self.clock.monotonic()
        for node in _take_held(get):
            if not self._ask_replica(rid, get, node, now):
                return

    def replica_replied(self, sender: str, message: ReplicaGetReply) -> None:
        get = self._gets.get(message.request_id)
        if get is None:
            return
        now = self.clock.monotonic()
        if message.error:
            self._get_step(message.request_id, get, get.fsm.failed(sender, message.error, now))
            return
        try:
            obj = version.decode(message.obj) if message.obj is not None else None
        except ValueError:
            self.stats.count("kv_replica_messages_dropped")
            self._get_step(message.request_id, get, get.fsm.failed(sender, "malformed", now))
            return
        self._get_step(message.request_id, get, get.fsm.replied(sender, obj, now))

    def _get_step(self, rid: int, get: GetState, outcome: GetDone | GetFailed | None) -> None:
        if outcome is not None and not get.answered:
            get.answered = True
            self._answer_get(get, outcome)
        if get.held:
            if get.answered:
                # Settled without them: they were not asked, and the get completes with
                # those that were (read repair among them; anti-entropy for the rest).
                now = self.clock.monotonic()
                for node in _take_held(get):
                    get.fsm.failed(node, "not asked", now)
            elif get.fsm.failed_count:
                self._release(rid, get)  # one asked replica failed: ask the others now
                if rid not in self._gets:
                    return
        if get.answered and get.fsm.complete:
            self._read_repair(get)
        if get.answered and (get.fsm.complete or outcome is not None and
                             isinstance(outcome, GetFailed)):
            self._end_get(rid, get)

    def _read_repair(self, get: GetState) -> None:
        """Every replica answered: send the merged object to each whose copy lacked
        something of it (after the client had its answer, so off its critical path).
        The replicas merge it like any ReplicaPut; their acks match no request."""
        behind = get.fsm.behind()
        if not behind:
            return
        merged = get.fsm.merged
        data = version.encode(merged)
        for node in behind:
            owner = get.hint_for.get(node, "")  # a fallback: repair its hint
            if node == self.name:
                stored = hint_key(owner, get.key.storage_key()) if owner else \
                    get.key.storage_key()
                self.storage.tell(Update(stored, merge_into(merged),
                                         reply=_ignore, on_error=_ignore,
                                         origin=Origin("read repair")))
            else:
                self.peers.send(node, ReplicaPut(self.new_request_id(), get.key, data,
                                                 "read repair", hint_for=owner))
        self.stats.count("kv_read_repairs", len(behind))

    def _answer_get(self, get: GetState, outcome: GetDone | GetFailed) -> None:
        if isinstance(outcome, GetFailed):
            self._finish_client("get", get.started, get.client, Unavailable(
                f"{outcome.answered} of the {outcome.needed} replica replies needed arrived "
                f"({outcome.reason})", answered=outcome.answered, needed=outcome.needed))
            return
        obj = outcome.obj
        shown = version.siblings(obj, include_deleted=get.include_deleted)
        if len(shown) > 1:
            self.stats.count("kv_reads_with_siblings")
        reply = GetReply(siblings=shown,
                         context=version.encode_context(version.context_of(obj)),
                         node=get.preflist[0] if get.preflist else self.name)
        self._finish_client("get", get.started, get.client, reply)

    def _end_get(self, rid: int, get: GetState) -> None:
        self._gets.pop(rid, None)
        if get.timer is not None:
            get.timer.cancel()
        if get.speculate is not None:
            get.speculate.cancel()

    # ------------------------------------------------------------ key listings

    def start_listing(self, request: ClientListKeys) -> None:
        rid = self.new_request_id()
        waiting = {self.name}
        listing = ListingState(request.reply, waiting)
        for node in self.ring.ring.members:
            name = node.name
            if name != self.name and self.ring.reachable(name) and self.peers.send(
                    name, ListKeys(rid, request.bucket)):
                waiting.add(name)
        self._listings[rid] = listing
        listing.timer = self._timer(rid, self.kv_config.request_timeout_s)
        ref = self.actor_ref
        prefix = ObjectKey(request.bucket, "").storage_key()
        self.storage.tell(StoreListKeys(prefix, keep=live, reply=lambda keys: tell_quietly(
            ref, LocalKeys(rid, key_names(keys)))))

    def local_keys(self, message: LocalKeys) -> None:
        self._listed(message.request_id, self.name, message.keys)

    def peer_keys(self, sender: str, message: KeyList) -> None:
        self._listed(message.request_id, sender, message.keys)

    def _listed(self, rid: int, node: str, keys: tuple[str, ...]) -> None:
        listing = self._listings.get(rid)
        if listing is None or node not in listing.waiting:
            return
        listing.waiting.discard(node)
        listing.keys.update(keys)
        if not listing.waiting:
            del self._listings[rid]
            if listing.timer is not None:
                listing.timer.cancel()
            listing.client(sorted(listing.keys))



def _take_held(get: GetState) -> list[str]:
    """The replicas ``get`` has not asked yet, now none (its speculative timer cancelled)."""
    held, get.held = get.held, []
    if get.speculate is not None:
        get.speculate.cancel()
        get.speculate = None
    return held


def _ignore(_result: object) -> None:
    return None


def key_names(keys: list[bytes]) -> tuple[str, ...]:
    names = []
    for raw in keys:
        try:
            names.append(ObjectKey.from_storage_key(raw).key)
        except (ValueError, UnicodeDecodeError):
            continue
    return tuple(names)


def live(data: bytes) -> bool:
    """A stored object with a live version (listings leave tombstones out)."""
    try:
        return not version.is_deleted(version.decode(data))
    except ValueError:
        return False
