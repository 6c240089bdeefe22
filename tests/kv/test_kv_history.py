"""dynago.kv.history's rewrite checker and recovered writes on hand-made histories: a
value a write saw may go, one no write saw must stay, one an acknowledged write saw must
never come back."""

from __future__ import annotations

from dynago.kv.history import FAIL, INFO, OK, FinalRead, Op, check_rewrite, check_set


def put(key: str, value: str, outcome: str, seen: tuple[str, ...] = ()) -> Op:
    return Op(0, 0, "write", key, outcome, 0.0, 0.01, element=value, seen=seen)


def delete(key: str, outcome: str, seen: tuple[str, ...]) -> Op:
    return Op(0, 0, "delete", key, outcome, 0.0, 0.01, seen=seen)


def test_check_rewrite_overwritten_and_deleted_values_may_go() -> None:
    history = [put("k", "v1", OK), put("k", "v2", OK, seen=("v1",)),
               delete("k", OK, seen=("v2",)), put("j", "w1", OK),
               put("j", "w2", INFO, seen=("w1",))]
    final = {"k": FinalRead("k", False), "j": FinalRead("j", True, ("w2",))}
    verdict = check_rewrite(history, final)
    assert verdict.valid and not verdict.unexpected
    assert verdict.recovered == ["j=w2"]  # indeterminate, and it took effect
    assert verdict.final["deleted_keys"] == 1
    assert verdict.ops["delete"]["ok"] == 1


def test_check_rewrite_value_no_write_saw_is_lost_if_absent() -> None:
    # v2 was written without having seen v1 (a concurrent sibling): v1 must survive.
    history = [put("k", "v1", OK), put("k", "v2", OK)]
    verdict = check_rewrite(history, {"k": FinalRead("k", True, ("v2",))})
    assert verdict.lost == ["k=v1"]
    assert not verdict.valid


def test_check_rewrite_value_an_acknowledged_write_saw_must_not_come_back() -> None:
    history = [put("k", "v1", OK), delete("k", OK, seen=("v1",)), put("k", "v3", FAIL),
               put("j", "w1", OK)]
    final = {"k": FinalRead("k", True, ("v1", "v3", "zz")),
             "j": FinalRead("j", False, error="503")}
    verdict = check_rewrite(history, final)
    assert verdict.unexpected == [
        "k=v1 (came back after an acknowledged write superseded it)",
        "k=v3 (its write failed)", "k=zz (never written)"]
    assert verdict.unverified == ["j=w1"]


def test_check_set_counts_indeterminate_elements_found_as_recovered() -> None:
    history = [Op(0, 0, "write", "s", OK, 0.0, 0.1, element="a"),
               Op(0, 0, "write", "s", INFO, 0.2, 0.3, element="b"),
               Op(0, 0, "write", "s", INFO, 0.4, 0.5, element="c")]
    verdict = check_set(history, {"s": FinalRead("s", True, ("a,b",))})
    assert verdict.valid
    assert verdict.recovered == ["s:b"]
    assert verdict.as_dict()["recovered_count"] == 1
