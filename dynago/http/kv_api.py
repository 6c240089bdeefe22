"""The key-value store's HTTP surface on an aiohttp application: ``add_kv_routes``.

Two APIs over one ``KvFrontend`` (docs/kv-http.md has the tables):

* Dynago's ``/kvstore`` (the Go project's API): JSON in and out, one value a key
  (dynago.http.kv_dynago).
* Riak's HTTP object API: ``/ping``, ``/``, ``/stats``, ``/buckets/B/keys[/K]`` and the
  same under ``/types/default``, with siblings, causal contexts and quorum parameters
  (dynago.http.kv_riak, framing in dynago.http.riak_multipart).

Every handler is a coroutine that awaits the frontend and never blocks the loop. Every
error answers before anything is stored: bad input 400, too large 413, a ``KvError``
its ``status``.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from dynago.http import kv_dynago, kv_riak
from dynago.http.kv_common import KvSurface
from dynago.kv.model import KvFrontend


def add_kv_routes(app: web.Application, frontend: KvFrontend, *, node_name: str,
                  max_key_bytes: int = 1024, max_value_bytes: int = 1 << 20,
                  stats: Callable[[], dict[str, object]] | None = None) -> None:
    """Register Dynago's ``/kvstore`` and Riak's object API on ``app``.

    Args:
        app: the application to add routes to (not yet started).
        frontend: the node's KV service; every request awaits it.
        node_name: this node's name (``/stats``'s ``nodename``).
        max_key_bytes: longest key (UTF-8 bytes) a write or read may name; longer: 413.
        max_value_bytes: largest value a write may carry; larger: 413, nothing stored.
        stats: counters merged into ``GET /stats`` (called on each request; must not block).
    """
    if max_key_bytes < 1 or max_value_bytes < 0:
        raise ValueError("max_key_bytes must be ≥ 1 and max_value_bytes ≥ 0")
    surface = KvSurface(frontend, node_name, max_key_bytes, max_value_bytes, stats)
    kv_dynago.add_routes(app, surface)
    kv_riak.add_routes(app, surface)
