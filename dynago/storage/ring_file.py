"""The ring file of a node's data dir: the members of its key-value ring when it last
changed (read at start, rewritten on every ring change)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

RING_FILE = "ring-members.json"
"""In the data dir: the members of the node's ring when it last changed. A restarted node
takes them as failed until membership says otherwise (kv.members.RingKeeper.remember),
as Riak keeps its ring on disk: without it, a node that restarts knows only itself and
would serve alone, at R = W = 1, until it rejoined."""


def read_ring_file(path: Path) -> list[tuple[str, str | None]]:
    """The (name, zone) pairs kept in ``path``; none if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return [(str(m["name"]), None if m.get("zone") is None else str(m["zone"]))
                for m in data["members"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("kv: ignoring %s: %s", path, exc)
        return []


def write_ring_file(path: Path, members: list[tuple[str, str | None]]) -> None:
    """Replace ``path`` atomically and durably with ``members``."""
    temp = path.with_suffix(".tmp")
    with open(temp, "w") as handle:
        json.dump({"members": [{"name": n, "zone": z} for n, z in members]}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
