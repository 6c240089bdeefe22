"""Event handlers (``dynago node --on-event CMD``), as Serf's: a shell command run for
every membership event this node sees, with the event in its environment.

For each event, every handler command runs once, through ``/bin/sh -c``, with the node's
own environment plus:

* ``DYNAGO_EVENT`` — ``joined``, ``changed``, ``suspected``, ``failed`` or ``left``;
* ``DYNAGO_MEMBER_<FIELD>`` — each field of the member's new record (``NAME``,
  ``ADDRESS``, ``INCARNATION``, ``STATUS``, ``ORIGIN``, ``TAGS`` as a JSON object, and
  any field added later);
* ``DYNAGO_PREVIOUS_<FIELD>`` — the same for the record it replaced, when there was one;
* ``DYNAGO_EVENT_<FIELD>`` — any further field of the event (``REPORTER``: the peer that
  brought the change, ``self`` or ``local``; ``DETAIL``);
* ``DYNAGO_SELF_NAME``, ``DYNAGO_SELF_ADDRESS``, ``DYNAGO_CLUSTER`` — this node.

Statuses are written as their labels (``alive``), mappings and lists as JSON. The whole
event is also written to the handler's stdin as one JSON object and a newline.

A slow handler never slows the node: the membership actor only puts the event in a
bounded queue (``max_pending``; beyond it events are dropped, counted and logged). At most
``concurrency`` handlers run at once, so with more than one they may finish, and even
start, out of event order; ``concurrency = 1`` keeps the order. A handler still running
``timeout_s`` after it started is sent SIGTERM, then SIGKILL, with its whole process
group. A non-zero exit is logged (WARNING) with the tail of its output; output of a
handler that succeeded is logged at DEBUG.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dynago.core.member import Member
from dynago.core.messages import MemberEvent

log = logging.getLogger(__name__)

KILL_GRACE_S = 1.0
"""Time between SIGTERM and SIGKILL for a handler past its timeout."""

DROP_LOG_INTERVAL_S = 10.0
"""At most one log line per this many seconds about events dropped (a full queue)."""

OUTPUT_TAIL_CHARS = 400
"""How much of a handler's output goes into its log line."""

_STOP = object()


