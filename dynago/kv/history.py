"""The history of a key-value check run and Jepsen's rules for judging it. Pure: no
sockets, threads or clocks. Two drivers record histories and judge them here:
bench.kv_check on a real cluster (over HTTP) and the simulator's KV scenarios
(dynago.sim.kv_scenarios) on the pure cores.

Every client operation is recorded once it completed, with its invocation and completion
times and one of three outcomes, as in Jepsen's histories:

* ``ok`` — the node acknowledged it: a put took effect (on W replicas, durably);
* ``fail`` — it certainly did not take effect: the connection was refused before the
  request was sent, or the node refused it with a 4xx;
* ``info`` — indeterminate: it may or may not have taken effect (a timeout or a broken
  connection after the request was sent, a 503 put that got fewer than W acks but may
  have reached some replicas, any other 5xx).

The checkers compare the final state, read once the faults healed, with the history:

* **lost** — acknowledged (``ok``) but absent from the final state: the store broke its
  promise;
* **unexpected** — present in the final state though no write could have put it there:
  a value never written, or written only by operations that certainly failed (and, for
  the rewrite workload, a value an acknowledged write superseded that came back);
* **recovered** — ``info`` writes found in the final state; ``info`` writes may or may
  not be present: both are legal and both are counted.

Three workloads: ``unique`` (each key written once), ``set`` (a set per key grown by
read-modify-write with the read's context, siblings merged by union) and ``rewrite``
(keys rewritten and deleted by read-modify-write, see ``check_rewrite``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

OK, FAIL, INFO = "ok", "fail", "info"


def put_outcome(status: int) -> str:
    """The outcome of a put answered with HTTP ``status``: 2xx ok, 4xx fail, else info
    (a 503 put may have reached some replicas: not undone, a later read may see it)."""
    if 200 <= status < 300:
        return OK
    if 400 <= status < 500:
        return FAIL
    return INFO


def get_outcome(status: int) -> str:
    """The outcome of a get answered with HTTP ``status``: 200, 300 and 404 are answers."""
    if status in (200, 300, 404):
        return OK
    return FAIL if 400 <= status < 500 else INFO


@dataclass(frozen=True)
class Op:
    """One completed client operation.

    ``kind`` is ``write``, ``delete`` or ``read``; ``element`` is what a write added
    (the unique key's value, the set element, the rewrite key's new value); ``seen`` is
    what a read returned (elements, the union of its siblings) or, for a rewrite or a
    delete, the values of the read whose context it carried (all of which it
    supersedes); ``siblings`` is how many siblings a read had."""

    client: int
    node: int
    kind: str
    key: str
    outcome: str
    invoked_s: float
    completed_s: float
    element: str = ""
    status: int = 0
    error: str = ""
    seen: tuple[str, ...] = ()
    siblings: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"client": self.client, "node": self.node, "kind": self.kind,
                "key": self.key, "outcome": self.outcome,
                "invoked_s": round(self.invoked_s, 4),
                "completed_s": round(self.completed_s, 4), "element": self.element,
                "status": self.status, "error": self.error, "seen": list(self.seen),
                "siblings": self.siblings}


@dataclass(frozen=True)
class FinalRead:
    """The final read of one key: found or not, its siblings' values, or why it failed
    (``error`` set: the key could not be read, so it cannot be judged)."""

    key: str
    found: bool
    values: tuple[str, ...] = ()
    error: str = ""


def elements_of(values: Iterable[str]) -> set[str]:
    """A set key's elements: the union of its siblings' comma-separated values."""
    return {item for value in values for item in value.split(",") if item}


@dataclass
class Verdict:
    """What a checker found. ``valid`` is False when something acknowledged was lost."""

    workload: str
    ops: dict[str, dict[str, int]]
    """Per kind (write, read), the count per outcome."""
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    """Acknowledged writes whose key the final read could not reach."""
    recovered: list[str] = field(default_factory=list)
    """Indeterminate (``info``) writes found in the final state."""
    final: dict[str, int] = field(default_factory=dict)
    siblings: dict[str, int] = field(default_factory=dict)
    stale_reads: list[str] = field(default_factory=list)
    """Reads (set workload) that missed an element acknowledged before they began: R + W
    > N promises they see it (docs/kv.md). Reported; ``valid`` is about the final state."""

    @property
    def valid(self) -> bool:
        return not self.lost and not self.unverified

    @property
    def passed(self) -> bool:
        """Jepsen's pass: nothing lost, nothing unexpected, everything checked."""
        return self.valid and not self.unexpected

    def as_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "valid": self.valid, "passed": self.passed,
                "ops": self.ops,
                "lost_count": len(self.lost), "unexpected_count": len(self.unexpected),
                "unverified_count": len(self.unverified),
                "recovered_count": len(self.recovered),
                "stale_read_count": len(self.stale_reads),
                "stale_reads": self.stale_reads[:1000], "lost": self.lost[:1000],
                "unexpected": self.unexpected[:1000], "unverified": self.unverified[:1000],
                "recovered": self.recovered[:1000],
                "final": self.final, "siblings": self.siblings}


