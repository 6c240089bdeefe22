"""The per-member history is bounded by the node's configuration
(``history_per_member``, ``history_max_members``), and a bound of 0 is refused."""

from __future__ import annotations

import dataclasses

import pytest

from dynago.actors import api
from dynago.config import Config, ConfigError
from dynago.core import EventKind, Member, Status

TIMEOUT_S = 5.0


@pytest.fixture
def config() -> Config:
    return dataclasses.replace(Config.local(), history_per_member=2,
                               history_max_members=3).validate()


def test_history_keeps_the_configured_number_of_changes(membership):
    x = "127.0.0.1:7101"
    api.add(membership, Member("x", x), timeout_s=TIMEOUT_S)
    api.remove(membership, "x", timeout_s=TIMEOUT_S)
    api.add(membership, Member("x", x, 1), timeout_s=TIMEOUT_S)
    api.remove(membership, "x", timeout_s=TIMEOUT_S)
    history = api.history(membership, "x", timeout_s=TIMEOUT_S)
    assert [(e.kind, e.status, e.incarnation) for e in history] == [
        (EventKind.JOINED, Status.ALIVE, 1), (EventKind.FAILED, Status.FAILED, 1)]


def test_history_keeps_the_configured_number_of_members(membership):
    for k in range(4):  # with this node's own history: five members
        api.add(membership, Member(f"m{k}", f"127.0.0.1:{7200 + k}"), timeout_s=TIMEOUT_S)
    kept = [name for name in ("me", "m0", "m1", "m2", "m3")
            if _has_history(membership, name)]
    assert kept == ["m1", "m2", "m3"]


def _has_history(membership, name: str) -> bool:
    return bool(api.history(membership, name, timeout_s=TIMEOUT_S))


@pytest.mark.parametrize("field", ["history_per_member", "history_max_members"])
def test_a_history_bound_of_zero_is_refused(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(Config.lan(), **{field: 0}).validate()
