"""The HintActor's own messages and hand-back state (dynago.actors.kv_hints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynago.storage.engine import Write


@dataclass(frozen=True, slots=True)
class HintsCommitted:
    """Private: hint keys a commit wrote (value) or deleted (None)."""

    writes: tuple[Write, ...]


@dataclass(frozen=True, slots=True)
class HintsListed:
    """Private: a page of the hint keys held at start."""

    keys: tuple[bytes, ...]
    full: bool


@dataclass(frozen=True, slots=True)
class HintRead:
    """Private: hand-back ``request_id``'s hint as stored (None: gone meanwhile)."""

    request_id: int
    data: bytes | None


@dataclass(frozen=True, slots=True)
class HintDeleted:
    """Private: the conditional delete after hand-back ``request_id``'s ack: ``deleted``,
    or not (rewritten meanwhile, or ``error``)."""

    request_id: int
    deleted: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class HandBackExpired:
    """Private: hand-back ``request_id`` had no ack in time."""

    request_id: int


@dataclass(frozen=True, slots=True)
class HintTick:
    """Private: look for owners alive again (periodic), or a rested owner's turn."""


@dataclass(frozen=True, slots=True)
class GetHintStats:
    """Ask: the hint counters (``kv_hints_held`` a gauge, the rest counts)."""


@dataclass(frozen=True, slots=True)
class RedirectStored:
    """Private: redirected hint ``request_id`` is merged into this node's own copy (this
    node is one of the key's owners now), or failed with ``error``."""

    request_id: int
    error: str = ""


@dataclass
class HandBack:
    """One hint on its way: to ``owner``, or (``redirected``) to ``waiting``, the key's
    preference list in the current ring, because ``owner`` is out of the ring."""

    owner: str
    key: bytes
    data: bytes | None = None
    timer: Any = None
    waiting: set[str] = field(default_factory=set)
    redirected: bool = False


@dataclass
class HintCounts:
    stored: int = 0
    handed_back: int = 0
    failures: int = 0
    rewritten: int = 0
    dropped: int = 0
    errors: int = 0
    redirected: int = 0
    by_owner: dict[str, dict[bytes, None]] = field(default_factory=dict)
