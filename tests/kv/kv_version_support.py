"""Random histories of one key over 2–5 replicas, for the version law tests.

A history is a random sequence of client writes coordinated by random replicas (without
context, with the context of some earlier read of any replica, or as a plain overwrite;
values or tombstones) and of syncs (one- or two-way merges) between replicas. It records
every write's dot and the clock it covered, and a snapshot of every object any replica
held, so tests can check an oracle: which versions each object must hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from dynago.kv.model import Content
from dynago.kv.version import EMPTY, Clock, Object, context_of, coordinate, merge

Dot = tuple[str, int]


@dataclass(frozen=True)
class Write:
    """One acknowledged write: its content and the clock its context covered."""

    content: Content
    cover: Clock


@dataclass
class History:
    replicas: list[str]
    objects: dict[str, Object]
    snapshots: list[Object] = field(default_factory=list)
    writes: dict[Dot, Write] = field(default_factory=dict)


def covered(clock: Clock, dot: Dot) -> bool:
    return dict(clock).get(dot[0], 0) >= dot[1]


def expected_dots(history: History, obj: Object) -> set[Dot]:
    """The oracle: the writes ``obj`` has seen that no write it has seen superseded (a
    write supersedes what its context covered)."""
    seen = [dot for dot in history.writes if covered(obj.clock, dot)]
    return {dot for dot in seen
            if not any(covered(history.writes[w].cover, dot) for w in seen)}


contents = st.builds(
    Content,
    value=st.binary(max_size=8),
    content_type=st.sampled_from(["application/octet-stream", "text/plain", "ünï/cødé"]),
    meta=st.lists(st.tuples(st.text(max_size=4), st.text(max_size=6)), max_size=2)
    .map(lambda pairs: tuple(sorted(pairs))),
    deleted=st.booleans(),
    last_modified_us=st.integers(-(2**63), 2**63 - 1),
)


@st.composite
def histories(draw: st.DrawFn, max_steps: int = 25) -> History:
    count = draw(st.integers(2, 5))
    replicas = [f"node-{i}" for i in range(count)]
    history = History(replicas, {name: EMPTY for name in replicas}, [EMPTY])
    for _ in range(draw(st.integers(0, max_steps))):
        if draw(st.integers(0, 2)) < 2:  # two writes for each sync, on average
            name = draw(st.sampled_from(replicas))
            obj = history.objects[name]
            how = draw(st.sampled_from(["none", "read", "overwrite"]))
            context = (context_of(draw(st.sampled_from(history.snapshots)))
                       if how == "read" else None)
            content = draw(contents)
            result = coordinate(obj, context, name, content, overwrite=how == "overwrite")
            dot = (name, dict(result.clock)[name])
            history.writes[dot] = Write(content, obj.clock if how == "overwrite"
                                        else (context or ()))
            history.objects[name] = result
            history.snapshots.append(result)
        else:
            source, target = draw(st.permutations(replicas))[:2]
            merged = merge(history.objects[target], history.objects[source])
            history.objects[target] = merged
            if draw(st.booleans()):
                history.objects[source] = merged
            history.snapshots.append(merged)
    return history


@st.composite
def objects_of_one_key(draw: st.DrawFn, n: int) -> list[Object]:
    """``n`` objects that replicas of one key held (from one history)."""
    history = draw(histories())
    return [draw(st.sampled_from(history.snapshots)) for _ in range(n)]
