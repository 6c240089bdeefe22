"""The KvActor's sloppy-quorum helpers: the sloppy preference list of a key as this node
sees the cluster's health, and the hints it keeps itself. Rules: dynago.kv.fallback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dynago.actors.storage_messages import Origin, Update
from dynago.kv.fallback import SloppyList, for_partition, healthy_status, hint_key
from dynago.kv.members import RingKeeper
from dynago.kv.model import ObjectKey
from dynago.kv.ring import partition_of

log = logging.getLogger(__name__)


def sloppy_for(keeper: RingKeeper, self_name: str, key: ObjectKey,
               primaries: tuple[str, ...], *, trust_suspicion: bool = True) -> SloppyList:
    """The sloppy list of ``key`` whose preference list is ``primaries``: this node is
    always healthy, others when membership holds them alive (or suspect, when
    ``trust_suspicion`` is off: this node's own local health is degraded)."""
    ring = keeper.ring

    def healthy(name: str) -> bool:
        return name == self_name or healthy_status(keeper.status(name),
                                                   trust_suspicion=trust_suspicion)

    return for_partition(ring, partition_of(key, ring.partitions), healthy, primaries)


def keep_hint(storage: Any, stats: Any, owner: str, key: ObjectKey,
              merge: Callable[[bytes | None], bytes | None], origin: Origin) -> None:
    """Apply ``merge`` (kv_reads.merge_into of the object) to this node's hint for
    ``owner`` (durably; fire and forget: it counts toward no quorum, it only catches
    ``owner`` up later)."""
    try:
        engine_key = hint_key(owner, key.storage_key())
    except ValueError as exc:
        log.warning("kv: no hint for %r: %s", owner, exc)
        return

    def failed(exc: Exception) -> None:
        log.warning("kv: keeping a hint of %r for %s failed: %s", key, owner, exc)

    storage.tell(Update(engine_key, merge, reply=_ignore, on_error=failed,
                        origin=origin))
    stats.count("kv_hints_kept_by_coordinator")


def _ignore(_value: object) -> None:
    return None
