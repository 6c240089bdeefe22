"""The HandoffActor's planning half: which transfers to make.

* **A ring change** (RingChanged): ``handoff.plan`` of the old and new rings; transfers
  to a target that is no longer the partition's replica are cancelled. Until the store
  said whether it holds any client object, changes are added up and planned together (a
  node that holds none plans nothing: a joiner must not push back what it is handed).
* **A leave** (HandOffForLeave): the plan towards the ring without this node; the
  caller's reply is called once every leaving transfer is done.
* **At start** (Restored): every unfinished progress record resumes its transfer after
  its last acknowledged key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dynago.actors.kv_handoff_keep import Transfer
from dynago.actors.kv_handoff_messages import HandOffForLeave, Restored, RingChanged
from dynago.kv import handoff
from dynago.kv.ring import Ring, RingMember
from dynago.kv.stats import KvStats

log = logging.getLogger(__name__)


class Planner:
    """Mixin of HandoffActor (which provides these attributes and methods)."""

    name: str
    ring: Ring
    stats: KvStats
    _transfers: dict[tuple[int, str], Transfer]
    _has_objects: bool | None
    _held_change: RingChanged | None
    _leave_reply: Callable[[int], None] | None
    _add: Callable[..., None]
    _remove: Callable[[Transfer], None]
    _pump: Callable[[], None]
    _pending: Callable[[], int]
    _maybe_drop: Callable[[int], None]
    actor_ref: Any

    def _ring_changed(self, change: RingChanged) -> None:
        self.ring = change.new
        if self._leave_reply is not None:
            return  # leaving: the plan towards the ring without this node stands
        if self._has_objects is None:  # wait for the store's answer; changes add up
            held = self._held_change
            self._held_change = change if held is None else RingChanged(
                held.old, change.new, held.gone | change.gone)
            return
        for (p, target), t in list(self._transfers.items()):
            if not t.leaving and target not in change.new.preference_list(p):
                log.info("handoff: partition %d to %s cancelled (no longer a replica there)",
                         p, target)
                self._remove(t)
        try:
            plans = handoff.plan(change.old, change.new, self.name, change.gone)
        except ValueError as exc:
            log.warning("handoff: %s", exc)
            return
        if not self._has_objects:
            plans = ()
        for pp in plans:
            for target in pp.targets:
                self._add(pp.partition, target, pp.stays, leaving=False, acked=None)
            if not pp.targets and not pp.stays:
                self._maybe_drop(pp.partition)
        self._pump()

    def _leave(self, message: HandOffForLeave) -> None:
        others = [m for m in self.ring.members if m.name != self.name]
        self._leave_reply = message.reply
        if others and self._has_objects is not False:  # unknown: hand off to be safe
            without = Ring.build([RingMember(m.name, m.zone) for m in others],
                                 partitions=self.ring.partitions, n_val=self.ring.n_val)
            for pp in handoff.plan(self.ring, without, self.name):
                for target in pp.targets:
                    self._add(pp.partition, target, True, leaving=True, acked=None)
        log.info("handoff: leaving: %d transfers to make", self._pending())
        self._pump()
        self._leave_progress()

    def _leave_progress(self) -> None:
        if self._leave_reply is not None and not any(
                t.leaving for t in self._transfers.values()):
            reply = self._leave_reply
            reply(0)

    def _restore(self, restored: Restored) -> None:
        for key, value in restored.records:
            try:
                rec = handoff.decode_progress(key, value)
            except ValueError as exc:
                log.warning("handoff: ignoring a progress record: %s", exc)
                continue
            if not rec.done and 0 <= rec.partition < self.ring.partitions:
                self._add(rec.partition, rec.target, True if rec.leaving else rec.stays,
                          leaving=False, acked=rec.acked)
                self.stats.count("kv_handoff_transfers_resumed")
        self._pump()
