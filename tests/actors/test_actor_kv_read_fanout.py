"""Gets with ``read_fanout = "quorum"`` (dynago.actors.kv_reads): a get asks R replicas,
this node first; the others only when one of those fails or after
``speculative_read_s``; the answer is the same quorum read as with every replica asked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from test_actor_kv import (  # tests/actors is on sys.path under pytest
    ME,
    TIMEOUT_S,
    Reply,
    eventually,
    key_where,
    kv_harness,
    members,
    routed,
)

from dynago.actors.kv_messages import ClientGet, GetKvStats
from dynago.config import ConfigError
from dynago.kv import version
from dynago.kv.config import KvConfig
from dynago.kv.messages import ReplicaGet, ReplicaGetReply, ReplicaPut
from dynago.kv.model import Content, GetReply, Quorum

SPECULATIVE_S = 0.05


@pytest.fixture
def harness() -> Iterator[dict[str, Any]]:
    yield kv_harness(KvConfig(request_timeout_s=TIMEOUT_S, read_fanout="quorum",
                              speculative_read_s=SPECULATIVE_S))
    pykka.ActorRegistry.stop_all(timeout=5)


def _get(h: dict[str, Any], r: int = 2) -> tuple[Reply, Any]:
    ring = members(h, "b", "c")
    key = key_where(ring, lambda p: ME in p)
    reply = Reply()
    h["kv"].tell(ClientGet(key, Quorum(r=r), False, reply))
    return reply, ring.preference_list_for(key)


def _asked(h: dict[str, Any], count: int) -> list[tuple[str, ReplicaGet]]:
    sent = h["sent"]
    return eventually(lambda: sent.of(ReplicaGet) if len(sent.of(ReplicaGet)) == count
                      else None, f"{count} ReplicaGet(s)")


def _stats(h: dict[str, Any]) -> dict[str, int]:
    result: dict[str, int] = h["kv"].ask(GetKvStats(), timeout=5)
    return result


def test_quorum_fanout_asks_r_replicas_this_node_first(harness: dict[str, Any]) -> None:
    reply, preflist = _get(harness)
    (to, ask), = _asked(harness, 1)  # this node reads locally; one other is asked
    assert to == next(n for n in preflist if n != ME)
    obj = version.coordinate(version.EMPTY, None, to, Content(b"v"))
    routed(harness, to, ReplicaGetReply(ask.request_id, version.encode(obj)))
    result = reply.get()
    assert isinstance(result, GetReply)
    assert [s.content.value for s in result.siblings] == [b"v"]
    # Done with two replicas: the third was never asked, nothing waits for it, and read
    # repair covered the replicas asked (the local store, which lacked the object).
    harness["scheduler"].advance(SPECULATIVE_S * 2)
    eventually(lambda: _stats(harness)["kv_requests_in_flight"] == 0, "the get ended")
    assert len(harness["sent"].of(ReplicaGet)) == 1
    assert _stats(harness).get("kv_speculative_reads", 0) == 0
    assert not harness["sent"].of(ReplicaPut)  # the local repair needs no message


def test_quorum_fanout_asks_the_others_after_the_speculative_delay(
        harness: dict[str, Any]) -> None:
    reply, _preflist = _get(harness)
    (first, _ask), = _asked(harness, 1)
    assert not reply.results
    harness["scheduler"].advance(SPECULATIVE_S * 1.5)  # the asked replica is slow
    asks = _asked(harness, 2)
    second, ask = asks[1]
    assert second not in (first, ME)
    obj = version.coordinate(version.EMPTY, None, second, Content(b"late"))
    routed(harness, second, ReplicaGetReply(ask.request_id, version.encode(obj)))
    assert [s.content.value for s in reply.get().siblings] == [b"late"]
    assert _stats(harness)["kv_speculative_reads"] == 1


def test_quorum_fanout_asks_the_others_at_once_when_one_fails(
        harness: dict[str, Any]) -> None:
    reply, _preflist = _get(harness)
    (first, ask), = _asked(harness, 1)
    routed(harness, first, ReplicaGetReply(ask.request_id, None, error="overloaded"))
    asks = _asked(harness, 2)  # no clock advanced: the failure released it
    second, ask2 = asks[1]
    routed(harness, second, ReplicaGetReply(ask2.request_id, None))
    result = reply.get()
    assert isinstance(result, GetReply) and result.siblings == ()  # not found on two
    assert _stats(harness).get("kv_speculative_reads", 0) == 0


def test_quorum_fanout_with_r_equal_n_asks_everyone(harness: dict[str, Any]) -> None:
    _get(harness, r=3)
    assert {n for n, _ in _asked(harness, 2)} == {"b", "c"}


def test_read_fanout_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="read_fanout"):
        KvConfig(read_fanout="some").validate(1 << 24)
    with pytest.raises(ConfigError, match="speculative_read_s"):
        KvConfig(read_fanout="quorum", speculative_read_s=5.0,
                 request_timeout_s=5.0).validate(1 << 24)
    with pytest.raises(ConfigError, match="speculative_read_s"):
        KvConfig(speculative_read_s=0.0).validate(1 << 24)
    assert KvConfig(read_fanout="quorum").validate(1 << 24).read_fanout == "quorum"
    # A short request timeout does not trip over a knob only "quorum" uses.
    assert KvConfig(request_timeout_s=0.01).validate(1 << 24).request_timeout_s == 0.01
