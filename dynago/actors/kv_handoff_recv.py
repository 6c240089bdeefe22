"""The HandoffActor's receiving half: merge a HandoffChunk's objects into the local
store, acknowledge it once durable, and keep the InboundView (partition → nodes still
handing it here) that lets the KvActor ask those nodes too while a handoff is not done.

A chunk is checked whole before anything is written: its partition in range, every key
of that partition, every object decoding. One that breaks a rule is dropped, counted
(``kv_handoff_malformed``) and refused (HandoffAck ok=False), and nothing of it stored.
"""

from __future__ import annotations

import logging
from typing import Any

from dynago.actors.kv_handoff_messages import InboundView, Merged
from dynago.actors.kv_reads import merge_into
from dynago.actors.refs import tell_quietly
from dynago.actors.storage_messages import Origin, Update
from dynago.kv import handoff, version
from dynago.kv.handoff_messages import HandoffAck, HandoffChunk
from dynago.kv.model import ObjectKey
from dynago.kv.ring import Ring
from dynago.kv.stats import KvStats

log = logging.getLogger(__name__)


class Receiver:
    """Mixin of HandoffActor (which provides these attributes)."""

    name: str
    ring: Ring
    storage: Any
    peers: Any
    stats: KvStats
    inbound: InboundView
    actor_ref: Any

    def receive_chunk(self, sender: str, chunk: HandoffChunk) -> None:
        problem, decoded = self._check(chunk)
        if problem is not None:
            self.stats.count("kv_handoff_malformed")
            log.debug("handoff: dropped a chunk from %s: %s", sender, problem)
            self.peers.send(sender, HandoffAck(chunk.seq, chunk.partition, False, problem))
            return
        self.stats.count("kv_handoff_chunks_received")
        self.stats.count("kv_handoff_keys_received", len(decoded))
        self.stats.count("kv_handoff_bytes_received", sum(len(o) for _, o in chunk.objects))
        if not chunk.last:
            self.inbound.set(chunk.partition,
                             self.inbound.senders(chunk.partition) | {sender})
        if not decoded:
            self.merged(Merged(sender, chunk.seq, chunk.partition, chunk.last))
            return
        ref = self.actor_ref
        left = [len(decoded)]
        errors: list[str] = []

        # Replies run on the StorageActor's thread, in order: the last one tells us.
        def done(error: str = "") -> None:
            if error:
                errors.append(error)
            left[0] -= 1
            if left[0] == 0:
                tell_quietly(ref, Merged(sender, chunk.seq, chunk.partition, chunk.last,
                                         errors[0] if errors else ""))

        origin = Origin("handoff", sender)
        for key, obj in decoded:
            self.storage.tell(Update(key.storage_key(), merge_into(obj),
                                     reply=lambda _v: done(),
                                     on_error=lambda e: done(str(e) or "error"),
                                     origin=origin))

    def _check(self, chunk: HandoffChunk) -> tuple[str | None,
                                                   list[tuple[ObjectKey, version.Object]]]:
        """(None, the decoded objects), or (what is wrong with the chunk, [])."""
        parts = self.ring.partitions
        if not 0 <= chunk.partition < parts:
            return f"partition {chunk.partition} is outside 0..{parts - 1}", []
        decoded = []
        for key, obj in chunk.objects:
            if handoff.storage_partition(key.storage_key(), parts) != chunk.partition:
                return f"key {key.bucket}/{key.key} is not of partition {chunk.partition}", []
            try:
                decoded.append((key, version.decode(obj)))
            except ValueError as exc:
                return f"object {key.bucket}/{key.key} does not decode: {exc}", []
        return None, decoded

    def merged(self, done: Merged) -> None:
        """The chunk's objects are durable here (or one failed): acknowledge it."""
        if done.last and not done.error:
            self.inbound.set(done.partition,
                             self.inbound.senders(done.partition) - {done.sender})
        self.peers.send(done.sender, HandoffAck(done.seq, done.partition, not done.error,
                                                done.error))
