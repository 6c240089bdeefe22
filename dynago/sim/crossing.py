"""How simulated messages cross between worker processes.

Messages cross as plain tuples (pickling frozen dataclasses costs ten times more), and
member records cross by number: the first time a record crosses from one worker to
another it goes whole and both ends give it the next number of that direction; after
that only its number crosses, and the other end hands its nodes the very object it
restored the first time. A record that goes back where it came from becomes the
original object again. So records keep their identity across workers as they do within
one: a core skips a record it holds by identity, the byte counter finds its size by
identity, and a full list of 10,000 records crosses as 10,000 small integers.

Both ends number the records of a converged start alike (``preregister``, called by
every worker with the same records in the same order), so those never cross whole.
A message sent to several nodes of the other worker is encoded once and comes back as
one object, as it would within one worker.
"""

from __future__ import annotations

from collections.abc import Iterable

from dynago.core.member import Member, Status
from dynago.core.messages import Ack, Gossip, Nack, Ping, PingReq, StateSync
from dynago.core.tags import Tags

Posted = tuple[float, int, str, str, object]
"""(time, kind, target, sender, payload): an event for a node of another worker."""

_STATUSES = tuple(Status)
_KINDS: tuple[type, ...] = (Ping, Ack, PingReq, Nack, Gossip, StateSync)
_Flat = tuple[str, str, int, int, str, Tags]
_Encoded = int | _Flat
"""n >= 0: the sender's record number n; n < 0: the receiver's own record number ~n;
a tuple: a record crossing for the first time (it gets the sender's next number)."""


class _Direction:
    """The records numbered between this worker and one other."""

    __slots__ = ("mine", "mine_ids", "theirs", "theirs_ids")

    def __init__(self) -> None:
        self.mine: list[Member] = []
        """Records this worker numbered (sent first, or preregistered), by number."""
        self.mine_ids: dict[int, tuple[Member, int]] = {}
        """id(record) -> (record, number) for ``mine`` (the record keeps its id taken)."""
        self.theirs: list[Member] = []
        """Records the other worker numbered, as objects here, by number."""
        self.theirs_ids: dict[int, tuple[Member, int]] = {}
        """id(object here) -> (object, the other worker's number) for ``theirs``."""


class Crossing:
    """One worker's end of every crossing: encodes what it posts, decodes what it gets."""

    __slots__ = ("_directions",)

    def __init__(self, workers: int) -> None:
        self._directions = [_Direction() for _ in range(workers)]

    def preregister(self, members: Iterable[Member]) -> None:
        """Number ``members`` alike with every other worker (each worker calls this with
        equal records in the same order, before anything crosses)."""
        batch = list(members)
        for direction in self._directions:
            if direction.mine or direction.theirs:
                raise ValueError("records are preregistered before anything crosses")
            direction.mine = batch.copy()
            direction.mine_ids = {id(m): (m, i) for i, m in enumerate(batch)}
            direction.theirs = batch.copy()

    def encode(self, posted: list[Posted], other: int) -> list[Posted]:
        """The events of ``posted`` (for worker ``other``) as plain tuples."""
        direction = self._directions[other]
        mine, mine_ids, theirs_ids = direction.mine, direction.mine_ids, direction.theirs_ids

        def record(m: Member) -> _Encoded:
            known = theirs_ids.get(id(m))
            if known is not None:
                return ~known[1]
            known = mine_ids.get(id(m))
            if known is not None:
                return known[1]
            mine_ids[id(m)] = (m, len(mine))
            mine.append(m)
            return (m.name, m.address, m.incarnation, int(m.status), m.origin, m.tags)

        done: dict[int, object] = {}
        out: list[Posted] = []
        for time, kind, target, sender, payload in posted:
            flat = done.get(id(payload))
            if flat is None:
                if isinstance(payload, Ping | PingReq):
                    flat = (_KINDS.index(type(payload)), payload.seq, record(payload.target))
                elif isinstance(payload, Ack):
                    flat = (1, payload.seq, record(payload.member))
                elif isinstance(payload, Nack):
                    flat = (3, payload.seq)
                elif isinstance(payload, Gossip):
                    flat = (4, tuple([record(m) for m in payload.updates]))
                elif isinstance(payload, StateSync):
                    flat = (5, tuple([record(m) for m in payload.members]),
                            payload.reply_wanted, payload.last)
                else:
                    flat = payload  # a stream notice: a bool
                done[id(payload)] = flat
            out.append((time, kind, target, sender, flat))
        return out

    def decode(self, posted: list[Posted], other: int) -> list[Posted]:
        """The events worker ``other`` encoded, with messages and records as objects."""
        direction = self._directions[other]
        mine, theirs, theirs_ids = direction.mine, direction.theirs, direction.theirs_ids

        def record(e: _Encoded) -> Member:
            if isinstance(e, int):
                return theirs[e] if e >= 0 else mine[~e]
            m = Member(e[0], e[1], e[2], _STATUSES[e[3]], e[4], e[5])
            theirs_ids[id(m)] = (m, len(theirs))
            theirs.append(m)
            return m

        done: dict[int, object] = {}
        out: list[Posted] = []
        for time, kind, target, sender, flat in posted:
            payload = done.get(id(flat))
            if payload is None:
                payload = flat
                if isinstance(flat, tuple):
                    code = flat[0]
                    if code <= 2:
                        payload = _KINDS[code](flat[1], record(flat[2]))
                    elif code == 3:
                        payload = Nack(flat[1])
                    elif code == 4:
                        payload = Gossip(tuple([record(e) for e in flat[1]]))
                    else:
                        payload = StateSync(tuple([record(e) for e in flat[1]]),
                                            flat[2], flat[3])
                done[id(flat)] = payload
            out.append((time, kind, target, sender, payload))
        return out
