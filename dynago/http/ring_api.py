"""``GET /v1/ring``: the key-value store's ring as this node sees it (JSON).

Answer::

    {"partitions": P, "n_val": N,
     "members": [{"name": str, "zone": str | null, "partitions": int, "share": float}],
     "owners": [name of partition 0's owner, ..., partition P-1's]}

``members`` are sorted by name; ``share`` is ``partitions / P`` (0.0 for a ring member
that owns none: more members than partitions). The ring is read once per request, so
the members and the owners always describe the same ring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from dynago.kv.ring import Ring


def ring_json(ring: Ring) -> dict[str, Any]:
    """The ``/v1/ring`` document of ``ring`` (see the module docstring)."""
    return {
        "partitions": ring.partitions,
        "n_val": ring.n_val,
        "members": [{"name": m.name, "zone": m.zone,
                     "partitions": len(ring.partitions_of(m.name)),
                     "share": ring.share(m.name)} for m in ring.members],
        "owners": [ring.owner(p) for p in range(ring.partitions)],
    }


def add_ring_route(app: web.Application, current: Callable[[], Ring]) -> None:
    """Register ``GET /v1/ring`` on ``app``; ``current`` returns the ring now (called on
    the loop at each request: it must not block)."""

    async def ring(_request: web.Request) -> web.StreamResponse:
        return web.json_response(ring_json(current()))

    app.router.add_get("/v1/ring", ring)
