"""dynago.kv.explain: the per-node document (merged value, behind, hints) and the wire
round trip of KvExplain / KvExplainReply with its bounds (dynago.transport.kv_codec)."""

from __future__ import annotations

import pytest

from dynago.kv import version
from dynago.kv.explain import (
    MAX_HISTORY,
    HintCopy,
    HistoryEntry,
    KvExplain,
    KvExplainReply,
    NodeAnswer,
    explain_nodes,
    hint_key,
)
from dynago.kv.model import Content, ObjectKey
from dynago.proto import membership_pb2 as pb
from dynago.transport import codec
from dynago.transport.codec import DecodeError

KEY = ObjectKey("b", "k")


def written(replica: str, value: bytes, base: version.Object = version.EMPTY,
            ) -> version.Object:
    return version.coordinate(base, version.context_of(base), replica, Content(value))


def reply(obj: version.Object | None, *history: HistoryEntry,
          hints: tuple[HintCopy, ...] = ()) -> NodeAnswer:
    return NodeAnswer(KvExplainReply(1, version.encode(obj) if obj is not None else None,
                                     history, hints))


def test_explain_nodes_marks_the_copy_lacking_a_write_behind() -> None:
    first = written("a", b"v1")
    second = written("a", b"v2", first)
    answers = {"a": reply(second, HistoryEntry(1.0, "coordinated", "", 10)),
               "b": reply(first, HistoryEntry(1.0, "replica", "a", 10)),
               "c": reply(None), "d": NodeAnswer(None, "unreachable")}

    doc = explain_nodes(("a", "b", "c"), answers)

    rows = {row["node"]: row for row in doc["nodes"]}
    assert [row["node"] for row in doc["nodes"]] == ["a", "b", "c", "d"]
    assert [s["value"] for s in doc["merged"]["siblings"]] == ["v2"]
    assert (rows["a"]["status"], rows["a"]["behind"]) == ("holds", False)
    assert (rows["b"]["status"], rows["b"]["behind"]) == ("holds", True)
    assert (rows["c"]["status"], rows["c"]["behind"]) == ("not found", True)
    assert (rows["d"]["status"], rows["d"]["behind"], rows["d"]["primary"]) == (
        "unreachable", None, False)
    assert rows["b"]["history"] == [{"at": 1.0, "how": "replica", "peer": "a", "size": 10}]


def test_explain_nodes_merges_a_hint_and_counts_a_malformed_copy() -> None:
    held = written("d", b"v1")
    answers = {"a": reply(None),
               "d": reply(None, hints=(HintCopy("a", version.encode(held)),
                                       HintCopy("b", b"not an object"))),
               "b": NodeAnswer(KvExplainReply(1, b"\xff garbage"))}

    doc = explain_nodes(("a", "b"), answers)

    rows = {row["node"]: row for row in doc["nodes"]}
    assert doc["malformed"] == 1 and rows["b"]["status"] == "malformed"
    assert rows["a"]["behind"] is True  # the hint holds what its owner lacks
    hints = rows["d"]["hints"]
    assert [(h["owner"], h["behind"]) for h in hints] == [("a", False), ("b", None)]
    assert hints[1]["object"] is None and hints[1]["bytes"] == len(b"not an object")


def test_hint_key_is_the_hints_engine_key() -> None:
    assert hint_key("n1", KEY) == b"\x00h\x00n1\x00" + KEY.storage_key()


def test_explain_messages_round_trip_through_the_codec() -> None:
    ask = KvExplain(7, KEY, ("a", "b"))
    answer = KvExplainReply(7, b"obj", (HistoryEntry(1.5, "read repair", "a", 3),),
                            (HintCopy("c", b"h"),), "")
    none = KvExplainReply(8, None, error="storage: broken")
    for message in (ask, answer, none):
        assert codec.decode(codec.encode(message), 1 << 20) == message


def test_explain_reply_over_its_bounds_is_a_decode_error() -> None:
    envelope = pb.Envelope()
    envelope.kv_explain_reply.request_id = 1
    for _ in range(MAX_HISTORY + 1):
        envelope.kv_explain_reply.history.add(at=1.0, how="replica")
    with pytest.raises(DecodeError, match="history"):
        codec.decode(envelope.SerializeToString(), 1 << 20)
    bad = pb.Envelope()
    bad.kv_explain.request_id = 1
    bad.kv_explain.bucket = "b"
    with pytest.raises(DecodeError, match="bucket or key"):
        codec.decode(bad.SerializeToString(), 1 << 20)
