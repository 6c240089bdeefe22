"""Messages of the StorageActor (dynago.actors.storage), and its counters.

Every reply is a plain callable that the actor calls **on its own thread**, after the
fact. It must not block and must not raise: pass a callback that only ``tell``s the
caller's actor or does ``loop.call_soon_threadsafe(...)``; never one that waits on a
future or an ``ask`` (that would stall every read and write of the node). A callback
that raises is logged and counted (``errors``); the actor lives on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dynago.storage.engine import Write
from dynago.storage.history import WriteRecord


@dataclass(frozen=True, slots=True)
class Origin:
    """Why a write is made, for the key's write history (dynago.storage.history):
    ``how`` it came ("coordinated", "replica", "read repair", ...) and the ``peer`` it came
    from ("" for this node's own doing). Writes without one are not recorded."""

    how: str
    peer: str = ""


@dataclass(frozen=True, slots=True)
class Read:
    """Read ``key``: ``reply(value)`` with its value, or None if there is none.

    A key written by an update of the batch being gathered is answered with that value,
    after the batch is committed (never with data that is not durable yet); if that
    commit fails, with the committed value instead. ``on_error`` (if given) gets an
    engine failure; without it, the failure is only logged and counted.
    """

    key: bytes
    reply: Callable[[bytes | None], None]
    on_error: Callable[[Exception], None] | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """Replace the value of ``key`` by ``fn(current)``, durably: ``reply(new_value)``.

    ``fn`` is a pure transformation (decode, merge, encode); it sees the latest value,
    including the writes of earlier updates of the same batch. It returns the new value,
    or None for "no change, nothing to write" (then ``reply`` gets the current value). An
    exception from ``fn`` calls ``on_error`` with it and writes nothing. ``reply`` is
    called only once the batch holding the write is committed; if that commit fails,
    ``on_error`` gets the StorageError instead and nothing of the batch is stored.
    """

    key: bytes
    fn: Callable[[bytes | None], bytes | None]
    reply: Callable[[bytes | None], None]
    on_error: Callable[[Exception], None]
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``key`` durably (a missing key is no error): ``reply(None)`` once committed,
    ``on_error`` if the commit fails. For reaping tombstones and handoff, not for client
    deletes (those are writes of a tombstone, through Update)."""

    key: bytes
    reply: Callable[[None], None]
    on_error: Callable[[Exception], None]
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class DeleteIf:
    """Delete ``key`` durably only if its latest value (the batch's included) is exactly
    ``expected``: ``reply(True)`` once the delete is committed, ``reply(False)`` if the
    value differs (nothing written; e.g. a hint rewritten while it was handed back),
    ``on_error`` if the commit fails."""

    key: bytes
    expected: bytes
    reply: Callable[[bool], None]
    on_error: Callable[[Exception], None]
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class ListKeys:
    """``reply(keys)``: up to ``limit`` keys starting with ``prefix`` in byte order, each
    greater than ``after`` if given (pass the last key of a page for the next page).

    Asked while a batch is being gathered, it is answered after that batch's commit, from
    the engine, so it lists only durable keys and includes the batch's. With ``keep``,
    only keys whose value it accepts are listed (e.g. not a tombstone); ``limit`` counts
    the keys looked at.
    """

    prefix: bytes
    reply: Callable[[list[bytes]], None]
    limit: int = 10000
    after: bytes | None = None
    on_error: Callable[[Exception], None] | None = None
    keep: Callable[[bytes], bool] | None = None


@dataclass(frozen=True, slots=True)
class GetStats:
    """``reply(StorageStats)`` if ``reply`` is given; an ``ask`` also returns them. The batch
    being gathered is committed first, so the counters include every write told before."""

    reply: Callable[[StorageStats], None] | None = None


@dataclass(frozen=True, slots=True)
class History:
    """``reply(records)``: the remembered writes of ``key``, oldest first
    (dynago.storage.history; empty if none)."""

    key: bytes
    reply: Callable[[tuple[WriteRecord, ...]], None]


CommitListener = Callable[[Sequence[Write]], None]
"""Called on the StorageActor's thread after every commit that returned, with the
batch's writes (``(key, value)``; ``value`` None: deleted), each key once, its final
value. It must not block or raise (tell an actor); a listener that raises is logged and
counted."""


@dataclass(frozen=True, slots=True)
class WatchCommits:
    """Call ``listener`` after every later commit (for hash trees kept up to date)."""

    listener: CommitListener


@dataclass(frozen=True, slots=True)
class ListItems:
    """``reply(items)``: the ``(key, value)`` pairs of keys starting with each of
    ``prefixes`` in turn (each prefix's in byte order, those greater than ``after``), at
    most ``limit`` in all. Answered, like ListKeys, from the engine once the batch being
    gathered is committed (so after the commit listeners of that batch were called)."""

    prefixes: tuple[bytes, ...]
    reply: Callable[[list[tuple[bytes, bytes]]], None]
    limit: int = 10000
    after: bytes | None = None
    on_error: Callable[[Exception], None] | None = None


class Indexer(Protocol):
    """Records derived from the objects, kept by the StorageActor in the same
    transactions as the objects (dynago.kv.aae_index.AaeIndexer is the one there is)."""

    def derive(self, writes: Sequence[Write], get: Callable[[bytes], bytes | None]
               ) -> tuple[list[Write], list[Any]]:
        """The writes to add to a batch of ``writes`` (``get`` reads the committed
        store) and the changes to tell the index listeners once it is committed."""
        ...

    def rebuild_step(self, cursor: Any, items: Callable[..., list[tuple[bytes, bytes]]]
                     ) -> tuple[list[Write], Any]:
        """One step of building the records anew: writes to commit, the next cursor
        (None: done). ``cursor`` None is the first step."""
        ...


IndexListener = Callable[[list[Any]], None]
"""Called on the StorageActor's thread after every commit that changed the index, with
the indexer's changes. Must not block or raise (tell an actor)."""


@dataclass(frozen=True, slots=True)
class WatchIndex:
    """Call ``listener`` with the index changes of every later commit."""

    listener: IndexListener


@dataclass(frozen=True, slots=True)
class RebuildIndex:
    """Run one step of the indexer's rebuild from ``cursor`` (None: the first), in a
    transaction of its own after the batch being gathered: ``reply(next cursor)``
    (None: done), ``on_error`` if it failed (nothing of the step stored) or the store
    keeps no index."""

    cursor: Any
    reply: Callable[[Any], None]
    on_error: Callable[[Exception], None]


StorageMessage = (Read | Update | Delete | ListKeys | GetStats | History | WatchCommits
                  | DeleteIf | ListItems | WatchIndex | RebuildIndex)
"""Everything the StorageActor takes."""


@dataclass(frozen=True, slots=True)
class StorageStats:
    """The StorageActor's counters, since it started (``keys`` and ``size_bytes`` are the
    engine's now)."""

    engine: str
    """``"lmdb"``, ``"sqlite"`` or ``"memory"``."""
    keys: int
    """Every key the engine holds, the node-local ones (hints, indexes) included."""
    objects: int
    """Keys outside NUL: the client objects this node holds."""
    size_bytes: int
    reads: int
    updates: int
    """Update and Delete messages handled (whether they wrote, changed nothing or failed)."""
    writes: int
    """Writes acknowledged as durable (one per Update or Delete that wrote)."""
    commits: int
    """Batches committed (``engine.commit`` calls that returned)."""
    fsyncs: int
    """Commits that synced to disk: ``commits`` for a durable engine, 0 for memory."""
    max_batch: int
    """Most writes in one commit."""
    fn_errors: int
    """Updates whose ``fn`` raised (nothing written)."""
    failed_commits: int
    """Commits that raised (every write of the batch got ``on_error``)."""
    errors: int
    """Every error: fn errors, failed commits, failed reads and listings, callbacks that raised."""