def _text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        label = getattr(value, "label", None)
        return str(label) if label is not None else str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(_jsonable(value), sort_keys=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        label = getattr(value, "label", None)
        return label if label is not None else value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(_field(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _field(record: Any, name: str) -> Any:
    """A field of a record; a Member's tags (sorted pairs) as a mapping, so they show as a
    JSON object."""
    value = getattr(record, name)
    return dict(value) if name == "tags" and isinstance(record, Member) else value


def event_environment(event: MemberEvent) -> dict[str, str]:
    """The ``DYNAGO_*`` variables that describe ``event`` (see the module docstring)."""
    env = {"DYNAGO_EVENT": _text(event.kind)}
    for field in dataclasses.fields(event):
        if field.name == "kind":
            continue
        value = getattr(event, field.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            prefix = f"DYNAGO_{field.name.upper()}_"
            for inner in dataclasses.fields(value):
                env[prefix + inner.name.upper()] = _text(_field(value, inner.name))
        else:
            env[f"DYNAGO_EVENT_{field.name.upper()}"] = _text(value)
    return env


def event_json(event: MemberEvent) -> dict[str, Any]:
    """``event`` as a JSON object: ``event`` (the kind), then every other field."""
    document: dict[str, Any] = {"event": _text(event.kind)}
    for field in dataclasses.fields(event):
        if field.name != "kind":
            document[field.name] = _jsonable(getattr(event, field.name))
    return document


class EventHandlers:
    """Runs ``commands`` for every event handed to ``submit``; see the module docstring."""

    def __init__(
        self,
        commands: Sequence[str],
        *,
        concurrency: int = 4,
        timeout_s: float = 10.0,
        max_pending: int = 1024,
    ) -> None:
        if not commands:
            raise ValueError("no event handler commands")
        if concurrency < 1:
            raise ValueError("event handler concurrency must be at least 1")
        if not timeout_s > 0:
            raise ValueError("event handler timeout must be greater than 0")
        self.commands = tuple(commands)
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._node_env: dict[str, str] = {}
        self._workers: list[threading.Thread] = []
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._last_drop_log = -DROP_LOG_INTERVAL_S
        self.runs_ok = 0
        self.runs_failed = 0
        """Handlers that exited with a non-zero code (timeouts not included)."""
        self.timeouts = 0
        self.start_errors = 0
        """Handlers that could not be started at all."""
        self.dropped = 0
        """Events not handled: the queue was full, or the node stopped first."""

    def start(self, *, name: str, address: str, cluster: str) -> None:
        """Start the worker threads; ``name``, ``address`` and ``cluster`` describe this
        node to the handlers."""
        self._node_env = {"DYNAGO_SELF_NAME": name, "DYNAGO_SELF_ADDRESS": address,
                          "DYNAGO_CLUSTER": cluster}
        for index in range(self.concurrency):
            worker = threading.Thread(target=self._work, name=f"dynago-handler-{index}",
                                      daemon=True)
            worker.start()
            self._workers.append(worker)

    def submit(self, event: MemberEvent) -> None:
        """Queue ``event`` for the handlers. Never blocks (a membership subscriber)."""
        if self._stopping:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            now = time.monotonic()
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
                report = now - self._last_drop_log >= DROP_LOG_INTERVAL_S
                if report:
                    self._last_drop_log = now
            if report:
                log.warning("event handlers are behind: %d events dropped so far "
                            "(queue of %d full)", dropped, self._queue.maxsize)

    def stats(self) -> dict[str, int]:
        """Counters (prefixed ``event_handler_``) and the current queue and run counts."""
        with self._lock:
            running = len(self._running)
        return {
            "event_handler_runs_ok": self.runs_ok,
            "event_handler_runs_failed": self.runs_failed,
            "event_handler_timeouts": self.timeouts,
            "event_handler_start_errors": self.start_errors,
            "event_handler_events_dropped": self.dropped,
            "event_handler_pending": self._queue.qsize(),
            "event_handler_running": running,
        }

    def stop(self, timeout_s: float = 1.0) -> None:
        """Drop queued events, give running handlers ``timeout_s`` to finish, kill the
        rest, and stop the workers."""
        self._stopping = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                with self._lock:
                    self.dropped += 1
        for _ in self._workers:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._running)
        for proc in left:
            _kill_group(proc, signal.SIGKILL)
        for worker in self._workers:
            worker.join(KILL_GRACE_S)

    # ------------------------------------------------------------------ workers

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            env = dict(os.environ)
            env.update(self._node_env)
            try:
                env.update(event_environment(item))
                payload = (json.dumps(event_json(item), default=str) + "\n").encode()
            except Exception:  # noqa: BLE001 - one odd event must not stop the worker
                log.exception("cannot describe event %r to the handlers", item)
                continue
            for command in self.commands:
                if self._stopping:
                    break
                self._run(command, env, payload)

    def _run(self, command: str, env: dict[str, str], payload: bytes) -> None:
        what = f"{env.get('DYNAGO_EVENT')} {env.get('DYNAGO_MEMBER_NAME')}"
        try:
            proc = subprocess.Popen(
                command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        except (OSError, ValueError) as error:
            with self._lock:
                self.start_errors += 1
            log.warning("cannot start event handler %r for %s: %s", command, what, error)
            return
        with self._lock:
            self._running.add(proc)
        timed_out = False
        try:
            try:
                output, _ = proc.communicate(payload, timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                output = self._kill(proc)
        finally:
            with self._lock:
                self._running.discard(proc)
        tail = output.decode(errors="replace")[-OUTPUT_TAIL_CHARS:].strip()
        if timed_out:
            with self._lock:
                self.timeouts += 1
            log.warning("event handler %r for %s still ran after %.1f s: killed",
                        command, what, self.timeout_s,
                        extra={"handler": command, "timeout_s": self.timeout_s})
        elif self._stopping and proc.returncode < 0:
            log.info("event handler %r for %s was killed: the node is stopping", command, what)
        elif proc.returncode != 0:
            with self._lock:
                self.runs_failed += 1
            log.warning("event handler %r for %s exited with %d: %s", command, what,
                        proc.returncode, tail or "(no output)",
                        extra={"handler": command, "exit_code": proc.returncode})
        else:
            with self._lock:
                self.runs_ok += 1
            log.debug("event handler %r for %s done: %s", command, what, tail or "(no output)")

    def _kill(self, proc: subprocess.Popen[bytes]) -> bytes:
        """SIGTERM the handler's process group, SIGKILL it after KILL_GRACE_S; returns
        what output could still be read."""
        _kill_group(proc, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=KILL_GRACE_S)
            return output
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
        try:
            output, _ = proc.communicate(timeout=KILL_GRACE_S)
            return output
        except subprocess.TimeoutExpired:
            # Something outside its group still holds its output open: stop reading.
            proc.kill()
            proc.wait(KILL_GRACE_S)
            return b""


def _kill_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the process group the handler leads (it was started in its own session,
    so the group is exactly the handler and what it started). Only while the handler is
    not reaped yet: until then its pid, and so the group id, cannot be reused."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)
