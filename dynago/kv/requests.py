"""The state machines of one client put and one client get (Riak's riak_kv_put_fsm and
riak_kv_get_fsm): all the quorum arithmetic lives here, and nothing else.

The coordinating actor does every I/O: it sends the object to the replicas, feeds each
answer to the machine with the time it arrived, calls ``expire`` when its timer for
``deadline`` fires, and answers the client with the first (and only) outcome a call
returns. Rules both machines share:

- Each replica's first answer counts; later answers from it, and answers from nodes
  outside ``replicas``, are ignored.
- Success needs ``w`` (``r``) answers, of which ``pw`` (``pr``) from primaries.
- Failure comes as soon as success became impossible (too many replicas failed), or at
  the deadline: an answer arriving at or after ``deadline`` finds the request timed out,
  so the outcome depends only on what arrived before the deadline, not on when the
  actor's timer fired.
- A request that cannot succeed from the start (fewer replicas than ``w``, fewer
  primaries than ``pw``) has its failed outcome already at construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynago.kv.model import QUORUM_ALL, QUORUM_MAJORITY, BadRequest, ObjectKey, Quorum
from dynago.kv.version import EMPTY, Object, merge


@dataclass(frozen=True, slots=True)
class ResolvedQuorum:
    """Quorum numbers of one request: 1 ≤ r, w ≤ N and 0 ≤ pr, pw ≤ N."""

    r: int
    w: int
    pr: int
    pw: int


_NO_DEFAULTS = Quorum()


def resolve_quorum(n_val: int, q: Quorum, defaults: Quorum = _NO_DEFAULTS) -> ResolvedQuorum:
    """The request's quorum: its own value, else the configured default in ``defaults``,
    else a majority (N//2+1) for r and w and 0 for pr and pw. Riak's words arrive as
    ``QUORUM_ALL`` (N) and ``QUORUM_MAJORITY`` (N//2+1).

    Raises:
        BadRequest: ``n_val`` below 1 or a value outside its range, naming it.
    """
    if type(n_val) is not int or n_val < 1:
        raise BadRequest(f"n_val must be at least 1, got {n_val!r}")
    majority = n_val // 2 + 1
    resolved: dict[str, int] = {}
    for name, low, fallback in (("r", 1, majority), ("w", 1, majority),
                                ("pr", 0, 0), ("pw", 0, 0)):
        value = getattr(q, name)
        if value is None:
            value = getattr(defaults, name)
        if value is None:
            value = fallback
        elif value == QUORUM_ALL:
            value = n_val
        elif value == QUORUM_MAJORITY:
            value = majority
        if type(value) is not int or not low <= value <= n_val:
            raise BadRequest(f"{name} must be an integer from {low} to {n_val} "
                             f"(n_val), got {value!r}")
        resolved[name] = value
    return ResolvedQuorum(**resolved)


@dataclass(frozen=True, slots=True)
class PutDone:
    """W replicas (PW of them primaries) stored the object; ``acks`` in arrival order."""

    acks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PutFailed:
    """Not enough acknowledgements: ``answered`` of ``needed`` (the W count, or the PW
    count when that is what fell short). Fewer than W replicas may still hold it."""

    answered: int
    needed: int
    reason: str


PutOutcome = PutDone | PutFailed


@dataclass(frozen=True, slots=True)
class GetDone:
    """R replicas (PR of them primaries) answered; ``obj`` merges every reply so far
    (``is_deleted(obj)``: not found)."""

    obj: Object
    replies: int


@dataclass(frozen=True, slots=True)
class GetFailed:
    """Not enough replies: ``answered`` of ``needed`` (R, or PR when that fell short)."""

    answered: int
    needed: int
    reason: str


GetOutcome = GetDone | GetFailed


class _Tally:
    """Who answered how, and whether ``need`` successes (``need_primary`` from
    primaries) are reached or out of reach."""

    def __init__(self, what: str, replicas: tuple[str, ...], primaries: frozenset[str],
                 need: int, need_primary: int, deadline: float) -> None:
        if len(set(replicas)) != len(replicas):
            raise ValueError("replicas repeat a name")
        if not primaries <= set(replicas):
            raise ValueError("primaries must be among the replicas")
        if need < 1 or need_primary < 0:
            raise ValueError(f"bad quorum {need}/{need_primary}: resolve_quorum first")
        self.what = what
        self.replicas = replicas
        self.primaries = primaries
        self.need = need
        self.need_primary = need_primary
        self.deadline = deadline
        self.ok: list[str] = []
        self.failures: dict[str, str] = {}

    def answered(self, replica: str) -> bool:
        return replica in self.failures or replica in self.ok

    def primary_ok(self) -> int:
        return sum(1 for name in self.ok if name in self.primaries)

    def reached(self) -> bool:
        return len(self.ok) >= self.need and self.primary_ok() >= self.need_primary

    def shortfall(self, why: str) -> tuple[int, int, str]:
        """(answered, needed, reason) for the count that fell short."""
        if len(self.ok) < self.need:
            answered, needed, kind = len(self.ok), self.need, "replicas"
        else:
            answered, needed, kind = self.primary_ok(), self.need_primary, "primary replicas"
        reason = f"{why}: {answered} of {needed} {kind} answered {self.what}"
        if self.failures:
            reason += " (" + "; ".join(f"{name}: {error}" for name, error
                                       in sorted(self.failures.items())) + ")"
        return answered, needed, reason

    def impossible(self) -> str | None:
        """Why success is out of reach even if every silent replica answers, or None."""
        silent = [name for name in self.replicas if not self.answered(name)]
        if len(self.ok) + len(silent) < self.need:
            return f"only {len(self.ok) + len(silent)} replicas can answer"
        could = self.primary_ok() + sum(1 for name in silent if name in self.primaries)
        if could < self.need_primary:
            return f"only {could} primary replicas can answer"
        return None


class PutFsm:
    """One client put, from the sends to the answer (see the module docstring).

    The coordinator's own durable store counts as one acknowledgement: the actor calls
    ``acked(self_name, now)`` once its storage confirmed the write.
    """

    def __init__(self, request_id: int, key: ObjectKey, replicas: tuple[str, ...],
                 primaries: frozenset[str], w: int, pw: int, deadline: float) -> None:
        self.request_id = request_id
        self.key = key
        self._tally = _Tally("the put", replicas, primaries, w, pw, deadline)
        self._outcome: PutOutcome | None = None
        self._check()

    @property
    def outcome(self) -> PutOutcome | None:
        return self._outcome

    @property
    def deadline(self) -> float:
        return self._tally.deadline

    def acked(self, replica: str, now: float) -> PutOutcome | None:
        """``replica`` durably stored the object. Returns the outcome if this settles it."""
        return self._answer(replica, None, now)

    def failed(self, replica: str, reason: str, now: float) -> PutOutcome | None:
        """``replica`` could not store it (refused, unreachable). Returns the outcome if
        this settles it."""
        return self._answer(replica, reason, now)

    def expire(self, now: float) -> PutOutcome | None:
        """The deadline timer: fails the request if ``now`` ≥ deadline and nothing settled
        it; None otherwise."""
        if self._outcome is not None or now < self._tally.deadline:
            return None
        self._outcome = PutFailed(*self._tally.shortfall("timed out"))
        return self._outcome

    def _answer(self, replica: str, error: str | None, now: float) -> PutOutcome | None:
        tally = self._tally
        if self._outcome is not None or replica not in tally.replicas:
            return None
        if now >= tally.deadline:
            return self.expire(now)
        if tally.answered(replica):
            return None
        if error is None:
            tally.ok.append(replica)
        else:
            tally.failures[replica] = error
        return self._check()

    def _check(self) -> PutOutcome | None:
        tally = self._tally
        if tally.reached():
            self._outcome = PutDone(tuple(tally.ok))
        elif (why := tally.impossible()) is not None:
            self._outcome = PutFailed(*tally.shortfall(why))
        return self._outcome


class GetFsm:
    """One client get (see the module docstring). A not-found reply (None) counts toward
    R (Riak's ``notfound_ok``). After the outcome, late replies are still merged and
    recorded, without a second outcome, so that read repair can see who is behind."""

    def __init__(self, request_id: int, key: ObjectKey, replicas: tuple[str, ...],
                 primaries: frozenset[str], r: int, pr: int, deadline: float) -> None:
        self.request_id = request_id
        self.key = key
        self._tally = _Tally("the get", replicas, primaries, r, pr, deadline)
        self._outcome: GetOutcome | None = None
        self._replies: dict[str, Object | None] = {}
        self._merged = EMPTY
        self._check()

    @property
    def outcome(self) -> GetOutcome | None:
        return self._outcome

    @property
    def deadline(self) -> float:
        return self._tally.deadline

    @property
    def all_replies(self) -> dict[str, Object | None]:
        """Every replica's reply so far, late ones included (None: not found there)."""
        return dict(self._replies)

    @property
    def merged(self) -> Object:
        """The merge of every reply so far, late ones included."""
        return self._merged

    @property
    def complete(self) -> bool:
        """Every replica has replied or failed: nothing more will come."""
        return all(self._tally.answered(name) for name in self._tally.replicas)

    @property
    def failed_count(self) -> int:
        """Replicas that could not answer, so far."""
        return len(self._tally.failures)

    def behind(self) -> tuple[str, ...]:
        """Replicas whose reply lacks something of ``merged`` (read repair targets), in
        preference-list order."""
        return tuple(name for name in self._tally.replicas if name in self._replies
                     and (self._replies[name] or EMPTY) != self._merged)

    def replied(self, replica: str, obj: Object | None, now: float) -> GetOutcome | None:
        """``replica``'s copy (None: not found there). Returns the outcome if this
        settles it."""
        tally = self._tally
        if replica not in tally.replicas or tally.answered(replica):
            return None
        late = self._outcome is not None
        if not late and now >= tally.deadline:
            self.expire(now)
            late = True
        # Stored for read repair even when late; only a timely reply counts toward R.
        self._replies[replica] = obj
        tally.ok.append(replica)
        if obj is not None:
            self._merged = merge(self._merged, obj)
        return self._check() if not late else None

    def failed(self, replica: str, reason: str, now: float) -> GetOutcome | None:
        """``replica`` could not answer. Returns the outcome if this settles it."""
        tally = self._tally
        if replica not in tally.replicas or tally.answered(replica):
            return None
        late = self._outcome is not None
        if not late and now >= tally.deadline:
            self.expire(now)
            late = True
        tally.failures[replica] = reason
        return self._check() if not late else None

    def expire(self, now: float) -> GetOutcome | None:
        """The deadline timer: fails the request if ``now`` ≥ deadline and nothing settled
        it; None otherwise."""
        if self._outcome is not None or now < self._tally.deadline:
            return None
        self._outcome = GetFailed(*self._tally.shortfall("timed out"))
        return self._outcome

    def _check(self) -> GetOutcome | None:
        tally = self._tally
        if self._outcome is not None:
            return None
        if tally.reached():
            self._outcome = GetDone(self._merged, len(tally.ok))
        elif (why := tally.impossible()) is not None:
            self._outcome = GetFailed(*tally.shortfall(why))
        return self._outcome
