"""Ownership handoff: which copies a node must push when the ring changes, and how far
each push got. Pure: no I/O, no clock.

**The plan** (``plan``). For every partition ``p`` this node held (it was in ``p``'s old
preference list), compare the old and the new list:

* *entrants* are the nodes of the new list that were not in the old one (they hold
  nothing of ``p`` yet); *exits* are the old list's nodes that are not in the new one;
  *stayers* are in both.
* An exit that can still send (not in ``gone``: it left, or it is this node) is paired
  with one entrant, in list order (Riak's ownership handoff: the old owner's copy moves
  to the new owner). Pairing keeps the number of copies of every key exactly as it was:
  an acknowledged write that was on W of the old N is on W of the new N once the
  handoff is done, so R + W > N still holds, and each key crosses the network once.
* An entrant left without a live exit whose copy was lost (a member failed past the
  grace time, in ``gone``) is rebuilt by **every** stayer: the lost copy's content is
  unknown, and the union of the survivors is the best rebuild of it (a write
  acknowledged by the lost node and one stayer is on that stayer only). When no copy
  was lost (the ring grew from fewer than N members) the first live stayer suffices;
  with no live stayer, the first live exit feeds them too.
* An exit left without an entrant (the ring shrank below N members) pushes to every
  node of the new list, so no write acknowledged by it alone is dropped.

This node stays a replica of ``p`` iff it is in the new list; if it is not, it drops its
copy once every target acknowledged all of it (``PartitionPlan.stays``).

**Progress** (``TransferProgress``): a transfer streams the partition's storage keys in
byte order, in numbered chunks; ``acked`` is the last key of the longest run of chunks
acknowledged without a gap (acks of a cut stream may be missing in the middle), so a
resume from ``acked`` never skips a key and re-sends only chunks not acknowledged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dynago.kv.ring import Ring

PROGRESS_PREFIX = b"\x00o\x00"
"""Engine prefix of this node's handoff progress records (node-local, never handed off)."""

LOCAL_PREFIX = b"\x00"
"""Every node-local record starts with this (client objects are ``bucket NUL key``)."""


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """What this node must do for ``partition``: push its copy to each of ``targets``;
    ``stays``: it remains a replica (else it drops its copy once all targets have it)."""

    partition: int
    targets: tuple[str, ...]
    stays: bool


def plan(old: Ring, new: Ring, self_name: str,
         gone: Iterable[str] = ()) -> tuple[PartitionPlan, ...]:
    """The pushes ``self_name`` must make when the ring goes from ``old`` to ``new``
    (see the module docstring), by partition, ascending; partitions with nothing to do
    are left out. ``gone``: names that cannot send (failed); this node never is.

    Raises ValueError if the rings cut the key space differently.
    """
    if old.partitions != new.partitions:
        raise ValueError(f"rings of {old.partitions} and {new.partitions} partitions "
                         f"cannot be compared")
    unable = frozenset(gone) - {self_name}
    out: list[PartitionPlan] = []
    for p in range(old.partitions):
        before = old.preference_list(p)
        if self_name not in before:
            continue
        after = new.preference_list(p)
        targets = _targets(before, after, self_name, unable)
        stays = self_name in after
        if targets or not stays:
            out.append(PartitionPlan(p, targets, stays))
    return tuple(out)


def _targets(before: tuple[str, ...], after: tuple[str, ...], me: str,
             unable: frozenset[str]) -> tuple[str, ...]:
    entrants = [n for n in after if n not in before]
    exits = [n for n in before if n not in after and n not in unable]
    rest = entrants[len(exits):]  # entrants no live exit is paired with
    live_stayers = [n for n in after if n in before and n not in unable]
    if me in exits:
        i = exits.index(me)
        if i >= len(entrants):
            return after  # an unpaired exit: to every node of the new list
        if i == 0 and rest and not live_stayers:
            return (entrants[i], *rest)  # nobody else holds a copy to feed them
        return (entrants[i],)
    if me not in after or not rest:
        return ()
    # A stayer, and entrants no live exit feeds. A copy was lost (an exit that cannot
    # send): every stayer rebuilds them. None was (the ring grew from fewer than N
    # members): every stayer holds a whole copy, so the first live one suffices.
    lost = any(n in unable for n in before if n not in after)
    if lost or live_stayers[0] == me:
        return tuple(rest)
    return ()


def receivers(plans: Iterable[tuple[str, Iterable[PartitionPlan]]]) -> dict[int, set[str]]:
    """partition -> every target of the given (node, plans): for checking plans together."""
    out: dict[int, set[str]] = {}
    for _node, node_plans in plans:
        for pp in node_plans:
            out.setdefault(pp.partition, set()).update(pp.targets)
    return out


def storage_partition(storage_key: bytes, partitions: int) -> int:
    """The partition of an engine key (``ObjectKey.storage_key()``): the same value as
    ``ring.partition_of`` without decoding the key."""
    bits = partitions.bit_length() - 1
    head = int.from_bytes(hashlib.sha1(storage_key).digest()[:2], "big")
    return head >> (16 - bits)


