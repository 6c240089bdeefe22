"""``GET /v1/ring``: the key-value store's ring as this node sees it (JSON).

Answer::

    {"partitions": P, "n_val": N,
     "members": [{"name": str, "zone": str | null, "partitions": int, "share": float}],
     "owners": [name of partition 0's owner, ..., partition P-1's],
     "fallbacks": [{"partition": int, "owner": str, "fallback": str | null}],
     "handoffs": [{"partition": int, "from": str, "to": str, "keys_acked": int | null,
                   "state": str}]}

``fallbacks``: the primaries this node holds unhealthy (not alive), per partition, and
the node that takes their writes now (null: none is left outside the preference list;
the coordinator keeps the hint). ``handoffs``: the ownership transfers in progress that
this node takes part in, outbound (with its progress) and inbound.

``members`` are sorted by name; ``share`` is ``partitions / P`` (0.0 for a ring member
that owns none: more members than partitions). The ring is read once per request, so
the members and the owners always describe the same ring.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dynago.kv.fallback import for_partition, healthy_status
from dynago.kv.ring import Ring

RingExtras = Callable[[Ring], Awaitable[dict[str, Any]]]
"""What a node adds to its ``/v1/ring`` document for ``ring`` (fallbacks, handoffs)."""


def ring_fallbacks(ring: Ring, status: Callable[[str], str]) -> list[dict[str, Any]]:
    """Per partition, each unhealthy primary and the fallback standing in for it, by the
    same rule the coordinator uses (dynago.kv.fallback)."""
    healthy: Callable[[str], bool] = lambda name: healthy_status(status(name))  # noqa: E731
    found: list[dict[str, Any]] = []
    for partition in range(ring.partitions):
        sloppy = for_partition(ring, partition, healthy)
        stand_ins = {r.hint_for: r.node for r in sloppy.replicas if r.hint_for}
        for owner in ring.preference_list(partition):
            if not healthy(owner):
                found.append({"partition": partition, "owner": owner,
                              "fallback": stand_ins.get(owner)})
    return found


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


def add_ring_route(app: web.Application, current: Callable[[], Ring],
                   extras: RingExtras | None = None) -> None:
    """Register ``GET /v1/ring`` on ``app``; ``current`` returns the ring now (called on
    the loop at each request: it must not block); ``extras`` adds fields to it."""

    async def ring(_request: web.Request) -> web.StreamResponse:
        now = current()
        document = ring_json(now)
        document.update({"fallbacks": [], "handoffs": []})
        if extras is not None:
            document.update(await extras(now))
        return web.json_response(document)

    app.router.add_get("/v1/ring", ring)
