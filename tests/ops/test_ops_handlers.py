"""EventHandlers (``--on-event``): what a handler sees of an event, the bounded queue
that keeps a slow handler from ever blocking the membership actor, the timeout, and
stopping."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dynago.core.member import Member, Status
from dynago.core.messages import EventKind, MemberEvent
from dynago.launch import wait_until
from dynago.ops.handlers import EventHandlers, event_environment, event_json

JOINED = MemberEvent(EventKind.JOINED,
                     Member("b", "127.0.0.1:7002", 3, Status.ALIVE, tags=(("role", "kv"),)),
                     None, "b")
FAILED = MemberEvent(EventKind.FAILED,
                     Member("b", "127.0.0.1:7002", 3, Status.FAILED, origin="c",
                            tags=(("role", "kv"),)),
                     JOINED.member, "d")


@pytest.fixture
def running() -> Iterator[list[EventHandlers]]:
    """Handler runners started by a test; all stopped at its end."""
    started: list[EventHandlers] = []
    yield started
    for handlers in started:
        handlers.stop(timeout_s=0.5)


def _start(running: list[EventHandlers], commands: list[str], **options: object
           ) -> EventHandlers:
    handlers = EventHandlers(commands, **options)  # type: ignore[arg-type]
    handlers.start(name="a", address="127.0.0.1:7001", cluster="test")
    running.append(handlers)
    return handlers


def test_event_environment_names_every_field() -> None:
    env = event_environment(FAILED)
    assert env == {
        "DYNAGO_EVENT": "failed",
        "DYNAGO_MEMBER_NAME": "b", "DYNAGO_MEMBER_ADDRESS": "127.0.0.1:7002",
        "DYNAGO_MEMBER_INCARNATION": "3", "DYNAGO_MEMBER_STATUS": "failed",
        "DYNAGO_MEMBER_ORIGIN": "c", "DYNAGO_MEMBER_TAGS": '{"role": "kv"}',
        "DYNAGO_PREVIOUS_NAME": "b", "DYNAGO_PREVIOUS_ADDRESS": "127.0.0.1:7002",
        "DYNAGO_PREVIOUS_INCARNATION": "3", "DYNAGO_PREVIOUS_STATUS": "alive",
        "DYNAGO_PREVIOUS_ORIGIN": "", "DYNAGO_PREVIOUS_TAGS": '{"role": "kv"}',
        "DYNAGO_EVENT_REPORTER": "d", "DYNAGO_EVENT_DETAIL": "",
    }
    assert event_json(JOINED) == {
        "event": "joined", "previous": None, "reporter": "b", "detail": "",
        "member": {"name": "b", "address": "127.0.0.1:7002", "incarnation": 3,
                   "status": "alive", "origin": "", "tags": {"role": "kv"}},
    }


@dataclass(frozen=True)
class _TaggedEvent:
    """An event with more fields than today's MemberEvent (as tags may add)."""

    kind: EventKind
    member: Member
    previous: Member | None
    reporter: str
    tags: dict[str, str]


def test_event_environment_passes_fields_it_does_not_know() -> None:
    event = _TaggedEvent(EventKind.CHANGED, JOINED.member, None, "c", {"role": "kv"})
    env = event_environment(event)  # type: ignore[arg-type]
    assert env["DYNAGO_EVENT_REPORTER"] == "c"
    assert json.loads(env["DYNAGO_EVENT_TAGS"]) == {"role": "kv"}


def test_handler_runs_once_per_event_with_env_and_stdin(
    running: list[EventHandlers], tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    record = (f'printf "%s %s %s %s\\n" "$DYNAGO_EVENT" "$DYNAGO_MEMBER_NAME" '
              f'"$DYNAGO_SELF_NAME" "$(cat | tr -d "\\n" | wc -c)" >> {shlex.quote(str(out))}')
    handlers = _start(running, [record], concurrency=1)
    handlers.submit(JOINED)
    handlers.submit(FAILED)
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 2,
               timeout_s=10, what="two handler runs")
    lines = [line.split() for line in out.read_text().splitlines()]
    assert [line[:3] for line in lines] == [["joined", "b", "a"], ["failed", "b", "a"]]
    assert all(int(line[3]) > 0 for line in lines)  # the JSON arrived on stdin
    assert handlers.stats()["event_handler_runs_ok"] == 2


def test_failing_handler_is_counted(running: list[EventHandlers]) -> None:
    handlers = _start(running, ["exit 3"])
    handlers.submit(JOINED)
    wait_until(lambda: handlers.stats()["event_handler_runs_failed"] == 1, timeout_s=10,
               what="the failed run to be counted")
    assert handlers.stats()["event_handler_runs_ok"] == 0


def test_hanging_handler_is_killed_at_its_timeout(
    running: list[EventHandlers], tmp_path: Path
) -> None:
    """A handler that hangs (and its child) is killed after timeout_s; the worker then
    runs the next event's handler."""
    out = tmp_path / "out.txt"
    command = (f'echo "$DYNAGO_EVENT" >> {shlex.quote(str(out))}; '
               f'[ "$DYNAGO_EVENT" = joined ] && sleep 600; true')
    handlers = _start(running, [command], concurrency=1, timeout_s=0.3)
    handlers.submit(JOINED)
    handlers.submit(FAILED)
    wait_until(lambda: out.exists() and out.read_text().split() == ["joined", "failed"],
               timeout_s=10, what="the hung handler killed and the next one run")
    stats = handlers.stats()
    assert stats["event_handler_timeouts"] == 1
    wait_until(lambda: handlers.stats()["event_handler_runs_ok"] == 1, timeout_s=10,
               what="the second run to finish")


def test_submit_never_blocks_and_drops_beyond_the_queue(
    running: list[EventHandlers],
) -> None:
    """With the only worker hung, submit still returns at once for every event: those
    beyond the queue are dropped and counted, not waited for."""
    handlers = _start(running, ["sleep 600"], concurrency=1, timeout_s=60, max_pending=5)
    for _ in range(200):
        handlers.submit(JOINED)
    stats = handlers.stats()
    assert stats["event_handler_events_dropped"] >= 200 - 5 - 1
    assert stats["event_handler_pending"] <= 5


def test_stop_kills_running_handlers_and_drops_the_queue(running: list[EventHandlers]) -> None:
    handlers = _start(running, ["sleep 600"], concurrency=2, timeout_s=60)
    for _ in range(4):
        handlers.submit(JOINED)
    wait_until(lambda: handlers.stats()["event_handler_running"] == 2, timeout_s=10,
               what="two handlers running")
    handlers.stop(timeout_s=0.2)
    assert handlers.stats()["event_handler_running"] == 0
    assert handlers.stats()["event_handler_events_dropped"] == 2
    handlers.submit(JOINED)  # after stop: ignored
    assert handlers.stats()["event_handler_pending"] == 0


@pytest.mark.parametrize("options", [{"concurrency": 0}, {"timeout_s": 0}])
def test_bad_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EventHandlers(["true"], **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EventHandlers([])