def is_object_key(storage_key: bytes) -> bool:
    """A client object (``bucket NUL key``), not a node-local record."""
    return not storage_key.startswith(LOCAL_PREFIX)


# ---------------------------------------------------------------- progress records


@dataclass(frozen=True, slots=True)
class ProgressRecord:
    """The durable state of one transfer: ``acked`` the last storage key the target
    acknowledged (None: nothing yet), ``stays`` as in PartitionPlan, ``done`` all of it
    acknowledged, ``leaving`` made for this node's leave."""

    partition: int
    target: str
    acked: bytes | None
    stays: bool
    done: bool = False
    leaving: bool = False


def progress_key(partition: int, target: str) -> bytes:
    """Engine key of the (partition, target) record: ``NUL o NUL <partition> NUL <target>``."""
    return PROGRESS_PREFIX + str(partition).encode() + b"\x00" + target.encode()


def encode_progress(record: ProgressRecord) -> bytes:
    return json.dumps({"acked": None if record.acked is None else record.acked.hex(),
                       "stays": record.stays, "done": record.done,
                       "leaving": record.leaving}, sort_keys=True).encode()


def decode_progress(key: bytes, value: bytes) -> ProgressRecord:
    """The record kept under ``key``; ValueError if either is not one of ours."""
    if not key.startswith(PROGRESS_PREFIX):
        raise ValueError("not a handoff progress key")
    part, sep, target = key[len(PROGRESS_PREFIX):].partition(b"\x00")
    if not sep or not part.isdigit() or not target:
        raise ValueError(f"malformed handoff progress key {key!r}")
    try:
        data = json.loads(value)
        acked = data["acked"]
        return ProgressRecord(int(part), target.decode(),
                              None if acked is None else bytes.fromhex(acked),
                              bool(data["stays"]), bool(data.get("done", False)),
                              bool(data.get("leaving", False)))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed handoff progress record: {exc}") from None


# ---------------------------------------------------------------- one transfer's progress


@dataclass
class _Chunk:
    last_key: bytes | None
    keys: int
    size: int
    acked: bool = False


@dataclass
class TransferProgress:
    """Chunk bookkeeping of one (partition, target) transfer.

    ``sent_upto`` is where the next chunk starts (keys after it); ``acked`` where a resume
    starts. Chunk numbers are given by the caller, increasing, unique per sender.
    """

    acked: bytes | None = None
    sent_upto: bytes | None = None
    scan_done: bool = False
    """Every key up to the end was put in a chunk."""
    _in_flight: dict[int, _Chunk] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sent_upto is None:
            self.sent_upto = self.acked

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def wants(self, key: bytes) -> bool:
        """True if ``key`` is not in a chunk already sent and still counted."""
        return self.sent_upto is None or key > self.sent_upto

    def sent(self, seq: int, last_key: bytes | None, keys: int, size: int) -> None:
        """Chunk ``seq`` (keys up to ``last_key``) is on its way. A chunk of no keys
        (``last_key`` None: the transfer's empty last chunk) ends where the last did."""
        if self._in_flight and seq <= max(self._in_flight):
            raise ValueError(f"chunk {seq} is not after the chunks in flight")
        if last_key is None:
            if keys:
                raise ValueError("a chunk with keys needs its last key")
            self._in_flight[seq] = _Chunk(self.sent_upto, 0, 0)
            return
        if self.sent_upto is not None and last_key <= self.sent_upto:
            raise ValueError("a chunk must end past the keys already sent")
        self._in_flight[seq] = _Chunk(last_key, keys, size)
        self.sent_upto = last_key

    def ack(self, seq: int) -> tuple[int, int] | None:
        """Chunk ``seq`` is durable at the target. Returns (keys, bytes) newly counted as
        acknowledged (the gap-free run it completes), or None for an ack of a chunk not
        in flight (stale: sent before a reset)."""
        chunk = self._in_flight.get(seq)
        if chunk is None or chunk.acked:
            return None
        chunk.acked = True
        keys = size = 0
        for s in sorted(self._in_flight):
            head = self._in_flight[s]
            if not head.acked:
                break
            del self._in_flight[s]
            if head.last_key is not None:
                self.acked = head.last_key
            keys += head.keys
            size += head.size
        return keys, size

    def reset(self) -> int:
        """A chunk failed or timed out: forget every chunk not acknowledged and resume
        from ``acked``. Returns how many chunks were forgotten."""
        lost = len(self._in_flight)
        self._in_flight.clear()
        self.sent_upto = self.acked
        self.scan_done = False
        return lost

    def pending(self) -> Iterator[int]:
        """Numbers of the chunks in flight, oldest first."""
        return iter(sorted(self._in_flight))

    @property
    def complete(self) -> bool:
        """Every key was sent and acknowledged."""
        return self.scan_done and not self._in_flight
