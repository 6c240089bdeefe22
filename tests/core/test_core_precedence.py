"""Table tests of record precedence, record validity and address parsing.

Rules under test (dynago/core/member.py and dynago/core/address.py):

* Records of one member are totally ordered by ``(incarnation, status rank, address)``:
  a higher incarnation wins; at equal incarnation SUSPECT beats ALIVE, FAILED beats
  SUSPECT and LEFT beats everything (so LEFT is final for that incarnation).
* ``Member.problem()`` says why a record may not enter a member map.
* ``parse_address`` splits ``HOST:PORT`` (IPv6 in brackets) or raises AddressError.
"""

from __future__ import annotations

import itertools
import random

import pytest

from dynago.config import Config
from dynago.core import (
    AddressError,
    EventKind,
    Member,
    MembershipCore,
    Publish,
    Status,
    format_address,
    merge_member,
    parse_address,
)
from dynago.core.member import MAX_INCARNATION, MAX_NAME_LENGTH

ADDRESS = "127.0.0.1:7001"
RANKED = [Status.ALIVE, Status.SUSPECT, Status.FAILED, Status.LEFT]


def _rec(incarnation: int, status: Status, address: str = ADDRESS) -> Member:
    return Member("m", address, incarnation, status)


# ---------------------------------------------------------------------- precedence


@pytest.mark.parametrize(("old_status", "new_status"), list(itertools.product(RANKED, RANKED)))
def test_precedence_higher_incarnation_wins_regardless_of_status(
    old_status: Status, new_status: Status
) -> None:
    """member.py: a higher incarnation wins, whatever either status is."""
    old, new = _rec(4, old_status), _rec(5, new_status)
    assert new.supersedes(old)
    assert not old.supersedes(new)
    assert merge_member(old, new) == new
    assert merge_member(new, old) == new


@pytest.mark.parametrize(("lower", "higher"), list(itertools.combinations(RANKED, 2)))
def test_precedence_equal_incarnation_status_rank(lower: Status, higher: Status) -> None:
    """member.py / SWIM §4.2: at equal incarnation ALIVE < SUSPECT < FAILED < LEFT."""
    weak, strong = _rec(3, lower), _rec(3, higher)
    assert strong.supersedes(weak)
    assert not weak.supersedes(strong)
    assert merge_member(weak, strong) == strong
    assert merge_member(strong, weak) == strong


def test_precedence_status_values_are_ranks() -> None:
    """member.py: the integer value of a Status is its precedence at equal incarnation."""
    assert [int(status) for status in RANKED] == [0, 1, 2, 3]
    assert sorted(Status) == RANKED
    assert [status.is_live for status in RANKED] == [True, True, False, False]


@pytest.mark.parametrize("status", RANKED)
def test_precedence_equal_record_does_not_supersede_itself(status: Status) -> None:
    """member.py: supersedes is strict, so a repeated record changes nothing."""
    record = _rec(2, status)
    assert not record.supersedes(record)
    assert merge_member(record, record) == record


def test_precedence_address_breaks_ties_only() -> None:
    """member.py: the address only breaks ties between otherwise equal records."""
    low, high = _rec(1, Status.ALIVE, "127.0.0.1:7001"), _rec(1, Status.ALIVE, "127.0.0.1:7002")
    assert high.supersedes(low)
    assert merge_member(low, high) == merge_member(high, low) == high
    # A higher status or incarnation wins whatever the addresses are.
    assert _rec(1, Status.SUSPECT, "127.0.0.1:7001").supersedes(high)
    assert _rec(2, Status.ALIVE, "127.0.0.1:7001").supersedes(high)


@pytest.mark.parametrize("status", [Status.ALIVE, Status.SUSPECT, Status.FAILED])
def test_precedence_left_is_final_for_its_incarnation(status: Status) -> None:
    """member.py: LEFT beats everything at its incarnation, so it is final for it."""
    left = _rec(7, Status.LEFT)
    assert merge_member(left, _rec(7, status)) == left
    assert merge_member(_rec(7, status), left) == left


@pytest.mark.parametrize("status", RANKED)
def test_precedence_left_undone_by_higher_incarnation(status: Status) -> None:
    """member.py: a higher incarnation (a new life of the member) wins over LEFT."""
    left, later = _rec(7, Status.LEFT), _rec(8, status)
    assert merge_member(left, later) == later


def test_precedence_left_final_in_core() -> None:
    """member.py via MembershipCore: an ALIVE at the LEFT incarnation does not undo LEFT;
    an ALIVE at a higher incarnation does (and the member joins again)."""
    core = MembershipCore("self", "127.0.0.1:9000", Config.local(), random.Random(0), 0.0)
    core.add(Member("m", ADDRESS, 7, Status.ALIVE), 0.0)
    core.add(Member("m", ADDRESS, 7, Status.LEFT), 1.0)

    assert core.add(Member("m", ADDRESS, 7, Status.ALIVE), 2.0) == []
    held = core.get("m")
    assert held is not None and held.member == Member("m", ADDRESS, 7, Status.LEFT)
    assert "m" not in core.live_peer_names()

    effects = core.add(Member("m", ADDRESS, 8, Status.ALIVE), 3.0)
    held = core.get("m")
    assert held is not None and held.member == Member("m", ADDRESS, 8, Status.ALIVE)
    assert "m" in core.live_peer_names()
    assert [e.event.kind for e in effects if isinstance(e, Publish)] == [EventKind.JOINED]


