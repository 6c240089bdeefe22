"""Messages of the HandoffActor (dynago/actors/kv_handoff.py), its snapshot, and the
view of incoming handoffs that the KvActor reads (``InboundView``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dynago.kv.ring import Ring
from dynago.storage.engine import Write


@dataclass(frozen=True, slots=True)
class RingChanged:
    """The KvActor rebuilt the ring: ``old`` → ``new``; ``gone``: members that cannot
    send (failed)."""

    old: Ring
    new: Ring
    gone: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class HandOffForLeave:
    """Hand every partition this node holds to the ring without it; ``reply(pending)``
    once all is acknowledged (``pending`` 0), called on the actor's thread."""

    reply: Callable[[int], None] = field(compare=False)


@dataclass(frozen=True, slots=True)
class GetHandoffSnapshot:
    """Ask: a HandoffSnapshot."""


@dataclass(frozen=True, slots=True)
class TransferView:
    """One transfer now: ``keys_acked`` since it (re)started here, ``in_flight`` chunks,
    ``state`` "scanning", "waiting" (for acks), "retrying" or "done"."""

    partition: int
    target: str
    keys_acked: int
    in_flight: int
    state: str
    leaving: bool = False


@dataclass(frozen=True, slots=True)
class HandoffSnapshot:
    """The HandoffActor's counters and its transfers still pending."""

    counters: Mapping[str, int]
    transfers: tuple[TransferView, ...] = ()

    @property
    def pending(self) -> int:
        return sum(1 for t in self.transfers if t.state != "done")


class InboundView:
    """Partition → nodes still handing it to this one, written by the HandoffActor and
    read by the KvActor (``current`` is replaced whole, never changed in place)."""

    def __init__(self) -> None:
        self.current: Mapping[int, frozenset[str]] = {}

    def senders(self, partition: int) -> frozenset[str]:
        return self.current.get(partition, frozenset())

    def set(self, partition: int, senders: frozenset[str]) -> None:
        updated = dict(self.current)
        if senders:
            updated[partition] = senders
        else:
            updated.pop(partition, None)
        self.current = updated


@dataclass(frozen=True, slots=True)
class _Private:
    """Base of the actor's own completions and timers."""


@dataclass(frozen=True, slots=True)
class Page(_Private):
    """A scan page: ``keys`` and their ``values``, of scan generation ``gen``."""

    gen: int
    keys: tuple[bytes, ...]
    values: tuple[bytes, ...]
    full: bool


@dataclass(frozen=True, slots=True)
class Restored(_Private):
    """The progress records kept in the store, read back at start."""

    records: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class StoreHolds(_Private):
    """Whether the store holds any client object (checked once at start)."""

    objects: bool


@dataclass(frozen=True, slots=True)
class ChunkTimeout(_Private):
    seq: int


@dataclass(frozen=True, slots=True)
class Retry(_Private):
    """Resume the scan after a failure's pause."""


@dataclass(frozen=True, slots=True)
class Pace(_Private):
    """The rate limit lets the scan go on."""


@dataclass(frozen=True, slots=True)
class Merged(_Private):
    """A received chunk's merges are done here (``error``: one failed)."""

    sender: str
    seq: int
    partition: int
    last: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class Committed(_Private):
    """The StorageActor committed ``writes`` (for forwarding writes during handoff)."""

    writes: Sequence[Write]


@dataclass(frozen=True, slots=True)
class Dropped(_Private):
    """A drop scan page: the keys of ``partitions`` found in it were deleted."""

    partitions: frozenset[int]
    last_key: bytes | None
    deleted: int
    full: bool
