"""``/v1/ring``'s fallbacks: which unhealthy primary each partition has and who stands in."""

from __future__ import annotations

from dynago.http.ring_api import ring_fallbacks
from dynago.kv.fallback import for_partition
from dynago.kv.ring import Ring, RingMember

NAMES = ("a", "b", "c", "d", "e")


def ring() -> Ring:
    return Ring.build([RingMember(n) for n in NAMES], partitions=16, n_val=3)


def test_ring_fallbacks_name_each_unhealthy_primary_and_its_stand_in() -> None:
    r = ring()
    status = {"a": "alive", "b": "suspect", "c": "alive", "d": "alive", "e": "alive"}
    found = ring_fallbacks(r, status.__getitem__)
    with_b = [p for p in range(16) if "b" in r.preference_list(p)]
    assert sorted(f["partition"] for f in found) == with_b
    for f in found:
        assert f["owner"] == "b"
        assert f["fallback"] not in r.preference_list(f["partition"])
        # The same stand-in the coordinator writes to (dynago.kv.fallback).
        sloppy = for_partition(r, f["partition"], lambda n: status[n] == "alive")
        assert sloppy.owner_of(f["fallback"]) == "b"


def test_ring_fallbacks_none_when_every_member_is_alive() -> None:
    assert ring_fallbacks(ring(), lambda _n: "alive") == []


def test_ring_fallbacks_report_no_stand_in_when_none_is_left() -> None:
    r = Ring.build([RingMember(n) for n in NAMES[:3]], partitions=8, n_val=3)
    found = ring_fallbacks(r, lambda n: "failed" if n == "c" else "alive")
    assert len(found) == 8 and {f["fallback"] for f in found} == {None}
