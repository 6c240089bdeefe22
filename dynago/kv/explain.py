"""``dynago kv explain``: which nodes hold which versions of one key, and how they got
them. The wire messages (KvExplain / KvExplainReply) and the pure assembly of the answer.

The explaining node sends ``KvExplain`` to every node of the key's preference list (and,
on a small ring, to every other member, which may hold a hint for the key) and reads
its own store the same way. Each node answers ``KvExplainReply``: its local copy of the
key (the encoded object, or none), the write history the StorageActor remembers for it
(dynago.storage.history) and every hint it holds for the key on behalf of an owner
named in the request (engine keys ``b"\\x00h\\x00" + owner + b"\\x00" + storage_key``).
``explain_nodes`` then merges every copy and says, per node, what it holds and whether
it is behind the merged value (lacks a write some other copy has). Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dynago.kv import fallback, version
from dynago.kv.model import ObjectKey

MAX_OWNERS = 16
"""Most owners one KvExplain may name (hints looked up per owner)."""

MAX_HISTORY = 64
"""Most history records one KvExplainReply may carry."""

MAX_HINTS = 16
"""Most hints one KvExplainReply may carry."""

PREVIEW_BYTES = 256
"""Most bytes of a sibling's value an explain answer shows (it is about versions)."""


def hint_key(owner: str, key: ObjectKey) -> bytes:
    """The engine key of the hint a fallback holds for ``owner``'s copy of ``key``
    (dynago.kv.fallback names hints)."""
    return fallback.hint_key(owner, key.storage_key())


@dataclass(frozen=True, slots=True)
class KvExplain:
    """Explaining node → any node: send back your copy of ``key``, its write history and
    the hints you hold for it on behalf of ``owners``."""

    request_id: int
    key: ObjectKey
    owners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One remembered write (dynago.storage.history.WriteRecord on the wire)."""

    at: float
    how: str
    peer: str
    size: int


@dataclass(frozen=True, slots=True)
class HintCopy:
    """A hint held for ``owner``: the stored bytes (the hints' own record format)."""

    owner: str
    data: bytes


@dataclass(frozen=True, slots=True)
class KvExplainReply:
    """Any node → explaining node: the copy of KvExplain ``request_id``'s key held here
    (None: none), its history (oldest first), its hints, or an error."""

    request_id: int
    obj: bytes | None
    history: tuple[HistoryEntry, ...] = ()
    hints: tuple[HintCopy, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class NodeAnswer:
    """What one asked node said (``reply``), or why nothing came (``missing``:
    "no answer", "unreachable")."""

    reply: KvExplainReply | None
    missing: str = ""


def _preview(value: bytes) -> dict[str, Any]:
    shown = value[:PREVIEW_BYTES]
    try:
        return {"value": shown.decode("utf-8"), "value_encoding": "utf-8",
                "value_bytes": len(value), "truncated": len(value) > PREVIEW_BYTES}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(shown).decode(), "value_encoding": "base64",
                "value_bytes": len(value), "truncated": len(value) > PREVIEW_BYTES}


def object_json(obj: version.Object) -> dict[str, Any]:
    """An object's causal clock and standing versions (siblings with their dots)."""
    return {"clock": [[replica, counter] for replica, counter in obj.clock],
            "siblings": [{"vtag": version.vtag(v), "dot": [v.replica, v.counter],
                          "deleted": v.content.deleted,
                          "last_modified_us": v.content.last_modified_us,
                          **_preview(v.content.value)} for v in obj.versions]}


def _decoded(data: bytes | None) -> version.Object | None:
    """``data`` as an object; None for none. ValueError when malformed."""
    return None if data is None else version.decode(data)


def _hint_object(data: bytes) -> version.Object | None:
    """A hint's object if its record is an encoded object; None for another format."""
    try:
        return version.decode(data)
    except ValueError:
        return None


def explain_nodes(preflist: Sequence[str], answers: Mapping[str, NodeAnswer]
                  ) -> dict[str, Any]:
    """The per-node part of an explain answer.

    Args:
        preflist: the key's preference list (its primaries, in order).
        answers: every node asked (the preference list's and any other) → its answer.

    Returns:
        ``{"merged": {clock, siblings} | None, "nodes": [row, ...], "malformed": int}``:
        one row per node asked, preference list first, with ``node``, ``primary``,
        ``status`` ("holds", "not found", "error", "malformed", "no answer",
        "unreachable"), ``behind`` (its copy lacks something of the merged value; None
        when it said nothing), ``object`` ({clock, siblings} or None), ``history``
        ([{at, how, peer, size}]) and ``hints`` ([{owner, object | None, behind}]).
        ``malformed`` counts copies that did not decode (shown, left out of the merge).
    """
    copies: dict[str, version.Object | None] = {}
    hint_objects: dict[tuple[str, str], version.Object | None] = {}
    malformed = 0
    merged: version.Object | None = None
    for node, answer in answers.items():
        reply = answer.reply
        if reply is None or reply.error:
            continue
        try:
            copies[node] = obj = _decoded(reply.obj)
        except ValueError:
            malformed += 1
            continue
        for hint in reply.hints:
            hint_objects[(node, hint.owner)] = h = _hint_object(hint.data)
            if h is not None:
                merged = h if merged is None else version.merge(merged, h)
        if obj is not None:
            merged = obj if merged is None else version.merge(merged, obj)

    def behind(obj: version.Object | None) -> bool:
        if merged is None:
            return False
        return obj is None or not version.descends(obj.clock, merged.clock)

    order = list(preflist) + sorted(set(answers) - set(preflist))
    rows = []
    for node in order:
        if node not in answers:
            continue
        answer = answers[node]
        row: dict[str, Any] = {"node": node, "primary": node in preflist, "behind": None,
                               "object": None, "history": [], "hints": []}
        reply = answer.reply
        if reply is None:
            row["status"] = answer.missing or "no answer"
        elif reply.error:
            row.update(status="error", error=reply.error)
        elif node not in copies:
            row["status"] = "malformed"
        else:
            obj = copies[node]
            row.update(status="holds" if obj is not None else "not found",
                       behind=behind(obj),
                       object=object_json(obj) if obj is not None else None)
        if reply is not None:
            row["history"] = [{"at": e.at, "how": e.how, "peer": e.peer, "size": e.size}
                              for e in reply.history]
            for hint in reply.hints:
                h = hint_objects.get((node, hint.owner))
                row["hints"].append({"owner": hint.owner, "bytes": len(hint.data),
                                     "object": object_json(h) if h is not None else None,
                                     "behind": behind(h) if h is not None else None})
        rows.append(row)
    return {"merged": object_json(merged) if merged is not None else None, "nodes": rows,
            "malformed": malformed}