# ---------------------------------------------------------------------- Member.problem


@pytest.mark.parametrize(
    "member",
    [
        Member("a", "127.0.0.1:7001"),
        Member("n" * MAX_NAME_LENGTH, "127.0.0.1:7001"),
        Member("node-1.example_x", "[::1]:7001"),
        Member("b", "localhost:80"),
        Member("c", "127.0.0.1:1"),
        Member("c", "127.0.0.1:65535"),
        Member("d", "127.0.0.1:7001", 0, Status.LEFT),
        Member("d", "127.0.0.1:7001", MAX_INCARNATION, Status.SUSPECT),
    ],
    ids=repr,
)
def test_member_problem_accepts_valid(member: Member) -> None:
    """member.py: a record within every rule has no problem."""
    assert member.problem() is None


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        (Member("", "127.0.0.1:7001"), "name"),
        (Member("n" * (MAX_NAME_LENGTH + 1), "127.0.0.1:7001"), "name"),
        (Member("a b", "127.0.0.1:7001"), "whitespace"),
        (Member(" a", "127.0.0.1:7001"), "whitespace"),
        (Member("a\t", "127.0.0.1:7001"), "whitespace"),
        (Member("a\nb", "127.0.0.1:7001"), "whitespace"),
        (Member("a\u00a0b", "127.0.0.1:7001"), "whitespace"),
        (Member("a\x00", "127.0.0.1:7001"), "unprintable"),
        (Member("a", "127.0.0.1"), "address"),
        (Member("a", "127.0.0.1:0"), "address"),
        (Member("a", "127.0.0.1:70000"), "address"),
        (Member("a", "::1:7001"), "address"),
        (Member("a", ""), "address"),
        (Member("a", ":7001"), "address"),
        (Member("a", "127.0.0.1:7001", -1), "incarnation"),
        (Member("a", "127.0.0.1:7001", MAX_INCARNATION + 1), "incarnation"),
        (Member("a", "127.0.0.1:7001", 0, 7), "status"),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_member_problem_rejects_invalid(member: Member, fragment: str) -> None:
    """member.py: Member.problem() says why a record may not enter a member map."""
    problem = member.problem()
    assert isinstance(problem, str)
    assert fragment in problem


@pytest.mark.parametrize("address", ["127.0.0.1:\u00b2", "127.0.0.1:7\u00b9"], ids=ascii)
def test_member_problem_reports_port_of_non_ascii_digits(address: str) -> None:
    """member.py: problem() returns a reason, never raises, for any address string.
    (Superscript digits pass str.isdigit() but int() refuses them.)"""
    problem = Member("a", address).problem()
    assert isinstance(problem, str)
    assert "address" in problem


# ---------------------------------------------------------------------- parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7001", ("127.0.0.1", 7001)),
        ("[::1]:7001", ("::1", 7001)),
        ("localhost:80", ("localhost", 80)),
        ("node.example.com:65535", ("node.example.com", 65535)),
        ("10.0.0.1:1", ("10.0.0.1", 1)),
        ("[fe80::1]:443", ("fe80::1", 443)),
    ],
)
def test_parse_address_accepts_host_port(text: str, expected: tuple[str, int]) -> None:
    """address.py: HOST:PORT, with an IPv6 host in brackets, splits into (host, port)."""
    assert parse_address(text) == expected
    assert format_address(*expected) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "127.0.0.1",
        "localhost",
        "127.0.0.1:",
        ":7001",
        "127.0.0.1:0",
        "127.0.0.1:70000",
        "127.0.0.1:65536",
        "127.0.0.1:123456",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:http",
        "127.0.0.1: 80",
        "::1:7001",
        "::1",
        "[::1]7001",
        "[::1]",
        "[::1",
        "[]:7001",
        "ho st:80",
        "user@host:80",
        "host/path:80",
        "h" * 300 + ":80",
        # Unicode digits pass str.isdigit(): they must be refused too.
        "127.0.0.1:\u00b2",
        "127.0.0.1:\uff17\uff10\uff10\uff11",
        "127.0.0.1:\u0667\u0660\u0660\u0661",
    ],
    ids=ascii,
)
def test_parse_address_rejects_bad_with_address_error(text: str) -> None:
    """address.py: anything that is not HOST:PORT with port 1..65535 raises AddressError
    with a message saying what is wrong."""
    with pytest.raises(AddressError) as caught:
        parse_address(text)
    assert str(caught.value)


def test_parse_address_port_zero_only_when_allowed() -> None:
    """address.py: port 0 is accepted only with allow_port_zero (an address to bind)."""
    assert parse_address("0.0.0.0:0", allow_port_zero=True) == ("0.0.0.0", 0)
    with pytest.raises(AddressError, match="outside 1..65535"):
        parse_address("0.0.0.0:0")


def test_parse_address_error_is_value_error() -> None:
    """address.py: AddressError is a ValueError, so callers may catch either."""
    assert issubclass(AddressError, ValueError)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "fe80::1", "a.b.c"])
@pytest.mark.parametrize("port", [1, 80, 7001, 65535])
def test_format_address_inverse_of_parse(host: str, port: int) -> None:
    """address.py: format_address is the inverse of parse_address."""
    assert parse_address(format_address(host, port)) == (host, port)
