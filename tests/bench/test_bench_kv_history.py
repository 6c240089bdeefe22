"""Jepsen's rules of bench.kv_history on hand-made histories: what counts as lost,
unexpected, unverified and stale, and which outcomes an HTTP status means."""

from __future__ import annotations

from bench.kv_history import (
    FAIL,
    INFO,
    OK,
    FinalRead,
    Op,
    check_deletes,
    check_set,
    check_unique,
    get_outcome,
    put_outcome,
    recovered,
    stale_reads,
)


def write(key: str, element: str, outcome: str, at: float = 0.0) -> Op:
    return Op(0, 0, "write", key, outcome, at, at + 0.01, element=element)


def read(key: str, seen: tuple[str, ...], at: float, siblings: int = 1) -> Op:
    return Op(1, 1, "read", key, OK, at, at + 0.01, seen=seen, siblings=siblings)


def test_put_and_get_outcomes_follow_the_status() -> None:
    assert [put_outcome(s) for s in (204, 200, 400, 413, 503, 500)] == \
        [OK, OK, FAIL, FAIL, INFO, INFO]
    assert [get_outcome(s) for s in (200, 300, 404, 400, 503)] == [OK, OK, OK, FAIL, INFO]


def test_check_unique_reports_lost_unexpected_and_unverified() -> None:
    history = [write("a", "va", OK), write("b", "vb", OK), write("c", "vc", FAIL),
               write("d", "vd", INFO), write("e", "ve", OK), write("f", "vf", OK)]
    final = {
        "a": FinalRead("a", True, ("va",)),          # fine
        "b": FinalRead("b", False),                   # acknowledged, gone: lost
        "c": FinalRead("c", True, ("vc",)),           # its write failed: unexpected
        "d": FinalRead("d", False),                   # indeterminate: either is legal
        "e": FinalRead("e", True, ("ve", "other")),   # a value never written: unexpected
        "f": FinalRead("f", False, error="503"),      # could not be read: unverified
    }
    verdict = check_unique(history, final, listed=["a", "c", "e", "zz"])
    assert verdict.lost == ["b"]
    assert sorted(verdict.unexpected) == ["c (its write failed)", "e=other",
                                          "zz (listed, never written)"]
    assert verdict.unverified == ["f"]
    assert not verdict.valid
    assert verdict.ops["write"] == {"invoked": 6, "ok": 4, "fail": 1, "info": 1}
    assert verdict.final["info_absent"] == 1


def test_check_unique_is_valid_when_every_acknowledged_key_is_there() -> None:
    history = [write("a", "va", OK), write("b", "vb", INFO)]
    final = {"a": FinalRead("a", True, ("va",)), "b": FinalRead("b", True, ("vb",))}
    verdict = check_unique(history, final)
    assert verdict.valid and not verdict.unexpected
    assert verdict.final == {"found": 2, "info_present": 1}


def test_check_set_unions_siblings_and_finds_lost_elements() -> None:
    history = [write("s", "1", OK), write("s", "2", OK), write("s", "3", INFO),
               write("s", "4", FAIL), read("s", ("1",), 0.5, siblings=2)]
    final = {"s": FinalRead("s", True, ("1,3", "4,9"))}  # two siblings
    verdict = check_set(history, final)
    assert verdict.lost == ["s:2"]
    assert sorted(verdict.unexpected) == ["s:4 (its write failed)", "s:9 (never written)"]
    assert verdict.siblings["reads_with_siblings"] == 1
    assert verdict.siblings["final_siblings"] == 2
    assert not verdict.valid


def test_stale_reads_are_reads_missing_an_element_acknowledged_before_them() -> None:
    history = [write("s", "1", OK, at=0.0),   # acknowledged at 0.01
               write("s", "2", INFO, at=0.0),  # indeterminate: never required
               read("s", ("1",), 0.005),       # concurrent with the ack: may miss it
               read("s", (), 0.005),
               read("s", ("1",), 0.02),        # after the ack, sees it: fine
               read("s", (), 0.03)]            # after the ack, misses it: stale
    assert stale_reads(history) == ["s@0.030 node 1: 1 missed (1)"]


def op(kind: str, key: str, outcome: str, element: str = "",
       seen: tuple[str, ...] = ()) -> Op:
    return Op(0, 0, kind, key, outcome, 0.0, 0.01, element=element, seen=seen)


def test_check_deletes_finds_resurrected_lost_and_recovered_values() -> None:
    history = [op("write", "a", OK, "w1"), op("delete", "a", OK, seen=("w1",)),
               op("write", "b", OK, "w2"), op("write", "b", OK, "w3", seen=("w2",)),
               op("write", "c", OK, "w4"),
               op("write", "d", OK, "w5"), op("delete", "d", INFO, seen=("w5",)),
               op("write", "e", INFO, "w6"), op("write", "e", FAIL, "w7")]
    final = {"a": FinalRead("a", True, ("w1",)),     # deleted, acknowledged: resurrected
             "b": FinalRead("b", True, ("w2", "w3")),  # replaced, acknowledged: resurrected
             "c": FinalRead("c", False),             # acknowledged, never superseded: lost
             "d": FinalRead("d", False),             # its delete may have happened: fine
             "e": FinalRead("e", True, ("w6", "w7", "zz"))}

    verdict = check_deletes(history, final)

    assert verdict.lost == ["c:w4"]
    assert verdict.unexpected == [
        "a:w1 (resurrected: its delete was acknowledged)",
        "b:w2 (resurrected: an acknowledged write replaced it)",
        "e:w7 (its write failed)", "e:zz (never written)"]
    assert recovered(verdict) == 1 and not verdict.passed


def test_check_deletes_passes_when_state_follows_the_acknowledged_operations() -> None:
    history = [op("write", "a", OK, "w1"), op("delete", "a", OK, seen=("w1",)),
               op("write", "a", OK, "w2"), op("write", "b", OK, "w3")]
    final = {"a": FinalRead("a", True, ("w2",)), "b": FinalRead("b", True, ("w3",))}
    verdict = check_deletes(history, final)
    assert verdict.passed and verdict.final == {"keys_found": 2, "present": 2}