def op_counts(history: Sequence[Op]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {"write": Counter(), "read": Counter()}
    for op in history:
        counts.setdefault(op.kind, Counter())[op.outcome] += 1
    return {kind: {"invoked": sum(c.values()), "ok": c[OK], "fail": c[FAIL],
                   "info": c[INFO]} for kind, c in counts.items()}


def _outcomes_by_element(history: Sequence[Op]) -> dict[str, set[str]]:
    by: dict[str, set[str]] = {}
    for op in history:
        if op.kind == "write":
            by.setdefault(op.element, set()).add(op.outcome)
    return by


def check_unique(history: Sequence[Op], final: dict[str, FinalRead],
                 listed: Iterable[str] = ()) -> Verdict:
    """Each write put a fresh key with a fresh value, once. Every acknowledged key must
    be found with its value (and nothing else); a key found though its write failed, a
    value other than the one written, or a listed key never written, is unexpected.

    ``final`` maps every written key to its final read; ``listed`` is the bucket's key
    listing (keys in it but never written are unexpected)."""
    verdict = Verdict("unique", op_counts(history))
    writes = {op.key: op for op in history if op.kind == "write"}
    tally: Counter[str] = Counter()
    for key, op in sorted(writes.items()):
        read = final.get(key)
        if read is None or read.error:
            tally["unreadable"] += 1
            if op.outcome == OK:
                verdict.unverified.append(key)
            continue
        tally["found" if read.found else "not_found"] += 1
        wrong = sorted(set(read.values) - {op.element})
        if wrong:
            verdict.unexpected.extend(f"{key}={value}" for value in wrong)
        present = read.found and op.element in read.values
        if op.outcome == OK and not present:
            verdict.lost.append(key)
        elif op.outcome == FAIL and read.found:
            verdict.unexpected.append(f"{key} (its write failed)")
        elif op.outcome == INFO:
            tally["info_present" if present else "info_absent"] += 1
            if present:
                verdict.recovered.append(key)
        if len(read.values) > 1:
            tally["with_siblings"] += 1
    verdict.unexpected.extend(f"{key} (listed, never written)"
                              for key in sorted(set(listed) - set(writes)))
    verdict.siblings = {"final_keys_with_siblings": tally.pop("with_siblings", 0)}
    verdict.final = dict(tally)
    return verdict


def check_set(history: Sequence[Op], final: dict[str, FinalRead]) -> Verdict:
    """Each key is a set grown by read-modify-write with the read's context. Every
    element whose write was acknowledged must be in the key's final set (the union of
    its siblings); an element no write ever tried to add, or only writes that certainly
    failed, is unexpected."""
    verdict = Verdict("set", op_counts(history))
    by_element = _outcomes_by_element(history)
    key_of = {op.element: op.key for op in history if op.kind == "write"}
    final_sets = {key: elements_of(read.values) for key, read in final.items()
                  if not read.error}
    tally: Counter[str] = Counter()
    for element, outcomes in sorted(by_element.items()):
        key = key_of[element]
        if key not in final_sets:
            if OK in outcomes:
                verdict.unverified.append(element)
            continue
        present = element in final_sets[key]
        if OK in outcomes:
            tally["acked_present" if present else "acked_lost"] += 1
            if not present:
                verdict.lost.append(f"{key}:{element}")
        elif INFO in outcomes:
            tally["info_present" if present else "info_absent"] += 1
            if present:
                verdict.recovered.append(f"{key}:{element}")
        elif present:
            verdict.unexpected.append(f"{key}:{element} (its write failed)")
    for key, elements in sorted(final_sets.items()):
        verdict.unexpected.extend(f"{key}:{e} (never written)"
                                  for e in sorted(elements - set(by_element)))
        tally["elements"] += len(elements)
    tally["keys"] = len(final_sets)
    tally["unreadable_keys"] = sum(1 for read in final.values() if read.error)
    reads = [op for op in history if op.kind == "read" and op.outcome == OK]
    verdict.stale_reads = stale_reads(history)
    verdict.siblings = {
        "reads_with_siblings": sum(1 for op in reads if op.siblings > 1),
        "max_siblings_read": max((op.siblings for op in reads), default=0),
        "final_siblings": sum(len(read.values) for read in final.values()),
    }
    verdict.final = dict(tally)
    return verdict


def stale_reads(history: Sequence[Op]) -> list[str]:
    """Successful reads of a set key that miss an element whose write was acknowledged
    before the read was invoked, one entry per read: ``key@TIME node N: M missed (...)``.
    Elements only grow: a later write supersedes an element only by carrying it on."""
    found: list[str] = []
    for key in sorted({op.key for op in history}):
        acked = sorted((op.completed_s, op.element) for op in history
                       if op.key == key and op.kind == "write" and op.outcome == OK)
        reads = sorted((op.invoked_s, op.node, op.seen) for op in history
                       if op.key == key and op.kind == "read" and op.outcome == OK)
        before: set[str] = set()
        i = 0
        for invoked, node, seen in reads:
            while i < len(acked) and acked[i][0] < invoked:
                before.add(acked[i][1])
                i += 1
            missed = sorted(before - set(seen))
            if missed:
                found.append(f"{key}@{invoked:.3f} node {node}: {len(missed)} missed "
                             f"({','.join(missed[:3])}{',...' if len(missed) > 3 else ''})")
    return found


def check_rewrite(history: Sequence[Op], final: dict[str, FinalRead]) -> Verdict:
    """Keys rewritten and deleted, each write (``write``: a new value; ``delete``: a
    tombstone) a read-modify-write carrying its read's context, whose live values are the
    write's ``seen``. Versions decide which values stand (dynago.kv.version, laws 3 to
    5): a write supersedes exactly the values its context saw, wherever the two meet, a
    tombstone included; every other value stays, as a sibling if need be. So:

    * lost — an acknowledged value absent from the final state, though no write that may
      have taken effect (``ok`` or ``info``) saw it;
    * unexpected — a value in the final state that an acknowledged write saw (an
      overwritten or deleted value came back), a value never written, or one only a
      failed write tried;
    * recovered — an ``info`` value in the final state (legal, counted).

    Values must be unique over the whole history (one write per value)."""
    verdict = Verdict("rewrite", op_counts(history))
    writes = [op for op in history if op.kind in ("write", "delete")]
    puts = {op.element: op for op in writes if op.kind == "write"}
    may_be_superseded: set[str] = set()
    superseded: set[str] = set()
    for op in writes:
        if op.outcome in (OK, INFO):
            may_be_superseded.update(op.seen)
            if op.outcome == OK:
                superseded.update(op.seen)
    final_values = {key: set(read.values) for key, read in final.items() if not read.error}
    tally: Counter[str] = Counter()
    for value, op in sorted(puts.items()):
        must_stand = op.outcome == OK and value not in may_be_superseded
        if op.key not in final_values:
            if must_stand:
                verdict.unverified.append(f"{op.key}={value}")
            continue
        present = value in final_values[op.key]
        if present and value in superseded:
            verdict.unexpected.append(f"{op.key}={value} (came back after an "
                                      "acknowledged write superseded it)")
        elif must_stand:
            tally["acked_present" if present else "acked_lost"] += 1
            if not present:
                verdict.lost.append(f"{op.key}={value}")
        elif op.outcome == FAIL and present:
            verdict.unexpected.append(f"{op.key}={value} (its write failed)")
        elif op.outcome == INFO and present:
            tally["info_present"] += 1
            verdict.recovered.append(f"{op.key}={value}")
        elif present:
            tally["acked_present"] += 1
        else:
            tally["superseded_absent"] += 1
    for key, values in sorted(final_values.items()):
        verdict.unexpected.extend(f"{key}={value} (never written)"
                                  for value in sorted(values - set(puts)))
        tally["deleted_keys" if not values else "keys"] += 1
        if len(values) > 1:
            tally["keys_with_siblings"] += 1
    tally["unreadable_keys"] = sum(1 for read in final.values() if read.error)
    verdict.final = dict(tally)
    return verdict


def check_deletes(history: Sequence[Op], final: dict[str, FinalRead]) -> Verdict:
    """Each key is read, then re-written with a fresh value or deleted, with the read's
    context: ``seen`` of a write or delete holds the values that read returned, which
    the write supersedes (a delete writes a tombstone over them).

    A key's expected state follows the acknowledged operations: a value whose write was
    acknowledged must be in the final read unless an operation that may have taken
    effect (``ok`` or ``info``) superseded it (else it is **lost**). A final value is
    **unexpected** if no write of it could have taken effect, or if it was
    **resurrected**: an acknowledged delete (or re-write) superseded it, and values are
    never written twice. ``info`` writes found at the end are counted as recovered."""
    verdict = Verdict("deletes", op_counts(history))
    writes = {op.element: op for op in history if op.kind == "write"}
    maybe_superseded = {value for op in history if op.kind in ("write", "delete")
                        and op.outcome in (OK, INFO) for value in op.seen}
    deleted = {value for op in history if op.kind == "delete" and op.outcome == OK
               for value in op.seen}
    overwritten = {value for op in history if op.kind == "write" and op.outcome == OK
                   for value in op.seen}
    tally: Counter[str] = Counter()
    for key, read in sorted(final.items()):
        ours = [op for op in writes.values() if op.key == key]
        if read.error:
            tally["unreadable_keys"] += 1
            verdict.unverified.extend(f"{key}:{op.element}" for op in ours
                                      if op.outcome == OK)
            continue
        present = set(read.values)
        tally["keys_found" if present else "keys_absent"] += 1
        for value in sorted(present):
            op = writes.get(value)
            if op is None or op.key != key:
                verdict.unexpected.append(f"{key}:{value} (never written)")
            elif op.outcome == FAIL:
                verdict.unexpected.append(f"{key}:{value} (its write failed)")
            elif value in deleted:
                verdict.unexpected.append(f"{key}:{value} (resurrected: its delete was "
                                          "acknowledged)")
            elif value in overwritten:
                verdict.unexpected.append(f"{key}:{value} (resurrected: an acknowledged "
                                          "write replaced it)")
        for op in ours:
            if op.element in present:
                tally["info_present" if op.outcome == INFO else "present"] += 1
                if op.outcome == INFO:
                    verdict.recovered.append(f"{key}:{op.element}")
            elif op.outcome == OK and op.element not in maybe_superseded:
                verdict.lost.append(f"{key}:{op.element}")
        if len(present) > 1:
            tally["with_siblings"] += 1
    verdict.siblings = {"final_keys_with_siblings": tally.pop("with_siblings", 0)}
    verdict.final = dict(tally)
    return verdict
