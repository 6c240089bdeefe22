"""How simulated messages cross between worker processes.

At the end of each window every worker writes each other worker a batch (its earliest
pending event time and the events for that worker's nodes), then reads theirs
(``WorkerLinks.swap``).

Messages cross as plain tuples (pickling frozen dataclasses costs ten times more), and
member records cross by number. Each pair of workers shares one numbering of the
records that crossed between them: the first time a record crosses it goes whole,
under the next number of the worker that sends it (the lower-numbered worker of the
pair takes even numbers, the other odd ones, so neither waits for the other); after
that, in either direction, only its number crosses, and each end hands its nodes its
own object for that number. So records keep their identity across workers as they do
within one: a core skips a record it holds by identity, the byte counter finds its size
by identity, a record that goes back becomes its original object again, and a full
list of 256 records crosses as 256 integers, looked up without a Python call each.

Both ends number the records of a converged start alike (``preregister``, called by
every worker with equal records in the same order), so those never cross whole.
A gossip or full-list message sent to several nodes of the other worker is encoded
once and comes back as one object, as it would within one worker.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from time import perf_counter

from dynago.core.member import Member, Status
from dynago.core.messages import Ack, Gossip, Nack, Ping, PingReq, StateSync
from dynago.core.tags import Tags

EXCHANGE_TIMEOUT_S = 600.0
"""A worker that hears nothing from another for this long gives up (it died)."""

SPIN_S = 0.002
"""How long a worker polls for another's batch (yielding its core to any process that
waits for it) before it sleeps until the batch comes: waking a sleeping process takes
longer than a window's work."""

EAGER_SEND_BYTES = 32 * 1024
"""Batches up to this size are written at once (a socket pair buffers more than that);
larger ones from a helper thread, so that two workers sending large batches to each
other cannot both block before either reads."""

Posted = tuple[float, int, str, str, object]
"""(time, kind, target, sender, payload): an event for a node of another worker."""

Batch = tuple[list[tuple[int, "_Flat"]], list[Posted]]
"""What one worker sends another at an exchange: the records crossing for the first
time (number, fields), then the events, their records given by number."""

_STATUSES = tuple(Status)
_Flat = tuple[str, str, int, int, str, Tags]


class _Pair:
    """The numbering of the records that crossed between this worker and one other."""

    __slots__ = ("records", "numbers", "next_number")

    def __init__(self, first_number: int) -> None:
        self.records: dict[int, Member] = {}
        """Number -> this worker's object for it (which keeps its id taken)."""
        self.numbers: dict[int, int] = {}
        """id(object in ``records``) -> its number."""
        self.next_number = first_number
        """The next number this worker gives (numbers go up by two)."""


