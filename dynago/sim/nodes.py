"""The simulator's nodes (SimNode: a core and its state in the run), its traffic count,
its event log, and the names and addresses of simulated nodes."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from dynago.core.membership import MembershipCore
from dynago.core.messages import CoreMessage, MemberEvent

Observer = Callable[[float, str, MemberEvent], None]
"""Called with (time, node, event) for every member event any node publishes."""


@dataclass(slots=True)
class SimNode:
    """One simulated node: its core and what the simulator knows about it."""

    name: str
    address: str
    core: MembershipCore
    due: float = math.inf
    """When its one valid tick event is scheduled (other tick events are stale)."""
    up: bool = True
    paused: bool = False
    held: list[tuple[str, CoreMessage]] = field(default_factory=list)
    """Messages that arrived while paused, delivered in order on resume."""


@dataclass(slots=True)
class Traffic:
    """Messages and bytes sent, by message kind."""

    messages: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    dropped: int = 0

    @classmethod
    def of(cls, sent: dict[type, list[int]], dropped: int) -> Traffic:
        """From message kind -> [messages, bytes]."""
        traffic = cls(dropped=dropped)
        for kind, (count, size) in sent.items():
            traffic.messages[kind.__name__] = count
            traffic.bytes[kind.__name__] = size
        return traffic


def node_name(index: int) -> str:
    return f"node-{index:05d}"


def node_address(index: int) -> str:
    """A distinct, valid address per index (nothing is ever bound to it)."""
    return f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}:7946"


class EventLog:
    """Every member event of a worker's nodes: counted, hashed into a digest (same seed,
    same digest), kept as lines if asked, and handed to the observer."""

    def __init__(self, observer: Observer | None, *, keep_lines: bool) -> None:
        self.published = 0
        self._observer = observer
        self._digest = hashlib.sha256()
        self.lines: list[str] | None = [] if keep_lines else None

    def publish(self, now: float, node: str, event: MemberEvent) -> None:
        self.published += 1
        member = event.member
        line = (f"{now:.6f} {node} {event.kind.name} {member.name} "
                f"{member.incarnation} {member.status.name} {member.origin}\n")
        self._digest.update(line.encode())
        if self.lines is not None:
            self.lines.append(line)
        if self._observer is not None:
            self._observer(now, node, event)

    def digest(self) -> str:
        return self._digest.hexdigest()
