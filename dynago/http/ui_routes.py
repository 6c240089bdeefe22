"""``GET /ui``: the node's live web page (static files shipped in ``dynago/http/ui/``).

The page is plain HTML, CSS and JavaScript: no build step, nothing from another site. It
reads this node's admin API (``/v1/events?snapshot=1``, ``/v1/ring``, ``/v1/stats``,
``/v1/kv/latency``, ``/v1/members/{name}/history``, ``/v1/kv/explain``) and, for the other
members that carry an ``http`` tag (their admin address), their ``/v1/stats`` and
``/v1/kv/latency``.

Routes: ``/ui`` and ``/ui/`` (the page), ``/ui/app.js``, ``/ui/app.css``. The files are
read once, when the routes are added. A Content-Security-Policy keeps the page to its own
scripts and styles; it may only connect to HTTP(S) admin APIs.

Cross-origin reads: another node's page fetches this node's ``/v1/stats`` and
``/v1/kv/latency`` from a different origin, so those two GET answers carry
``Access-Control-Allow-Origin: *``. They hold counters only (no keys, no values, no
member addresses), reads of the admin API are open anyway, and no credentials are sent;
every other answer keeps the browser's same-origin rule.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

UI_FILES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}
"""The page's files (in ``dynago/http/ui/``) and their media types."""

CROSS_ORIGIN_READS = frozenset({"/v1/stats", "/v1/kv/latency"})
"""Paths whose GET answers other nodes' pages may read (see the module docstring)."""

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self' http: https:; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _load(name: str) -> bytes:
    return resources.files("dynago.http").joinpath("ui", name).read_bytes()


def add_ui_routes(app: web.Application) -> None:
    """Register ``/ui`` (and its files) on ``app``, and the cross-origin header of
    ``CROSS_ORIGIN_READS``. Raises OSError if a file of the page is missing."""
    bodies = {name: _load(name) for name in UI_FILES}

    def serve(name: str) -> web.Response:
        return web.Response(body=bodies[name], headers={
            "Content-Type": f"{UI_FILES[name]}; charset=utf-8",
            # Always revalidated: a node upgraded in place serves its new page at once.
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
        })

    async def page(_request: web.Request) -> web.StreamResponse:
        return serve("index.html")

    async def script(_request: web.Request) -> web.StreamResponse:
        return serve("app.js")

    async def style(_request: web.Request) -> web.StreamResponse:
        return serve("app.css")

    async def allow_cross_origin(request: web.Request, response: web.StreamResponse) -> None:
        path = request.path.rstrip("/")
        if request.method in ("GET", "HEAD") and path in CROSS_ORIGIN_READS:
            response.headers["Access-Control-Allow-Origin"] = "*"

    app.router.add_get("/ui", page)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/app.js", script)
    app.router.add_get("/ui/app.css", style)
    app.on_response_prepare.append(allow_cross_origin)
