"""HandoffActor: ownership handoff on one node (rules: dynago.kv.handoff).

Sending. On every ring change (RingChanged, from the KvActor) it plans the transfers of
this node (``handoff.plan``) and streams each partition's objects to its targets in
chunks (HandoffChunk), at most ``KvConfig.handoff_in_flight`` unacknowledged per
transfer. The engine does not order keys by partition (they are ``bucket NUL key``), so
one scan in pages (ListKeys with ``after``) serves every transfer at once: each key goes
to the transfers of its partition that have not had it yet, node-local keys
(``NUL ...``) are skipped. After each acknowledgement the transfer's last acknowledged
key is written under ``NUL o NUL`` (``handoff.progress_key``): a timeout, a refused
chunk, a receiver restart or this node's restart resumes the transfer from there, never
from the start of the partition. A transfer whose target is not the partition's
replica any more is cancelled. Once every target of a partition acknowledged all of it,
a node that is no longer a replica deletes its copy, and a write committed to a key the
scan has passed is forwarded to the target (``kv_handoff_keep.CopyKeeper``).

Planning (``kv_handoff_plan.Planner``): which transfers a ring change, a leave or the
progress records found at start call for.

Receiving (``kv_handoff_recv.Receiver``): each object is merged into the stored one
(origin "handoff"; never an overwrite), and the chunk acknowledged after the commit.

Leaving (HandOffForLeave): the same, towards the ring without this node; the caller
waits, bounded by ``handoff_leave_timeout_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from dynago.actors.kv_handoff_keep import PAGE_KEYS, CopyKeeper, Transfer, ignore
from dynago.actors.kv_handoff_messages import (
    ChunkTimeout,
    Committed,
    Dropped,
    GetHandoffSnapshot,
    HandOffForLeave,
    InboundView,
    Merged,
    Pace,
    Page,
    Restored,
    Retry,
    RingChanged,
    StoreHolds,
)
from dynago.actors.kv_handoff_plan import Planner
from dynago.actors.kv_handoff_recv import Receiver
from dynago.actors.messages import PeerMessage
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import Delete, ListKeys, Update, WatchCommits
from dynago.actors.timers import Scheduler, Timer
from dynago.clock import Clock, SystemClock
from dynago.kv import handoff
from dynago.kv.config import KvConfig
from dynago.kv.handoff_messages import HandoffAck, HandoffChunk
from dynago.kv.model import ObjectKey
from dynago.kv.ring import Ring
from dynago.kv.stats import KvStats

if TYPE_CHECKING:
    from dynago.transport.base import WireMessage

log = logging.getLogger(__name__)

RETRY_S = 1.0
"""Pause before a failed transfer resumes (a receiver that restarts needs a moment)."""


class WireSender(Protocol):
    """Sends a message over a peer's stream; False when there is no peer to send to
    (routing.send_to_peer has this shape)."""

    def send(self, name: str, message: WireMessage) -> bool: ...


class HandoffActor(Receiver, Planner, CopyKeeper, pykka.ThreadingActor):
    """Hands this node's partitions to their new owners (see the module docstring)."""

    def __init__(self, *, name: str, kv_config: KvConfig, storage: pykka.ActorRef[Any],
                 peers: WireSender, scheduler: Scheduler, ring: Ring,
                 inbound: InboundView | None = None, clock: Clock | None = None) -> None:
        super().__init__()
        self.clock = clock or SystemClock()
        self._not_before = 0.0  # handoff_max_keys_s: no chunk before this (monotonic)
        self._pace: Timer | None = None
        self.name = name
        self.cfg = kv_config
        self.storage = storage
        self.peers = peers
        self.scheduler = scheduler
        self.ring = ring
        self.inbound = inbound or InboundView()
        self.stats = KvStats()
        self._transfers: dict[tuple[int, str], Transfer] = {}
        self._seq = 0
        self._chunks: dict[int, tuple[tuple[int, str], Timer | None]] = {}
        self._gen = 0
        self._scanning = False
        self._retry: Timer | None = None
        self._leave_reply: Callable[[int], None] | None = None
        self._dropping: set[int] = set()
        # Whether the store holds a client object (None: not known yet). A node that
        # holds none has nothing to hand off: a joiner whose ring grows from itself alone
        # as it learns the members must not push back what others hand it meanwhile.
        self._has_objects: bool | None = None
        self._held_change: RingChanged | None = None
        self._drop_busy = False

    def on_start(self) -> None:
        ref = self.actor_ref
        self.storage.tell(WatchCommits(lambda writes: tell_quietly(ref, Committed(writes))))
        values: list[bytes] = []

        def keep(value: bytes) -> bool:
            values.append(value)
            return True

        self.storage.tell(ListKeys(handoff.PROGRESS_PREFIX, keep=keep, reply=lambda keys: (
            tell_quietly(ref, Restored(tuple(zip(keys, values, strict=True)))))))
        # Node-local keys are NUL and a letter: every client object sorts after NUL 0xff.
        self.storage.tell(ListKeys(b"", after=b"\x00\xff", limit=1, reply=lambda keys: (
            tell_quietly(ref, StoreHolds(any(handoff.is_object_key(k) for k in keys))))))

    # ------------------------------------------------------------ dispatch

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        except Exception:  # a bug must not stop handoff for good (pykka stops the actor)
            self.stats.count("kv_handoff_internal_errors")
            log.exception("handoff: handling %s failed", type(message).__name__)
            return None

    def _dispatch(self, message: Any) -> Any:
        match message:
            case RingChanged():
                self._ring_changed(message)
            case StoreHolds():
                self._has_objects = self._has_objects or message.objects
                held, self._held_change = self._held_change, None
                if held is not None:
                    self._ring_changed(held)
            case Page():
                self._page(message)
            case PeerMessage():
                try:
                    self._peer(message.sender, message.message)
                finally:
                    if message.done is not None:
                        message.done()
            case Merged():
                self.merged(message)
            case ChunkTimeout():
                self._chunk_failed(message.seq, "no acknowledgement in time")
            case Pace():
                self._pace = None
                self._pump()
            case Retry():
                self._retry = None
                for t in self._transfers.values():
                    t.retrying = False
                self._pump()
            case Committed():
                self._forward(message)
            case Restored():
                self._restore(message)
            case Dropped():
                self._dropped(message)
            case HandOffForLeave():
                self._leave(message)
            case GetHandoffSnapshot():
                return self.snapshot()
            case _:
                log.warning("handoff: unexpected message %r", type(message).__name__)
        return None

    def _peer(self, sender: str, message: object) -> None:
        if isinstance(message, HandoffChunk):
            self.receive_chunk(sender, message)
        elif isinstance(message, HandoffAck):
            self._acked(sender, message)
        else:
            self.stats.count("kv_handoff_malformed")

    # ------------------------------------------------------------ transfers

    def _add(self, p: int, target: str, stays: bool, *, leaving: bool,
             acked: bytes | None) -> None:
        if target == self.name or (p, target) in self._transfers:
            return
        t = Transfer(p, target, stays, leaving, handoff.TransferProgress(acked=acked),
                      scanned=acked)
        self._transfers[(p, target)] = t
        self._rescan_from(acked)
        self.stats.count("kv_handoff_transfers_started")

    def _remove(self, t: Transfer) -> None:
        self._transfers.pop((t.partition, t.target), None)
        for seq in list(t.progress.pending()):
            self._forget_chunk(seq)
        self.storage.tell(Delete(handoff.progress_key(t.partition, t.target),
                                 reply=ignore, on_error=ignore))

    # ------------------------------------------------------------ the scan

    def _rescan_from(self, _point: bytes | None) -> None:
        """A transfer (re)starts at ``_point``: the page on its way, if any, was asked
        from later keys; the next one starts at the smallest ``scanned`` again."""
        self._gen += 1
        self._scanning = False

    def _pump(self) -> None:
        """Ask for the next scan page, unless one is on its way, nothing needs a scan, a
        transfer waits out a failure, or one has all its chunks in flight."""
        if self._scanning or self._retry is not None or self._pace is not None:
            return
        active = [t for t in self._transfers.values() if not t.progress.scan_done]
        if not active:
            return
        # The window is the node's, all transfers together: a receiver fed by several
        # senders, each with many partitions, must commit each chunk within the timeout.
        if sum(t.progress.in_flight for t in self._transfers.values()) >= (
                self.cfg.handoff_in_flight):
            return
        wait = self._not_before - self.clock.monotonic()
        if wait > 0:
            ref = self.actor_ref
            self._pace = self.scheduler.call_later(wait, lambda: tell_quietly(ref, Pace()))
            return
        self._scanning = True
        gen, ref = self._gen, self.actor_ref
        after = min((t.scanned for t in active), key=lambda k: b"" if k is None else k)
        limit = max(1, min(PAGE_KEYS, self.cfg.handoff_chunk_keys * self.cfg.handoff_in_flight))
        values: list[bytes] = []

        def keep(value: bytes) -> bool:
            values.append(value)
            return True

        def reply(keys: list[bytes]) -> None:
            tell_quietly(ref, Page(gen, tuple(keys), tuple(values), len(keys) >= limit))

        self.storage.tell(ListKeys(b"", after=after, limit=limit, keep=keep,
                                   reply=reply, on_error=lambda _e: reply([])))

    def _page(self, page: Page) -> None:
        if page.gen != self._gen:
            return  # the scan restarted from an earlier key meanwhile
        self._scanning = False
        by_partition: dict[int, list[Transfer]] = {}
        for t in self._transfers.values():
            if not t.progress.scan_done:
                by_partition.setdefault(t.partition, []).append(t)
        parts = self.ring.partitions
        for key, value in zip(page.keys, page.values, strict=True):
            if not handoff.is_object_key(key):
                continue
            wanting = by_partition.get(handoff.storage_partition(key, parts))
            if not wanting:
                continue
            try:
                okey = ObjectKey.from_storage_key(key)
            except (ValueError, UnicodeDecodeError):
                continue
            for t in wanting:
                if t.scanned is None or key > t.scanned:
                    t.buffer.append((okey, value))
                    t.buffer_bytes += len(value)
                    t.scanned = key
                    if (len(t.buffer) >= self.cfg.handoff_chunk_keys
                            or t.buffer_bytes >= self.cfg.handoff_chunk_bytes):
                        self._send(t, last=False)
            if page.gen != self._gen:  # a send failed and reset its transfer
                self._pump()
                return
        if page.keys:  # every scanning transfer has seen the page, its keys or not
            end = page.keys[-1]
            for ts in by_partition.values():
                for t in ts:
                    if t.scanned is None or t.scanned < end:
                        t.scanned = end
        if not page.full:  # the end of the key space: every scanning transfer is whole
            for ts in by_partition.values():
                for t in ts:
                    if (t.partition, t.target) in self._transfers:
                        t.progress.scan_done = True
                        self._send(t, last=True)
        self._pump()

    def _send(self, t: Transfer, *, last: bool) -> None:
        self._seq += 1
        seq = self._seq
        objects = tuple(t.buffer)
        size = t.buffer_bytes
        t.buffer, t.buffer_bytes = [], 0
        last_key = objects[-1][0].storage_key() if objects else None
        t.progress.sent(seq, last_key, len(objects), size)
        ref = self.actor_ref
        timer = self.scheduler.call_later(self.cfg.handoff_ack_timeout_s,
                                          lambda: tell_quietly(ref, ChunkTimeout(seq)))
        self._chunks[seq] = ((t.partition, t.target), timer)
        if self.cfg.handoff_max_keys_s > 0:
            self._not_before = (max(self._not_before, self.clock.monotonic())
                                + len(objects) / self.cfg.handoff_max_keys_s)
        if not self.peers.send(t.target, HandoffChunk(seq, t.partition, objects, last)):
            self._chunk_failed(seq, "no stream to the target")  # none yet: it joins
            return
        self.stats.count("kv_handoff_chunks_sent")
        self.stats.count("kv_handoff_keys_sent", len(objects))
        self.stats.count("kv_handoff_bytes_sent", size)

    # ------------------------------------------------------------ acknowledgements

    def _forget_chunk(self, seq: int) -> tuple[int, str] | None:
        entry = self._chunks.pop(seq, None)
        if entry is None:
            return None
        if entry[1] is not None:
            entry[1].cancel()
        return entry[0]

    def _acked(self, sender: str, ack: HandoffAck) -> None:
        key = self._chunks.get(ack.seq, (None, None))[0]
        if key is None or key[1] != sender:
            return  # a forwarded write's ack, or one of a chunk forgotten by a reset
        if not ack.ok:
            self._chunk_failed(ack.seq, ack.error or "refused")
            return
        self._forget_chunk(ack.seq)
        t = self._transfers[key]
        counted = t.progress.ack(ack.seq)
        if counted is None:
            return
        keys, size = counted
        t.keys_acked += keys
        self.stats.count("kv_handoff_keys_acked", keys)
        self.stats.count("kv_handoff_bytes_acked", size)
        if t.progress.complete:
            self._completed(t)
            return
        record = handoff.ProgressRecord(t.partition, t.target, t.progress.acked, t.stays,
                                        leaving=t.leaving)
        self.storage.tell(Update(handoff.progress_key(t.partition, t.target),
                                 _replace_with(handoff.encode_progress(record)),
                                 reply=ignore, on_error=ignore))
        self._pump()

    def _chunk_failed(self, seq: int, reason: str) -> None:
        key = self._forget_chunk(seq)
        t = self._transfers.get(key) if key is not None else None
        if t is None:
            return
        for other in list(t.progress.pending()):
            self._forget_chunk(other)
        lost = t.progress.reset()
        t.buffer, t.buffer_bytes, t.scanned = [], 0, t.progress.acked
        t.retrying = True
        self.stats.count("kv_handoff_retries")
        log.log(logging.INFO if lost > 1 or t.keys_acked else logging.DEBUG,
                "handoff: partition %d to %s: %s; resuming after %d acknowledged keys "
                "(%d chunks to send again)", t.partition, t.target, reason, t.keys_acked,
                lost)
        self._rescan_from(t.progress.acked)
        if self._retry is None:
            ref = self.actor_ref
            self._retry = self.scheduler.call_later(
                min(RETRY_S, self.cfg.handoff_ack_timeout_s),
                lambda: tell_quietly(ref, Retry()))

    def _completed(self, t: Transfer) -> None:
        self._remove(t)
        self.stats.count("kv_handoff_transfers_done")
        log.log(logging.INFO if t.keys_acked else logging.DEBUG,
                "handoff: partition %d handed to %s (%d keys)", t.partition, t.target,
                t.keys_acked)
        if not any(p == t.partition for p, _ in self._transfers):
            self.stats.count("kv_handoff_partitions_done")
            self._maybe_drop(t.partition)
        self._leave_progress()
        self._pump()


def _replace_with(value: bytes) -> Callable[[bytes | None], bytes | None]:
    def fn(_current: bytes | None) -> bytes:
        return value

    return fn
