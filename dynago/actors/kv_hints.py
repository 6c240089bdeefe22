"""HintActor: keeps count of the hints this node holds and hands them back to their
owners once they are alive again. Rules: dynago.kv.fallback (the sloppy list, hint keys,
the token bucket).

* **What is held**: it watches the StorageActor's commits (WatchCommits) for keys under
  ``NUL h NUL`` and lists them once at start (ListKeys, paged), so it knows every hint
  the engine holds, ordered per owner by when it first saw it. A set of keys: a commit
  seen both ways (listener and listing) counts once.
* **Hand-back**: for an owner membership holds alive (a MemberChanged at once, else the
  periodic HintTick), read the hint, send it as ReplicaPut(origin="hint handed back") and
  wait for the owner's ack (it arrives at the KvActor as a ReplicaPutAck with a request
  id from HINT_REQUEST_BASE up, which hands it on here). Then DeleteIf: the hint goes
  only if it still holds exactly the bytes handed back — a hint rewritten meanwhile stays
  and is handed back again. At most ``hint_handoff_per_s`` starts per second and
  ``hint_handoff_in_flight`` waiting at once.
* **Redirect**: an owner that is out of the ring (it left, or failed past the grace time)
  will not come back for its hints: each goes instead to the key's preference list in the
  current ring (dynago.kv.fallback.hint_targets; origin "hint redirected"), merged into
  this node's own copy where it is one of them, and is deleted only once every one of
  them acknowledged it durably. It waits while any of them is not alive.
* **Failure**: a refusal, no stream, or no ack within ``request_timeout_s`` keeps the hint
  where it is in its owner's queue and rests that owner for ``hint_retry_s``; the next
  attempt goes on from there (hints already handed back are gone).

Nothing here blocks: the store and peers answer through callbacks that ``tell`` this
actor. A message that breaks the rules (an ack from the wrong node) is dropped and
counted; an exception in a handler is logged and counted, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from dynago.actors.kv_hints_messages import (
    GetHintStats,
    HandBack,
    HandBackExpired,
    HintCounts,
    HintDeleted,
    HintRead,
    HintsCommitted,
    HintsListed,
    HintTick,
    RedirectStored,
)
from dynago.actors.kv_messages import MemberChanged, MembersSeen
from dynago.actors.messages import PeerMessage
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import (
    DeleteIf,
    ListKeys,
    Origin,
    Read,
    Update,
    WatchCommits,
)
from dynago.actors.timers import Scheduler
from dynago.clock import Clock
from dynago.kv import version
from dynago.kv.config import KvConfig
from dynago.kv.fallback import (
    HINT_PREFIX,
    HINT_REQUEST_BASE,
    TokenBucket,
    hint_targets,
    parse_hint_key,
)
from dynago.kv.members import RingKeeper
from dynago.kv.messages import ReplicaPut, ReplicaPutAck
from dynago.kv.model import ObjectKey
from dynago.kv.replica import merge_into
from dynago.kv.ring import Ring, partition_of
from dynago.storage.engine import Write

log = logging.getLogger(__name__)

LIST_PAGE = 1000
"""Hint keys listed per page at start."""

HANDED_BACK = "hint handed back"
"""The origin of a hand-back, in the owner's write history."""

REDIRECTED = "hint redirected"
"""The origin of a hint sent to a key's new owners because its own owner is gone."""

__all__ = ["GetHintStats", "HintActor"]