class Crossing:
    """One worker's end of every crossing: encodes what it posts, decodes what it gets."""

    __slots__ = ("_pairs",)

    def __init__(self, workers: int, worker: int = 0) -> None:
        self._pairs = [_Pair(0 if worker < other else 1) for other in range(workers)]

    def preregister(self, members: Iterable[Member]) -> None:
        """Number ``members`` alike with every other worker (each worker calls this with
        equal records in the same order, before anything crosses)."""
        batch = list(members)
        for pair in self._pairs:
            if pair.records:
                raise ValueError("records are preregistered before anything crosses")
            base = 2 * len(batch)
            pair.records = {2 * i: m for i, m in enumerate(batch)}
            pair.numbers = {id(m): 2 * i for i, m in enumerate(batch)}
            pair.next_number += base

    def encode(self, posted: list[Posted], other: int) -> Batch:
        """The events of ``posted`` (for worker ``other``) as plain tuples."""
        pair = self._pairs[other]
        records, numbers = pair.records, pair.numbers
        numbered = numbers.get
        fresh: list[tuple[int, _Flat]] = []

        def refs(members: tuple[Member, ...]) -> tuple[int, ...]:
            found = tuple(map(numbered, map(id, members)))
            if None not in found:
                return found  # type: ignore[return-value]
            return tuple([number if number is not None else new(m)
                          for number, m in zip(found, members, strict=True)])

        def new(m: Member) -> int:
            number = numbers.get(id(m))  # the same record twice in one list
            if number is None:
                number = pair.next_number
                pair.next_number += 2
                records[number] = m
                numbers[id(m)] = number
                fresh.append((number, (m.name, m.address, m.incarnation, int(m.status),
                                       m.origin, m.tags)))
            return number

        def ref(m: Member) -> int:
            number = numbered(id(m))
            return number if number is not None else new(m)

        done: dict[int, object] = {}
        out: list[Posted] = []
        append = out.append
        for time, kind, target, sender, payload in posted:
            cls = type(payload)
            # Probes go to one node each; a gossip message goes to several (encoded once).
            # (Dispatched on the exact type: ``payload`` is one of these or a bool.)
            if cls is Ack:
                answer: Ack = payload  # type: ignore[assignment]
                flat: object = (1, answer.seq, ref(answer.member))
            elif cls is Ping or cls is PingReq:
                probe: Ping = payload  # type: ignore[assignment]
                flat = (0 if cls is Ping else 2, probe.seq, ref(probe.target))
            elif cls is Gossip or cls is StateSync:
                flat = done.get(id(payload))
                if flat is None:
                    if cls is Gossip:
                        gossip: Gossip = payload  # type: ignore[assignment]
                        flat = (4, refs(gossip.updates))
                    else:
                        sync: StateSync = payload  # type: ignore[assignment]
                        flat = (5, refs(sync.members), sync.reply_wanted, sync.last)
                    done[id(payload)] = flat
            elif cls is Nack:
                nack: Nack = payload  # type: ignore[assignment]
                flat = (3, nack.seq)
            else:
                flat = payload  # a stream notice: a bool
            append((time, kind, target, sender, flat))
        return fresh, out

    def decode(self, batch: Batch, other: int) -> list[Posted]:
        """The events worker ``other`` encoded, with messages and records as objects."""
        pair = self._pairs[other]
        records, numbers = pair.records, pair.numbers
        fresh, posted = batch
        for number, e in fresh:
            m = Member(e[0], e[1], e[2], _STATUSES[e[3]], e[4], e[5])
            records[number] = m
            numbers[id(m)] = number
        record = records.__getitem__
        done: dict[int, object] = {}
        out: list[Posted] = []
        append = out.append
        ping, ack, ping_req = Ping, Ack, PingReq
        for time, kind, target, sender, flat in posted:
            if type(flat) is not tuple:
                append((time, kind, target, sender, flat))  # a stream notice: a bool
                continue
            code = flat[0]
            payload: object
            if code == 1:
                payload = ack(flat[1], record(flat[2]))
            elif code == 0:
                payload = ping(flat[1], record(flat[2]))
            elif code == 2:
                payload = ping_req(flat[1], record(flat[2]))
            elif code == 3:
                payload = Nack(flat[1])
            else:
                payload = done.get(id(flat))
                if payload is None:
                    if code == 4:
                        payload = Gossip(tuple(map(record, flat[1])))
                    else:
                        payload = StateSync(tuple(map(record, flat[1])), flat[2], flat[3])
                    done[id(flat)] = payload
            append((time, kind, target, sender, payload))
        return out


class WorkerLinks:
    """This worker's connections to the others, and the swap at the end of a window."""

    __slots__ = ("crossing", "_links")

    def __init__(self, worker: int, links: Sequence[Connection | None]) -> None:
        self.crossing = Crossing(len(links), worker)
        self._links = links
        """Connection to each other worker, by worker number (None for this one)."""

    def swap(self, earliest: float, outboxes: Sequence[list[Posted]]) -> tuple[float, list[Posted]]:
        """Send each other worker its events and ``earliest`` (this worker's earliest
        pending time), then read theirs. Returns the earliest time of all workers and
        the events for this worker's nodes, in worker order.

        Every worker sends first and then reads, so a window costs one hand-over, not
        one per pair in turn."""
        senders: list[threading.Thread] = []
        for other, link in enumerate(self._links):
            if link is None:
                continue
            data = pickle.dumps((earliest, self.crossing.encode(outboxes[other], other)),
                                pickle.HIGHEST_PROTOCOL)
            if len(data) <= EAGER_SEND_BYTES:
                link.send_bytes(data)  # fits in the socket's buffer: returns at once
            else:
                # Both ends may be sending a large batch: neither may block on a full
                # buffer before it reads.
                sender = threading.Thread(target=link.send_bytes, args=(data,), daemon=True)
                sender.start()
                senders.append(sender)
        received: list[Posted] = []
        for other, link in enumerate(self._links):
            if link is None:
                continue
            their_earliest, batch = pickle.loads(_receive(link))
            earliest = min(earliest, their_earliest)
            received.extend(self.crossing.decode(batch, other))
        for sender in senders:
            sender.join()
        return earliest, received


def _receive(link: Connection) -> bytes:
    deadline = perf_counter() + SPIN_S
    while not link.poll(0):
        os.sched_yield()  # a process waiting for this core (the other worker?) runs
        if perf_counter() > deadline:
            if not link.poll(EXCHANGE_TIMEOUT_S):
                raise RuntimeError("another simulation worker stopped answering")
            break
    return link.recv_bytes()
