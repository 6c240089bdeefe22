"""Small functions for talking to a MembershipActor from outside any actor.

They block the calling thread (with a timeout), so call them from the CLI, the admin API
or tests, never from inside an actor.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import pykka

from dynago.actors.messages import (
    Add,
    GetHistory,
    GetStats,
    Leave,
    MemberView,
    Merge,
    Rejected,
    Remove,
    SetTags,
    Snapshot,
    Subscribe,
    Unsubscribe,
    UpdateTags,
    WatchLocalHealth,
)
from dynago.core.history import HistoryEntry
from dynago.core.member import Member
from dynago.core.messages import EventKind, MemberEvent
from dynago.core.tags import Tags, make_tags

Ref = pykka.ActorRef[Any]


def snapshot(
    ref: Ref, *, live_only: bool = False, timeout_s: float = 5.0
) -> tuple[MemberView, ...]:
    """The member map, sorted by name; ``live_only`` keeps alive and suspect members."""
    return cast(tuple[MemberView, ...],
                _checked(ref.ask(Snapshot(include_dead=not live_only), timeout=timeout_s)))


def _checked(answer: Any) -> Any:
    if isinstance(answer, Rejected):
        raise answer.error
    return answer


def add(ref: Ref, member: Member, *, timeout_s: float = 5.0) -> None:
    """Merge one record. Raises ValueError if it is invalid (and nothing changes)."""
    _checked(ref.ask(Add(member), timeout=timeout_s))


def merge(ref: Ref, members: Iterable[Member], *, timeout_s: float = 5.0) -> None:
    """Merge records, all or nothing. Raises ValueError if any is invalid."""
    _checked(ref.ask(Merge(tuple(members)), timeout=timeout_s))


def remove(ref: Ref, name: str, *, timeout_s: float = 5.0) -> None:
    """Declare ``name`` failed (it refutes if alive). Raises KeyError if unknown,
    ValueError for this node itself."""
    _checked(ref.ask(Remove(name), timeout=timeout_s))


Subscriber = Callable[[MemberEvent], None] | Ref
"""A callable (runs on the membership actor's thread: it must not block) or an actor ref
(it is told each MemberEvent)."""


def subscribe(
    ref: Ref,
    subscriber: Subscriber,
    *,
    kinds: Iterable[EventKind] | None = None,
    timeout_s: float = 5.0,
) -> int:
    """Receive every later membership event (only ``kinds``, if given: joined, changed,
    suspected, failed, left). Returns a token for ``unsubscribe``.

    Events come in the order the node saw the changes. A callable that raises is
    unsubscribed (and the error logged); the node goes on.
    """
    message = Subscribe(subscriber, _kinds(kinds))
    return cast(int, _checked(ref.ask(message, timeout=timeout_s)))


def subscribe_with_snapshot(
    ref: Ref,
    subscriber: Subscriber,
    *,
    kinds: Iterable[EventKind] | None = None,
    timeout_s: float = 5.0,
) -> tuple[int, tuple[MemberView, ...]]:
    """Like ``subscribe``, and also return the member map (every record) as it was at the
    moment of subscribing: each later change arrives as an event, none is missed."""
    message = Subscribe(subscriber, _kinds(kinds), with_snapshot=True)
    return cast(tuple[int, tuple[MemberView, ...]],
                _checked(ref.ask(message, timeout=timeout_s)))


def _kinds(kinds: Iterable[EventKind] | None) -> frozenset[EventKind] | None:
    if kinds is None:
        return None
    chosen = frozenset(kinds)
    for kind in chosen:
        if not isinstance(kind, EventKind):
            raise TypeError(f"{kind!r} is not an EventKind")
    return chosen


def watch_local_health(ref: Ref, watcher: Callable[[int], None]) -> None:
    """Have ``watcher`` told this node's local health score (0: healthy) now and at each
    change, on the membership actor's thread: it must not block (tell an actor)."""
    ref.tell(WatchLocalHealth(watcher))


def unsubscribe(ref: Ref, token: int, *, timeout_s: float = 5.0) -> None:
    ref.ask(Unsubscribe(token), timeout=timeout_s)


def set_tags(ref: Ref, tags: Mapping[str, str] | Iterable[tuple[str, str]], *,
             timeout_s: float = 5.0) -> None:
    """Replace this node's tags (a mapping or pairs). The node raises its incarnation and
    the change spreads like any other. Raises ValueError (core.tags.TagError) for invalid
    tags, and while the node is leaving; nothing changes then."""
    _checked(ref.ask(SetTags(make_tags(tags)), timeout=timeout_s))


def update_tags(ref: Ref, patch: Mapping[str, str | None], *,
                timeout_s: float = 5.0) -> Tags:
    """Change this node's tags by a merge patch (a string sets a key, None removes it), in
    one step on the actor. Returns the new tags. Raises ValueError like ``set_tags``."""
    message = UpdateTags(tuple(patch.items()))
    return cast(Tags, _checked(ref.ask(message, timeout=timeout_s)))


def history(ref: Ref, name: str, *, timeout_s: float = 5.0) -> tuple[HistoryEntry, ...]:
    """What this node saw happen to member ``name``, oldest first (core.history). Raises
    KeyError if it neither holds nor remembers such a member."""
    return cast(tuple[HistoryEntry, ...], _checked(ref.ask(GetHistory(name), timeout=timeout_s)))


def stats(ref: Ref, *, timeout_s: float = 5.0) -> dict[str, int]:
    return cast(dict[str, int], _checked(ref.ask(GetStats(), timeout=timeout_s)))


def leave(ref: Ref, *, timeout_s: float = 1.0) -> bool:
    """Announce the leave and wait, at most ``timeout_s``, until it was written to every
    connected peer. Returns True if it was, False if the time ran out first."""
    deadline = time.monotonic() + timeout_s
    peer_futures = cast(list[pykka.Future[Any]],
                        _checked(ref.ask(Leave(), timeout=timeout_s)))
    flushes: list[concurrent.futures.Future[None]] = []
    for future in peer_futures:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            flushes.append(future.get(timeout=remaining))
        except (pykka.Timeout, pykka.ActorDeadError):
            return False
    remaining = max(0.0, deadline - time.monotonic())
    _done, pending = concurrent.futures.wait(flushes, timeout=remaining)
    return not pending