class HintActor(pykka.ThreadingActor):
    """Hands this node's hints back (``peers``: a PeerSender, ``storage``: the
    StorageActor, ``ring``: the KvActor's current ring, read for redirects; without it a
    hint only ever goes to its owner)."""

    def __init__(self, *, name: str, kv_config: KvConfig, storage: pykka.ActorRef[Any],
                 peers: Any, clock: Clock, scheduler: Scheduler, partitions: int,
                 n_val: int, ring: Callable[[], Ring] | None = None) -> None:
        super().__init__()
        self.name = name
        self.ring = ring
        self.kv_config = kv_config
        self.storage = storage
        self.peers = peers
        self.clock = clock
        self.scheduler = scheduler
        # Only for member statuses by membership's precedence (never rebuilt into a ring).
        self.members = RingKeeper(name, partitions=partitions, n_val=n_val,
                                  grace_s=kv_config.ring_grace_s)
        self.bucket = TokenBucket(kv_config.hint_handoff_per_s,
                                  max(1.0, kv_config.hint_handoff_per_s), clock.monotonic())
        self.counts = HintCounts()
        self._flight: dict[int, HandBack] = {}
        self._busy: set[bytes] = set()
        self._rest_until: dict[str, float] = {}
        self._next_id = HINT_REQUEST_BASE
        self._wake: Any = None
        self._wake_due = 0.0

    # ------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        ref = self.actor_ref

        def listener(writes: Sequence[Write]) -> None:  # on the StorageActor's thread
            hints = tuple(w for w in writes if w[0].startswith(HINT_PREFIX))
            if hints:
                tell_quietly(ref, HintsCommitted(hints))

        # Watch first, then list: a hint committed in between is seen at least once.
        self.storage.tell(WatchCommits(listener))
        self._list(None)
        self._tick_later(self.kv_config.hint_check_interval_s)

    def on_stop(self) -> None:
        for timer in (self._wake, *(h.timer for h in self._flight.values())):
            if timer is not None:
                timer.cancel()

    def _list(self, after: bytes | None) -> None:
        ref = self.actor_ref
        self.storage.tell(ListKeys(HINT_PREFIX, limit=LIST_PAGE, after=after, reply=lambda keys:
                                   tell_quietly(ref, HintsListed(tuple(keys),
                                                                 len(keys) >= LIST_PAGE))))

    # ------------------------------------------------------------ dispatch

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        except Exception:
            self.counts.errors += 1
            log.exception("hints: handling %s failed", type(message).__name__)
            return None

    def _dispatch(self, message: Any) -> Any:
        match message:
            case HintsCommitted():
                for key, value in message.writes:
                    if value is None:
                        self._forget(key)
                    else:
                        self.counts.stored += 1
                        self._note(key)
                self._pump()
            case HintsListed():
                for key in message.keys:
                    self._note(key)
                if message.full and message.keys:
                    self._list(message.keys[-1])
                self._pump()
            case HintRead():
                self._read(message)
            case PeerMessage(message=ReplicaPutAck() as ack):
                self._acked(message.sender, ack)
            case HintDeleted():
                self._deleted(message)
            case RedirectStored():
                self._stored_here(message)
            case HandBackExpired():
                if message.request_id in self._flight:
                    self._failed(message.request_id, "no acknowledgement in time")
            case HintTick():
                self._wake = None
                self._pump()
                self._tick_later(self.kv_config.hint_check_interval_s)
            case MembersSeen():
                self.members.seen(((m.name, m.incarnation, m.status, m.tags)
                                   for m in message.members), self.clock.monotonic())
                self._pump()
            case MemberChanged():
                self.members.changed(message.event, self.clock.monotonic())
                self._pump()
            case GetHintStats():
                return self.stats()
            case _:
                self.counts.dropped += 1
                log.warning("hints: unexpected message %r", type(message).__name__)
        return None

    def stats(self) -> dict[str, int]:
        """The counters of GetHintStats."""
        c = self.counts
        return {"kv_hints_held": sum(len(keys) for keys in c.by_owner.values()),
                "kv_hints_stored": c.stored, "kv_hints_handed_back": c.handed_back,
                "kv_hint_handback_failures": c.failures,
                "kv_hints_rewritten_during_handback": c.rewritten,
                "kv_hints_redirected": c.redirected,
                "kv_hint_acks_dropped": c.dropped, "kv_hint_internal_errors": c.errors}

    # ------------------------------------------------------------ what is held

    def _note(self, key: bytes) -> None:
        try:
            owner, _ = parse_hint_key(key)
        except (ValueError, UnicodeDecodeError):
            log.warning("hints: ignoring a malformed hint key %r", key[:80])
            return
        self.counts.by_owner.setdefault(owner, {})[key] = None

    def _forget(self, key: bytes) -> None:
        try:
            owner, _ = parse_hint_key(key)
        except (ValueError, UnicodeDecodeError):
            return
        keys = self.counts.by_owner.get(owner)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self.counts.by_owner[owner]

    # ------------------------------------------------------------ hand-back

    def _pump(self) -> None:
        """Start hand-backs while the rate and the in-flight bound allow."""
        now = self.clock.monotonic()
        limit = self.kv_config.hint_handoff_in_flight
        ring = self.ring() if self.ring is not None else None
        in_ring = {m.name for m in ring.members} if ring is not None else set()
        for owner in sorted(self.counts.by_owner):
            if len(self._flight) >= limit:
                return
            status = self.members.status(owner)
            gone = (ring is not None and owner not in in_ring
                    and status not in ("alive", "suspect"))
            if (status != "alive" and not gone) or owner == self.name:
                continue
            if self._rest_until.get(owner, 0.0) > now:
                continue
            for key in self.counts.by_owner[owner]:
                if len(self._flight) >= limit:
                    return
                if key in self._busy:
                    continue
                targets: tuple[str, ...] = (owner,)
                if gone:
                    assert ring is not None
                    targets = self._new_owners(ring, key)
                    if not targets:
                        continue
                if not self.bucket.take(now):
                    self._tick_later(self.bucket.wait_s(now))
                    return
                self._start(owner, key, targets, redirected=gone)

    def _new_owners(self, ring: Ring, key: bytes) -> tuple[str, ...]:
        """The nodes a gone owner's hint at ``key`` goes to, or () while any of them is
        not alive (or the key is malformed)."""
        try:
            _, storage_key = parse_hint_key(key)
            partition = partition_of(ObjectKey.from_storage_key(storage_key), ring.partitions)
        except (ValueError, UnicodeDecodeError):
            return ()
        targets = hint_targets("", ring, partition)
        if all(t == self.name or self.members.status(t) == "alive" for t in targets):
            return targets
        return ()

    def _start(self, owner: str, key: bytes, targets: tuple[str, ...], *,
               redirected: bool) -> None:
        rid = self._next_id
        self._next_id += 1
        ref = self.actor_ref
        hand = HandBack(owner, key, waiting=set(targets), redirected=redirected)
        hand.timer = self.scheduler.call_later(
            self.kv_config.request_timeout_s, lambda: tell_quietly(ref, HandBackExpired(rid)))
        self._flight[rid] = hand
        self._busy.add(key)
        self.storage.tell(Read(key, reply=lambda data: tell_quietly(ref, HintRead(rid, data)),
                               on_error=lambda _e: tell_quietly(ref, HintRead(rid, None))))

    def _read(self, message: HintRead) -> None:
        hand = self._flight.get(message.request_id)
        if hand is None:
            return
        if message.data is None:  # deleted meanwhile: nothing to hand back
            self._end(message.request_id)
            return
        try:
            _, storage_key = parse_hint_key(hand.key)
            key = ObjectKey.from_storage_key(storage_key)
            version.decode(message.data)
        except (ValueError, UnicodeDecodeError) as exc:
            log.error("hints: the hint %r does not decode: %s", hand.key[:80], exc)
            self._failed(message.request_id, "undecodable hint")
            return
        hand.data = message.data
        rid, ref = message.request_id, self.actor_ref
        origin = REDIRECTED if hand.redirected else HANDED_BACK
        for node in sorted(hand.waiting):
            if node == self.name:  # one of the key's owners now: merge into its own copy
                self.storage.tell(Update(
                    key.storage_key(), merge_into(version.decode(message.data)),
                    reply=lambda _v: tell_quietly(ref, RedirectStored(rid)),
                    on_error=lambda e: tell_quietly(ref, RedirectStored(rid, str(e) or "error")),
                    origin=Origin(REDIRECTED, hand.owner)))
            elif not self.peers.send(node, ReplicaPut(rid, key, message.data, origin)):
                self._failed(rid, f"no stream to {node}")
                return

    def _acked(self, sender: str, ack: ReplicaPutAck) -> None:
        hand = self._flight.get(ack.request_id)
        if hand is None or sender not in hand.waiting or hand.data is None:
            self.counts.dropped += 1  # late (expired), or from a node we did not ask
            return
        if not ack.ok:
            self._failed(ack.request_id, ack.error or "refused")
            return
        self._done_at(ack.request_id, hand, sender)

    def _stored_here(self, message: RedirectStored) -> None:
        hand = self._flight.get(message.request_id)
        if hand is None or self.name not in hand.waiting:
            return
        if message.error:
            self._failed(message.request_id, message.error)
            return
        self._done_at(message.request_id, hand, self.name)

    def _done_at(self, rid: int, hand: HandBack, node: str) -> None:
        """``node`` holds hand-back ``rid`` durably; once every target does, the hint goes
        (only if it still holds exactly the bytes handed back)."""
        hand.waiting.discard(node)
        if hand.waiting or hand.data is None:
            return
        ref = self.actor_ref
        self.storage.tell(DeleteIf(
            hand.key, hand.data,
            reply=lambda deleted: tell_quietly(ref, HintDeleted(rid, deleted)),
            on_error=lambda e: tell_quietly(ref, HintDeleted(rid, False, str(e) or "error")),
            origin=Origin(REDIRECTED if hand.redirected else HANDED_BACK, hand.owner)))

    def _deleted(self, message: HintDeleted) -> None:
        hand = self._flight.get(message.request_id)
        if hand is None:
            return
        if message.error:
            self._failed(message.request_id, message.error)
            return
        if message.deleted:
            self.counts.handed_back += 1
            self.counts.redirected += hand.redirected
        else:
            # Rewritten while handed back: it stays, and goes again with what it holds now.
            self.counts.rewritten += 1
        self._end(message.request_id)
        self._pump()

    def _failed(self, rid: int, why: str) -> None:
        hand = self._end(rid)
        if hand is None:
            return
        self.counts.failures += 1
        log.info("hints: handing a hint back to %s failed (%s); again in %.1f s",
                 hand.owner, why, self.kv_config.hint_retry_s)
        self._rest_until[hand.owner] = self.clock.monotonic() + self.kv_config.hint_retry_s
        self._tick_later(self.kv_config.hint_retry_s)

    def _end(self, rid: int) -> HandBack | None:
        hand = self._flight.pop(rid, None)
        if hand is not None:
            self._busy.discard(hand.key)
            if hand.timer is not None:
                hand.timer.cancel()
        return hand

    def _tick_later(self, delay_s: float) -> None:
        """One pending wake-up at a time; a sooner one replaces a later one."""
        due = self.clock.monotonic() + delay_s
        if self._wake is not None:
            if self._wake_due <= due:
                return
            self._wake.cancel()
        ref = self.actor_ref
        self._wake_due = due
        self._wake = self.scheduler.call_later(max(delay_s, 1e-3),
                                               lambda: tell_quietly(ref, HintTick()))
