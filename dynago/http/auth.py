"""TokenCheck: the admin token (``--admin-token-file``), decided route by route.

A route that changes the node (every admin POST and PUT) is wrapped with
``token_check.require(handler)``: without ``Authorization: Bearer TOKEN`` (when the node
has a token) the answer is 401 with ``WWW-Authenticate`` and the handler never runs, so
nothing changes. Routes that are not wrapped (reads; the key-value data routes) stay open.
The comparison takes constant time.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REFUSAL_BODY = b'{"error": "missing or wrong bearer token"}\n'


class TokenCheck:
    """Whether a request carries the admin token; ``token`` None: every request does."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        """True when the node has an admin token."""
        return self._token is not None

    def authorized(self, request: web.BaseRequest) -> bool:
        """True if no token is set, or ``request`` presents it as a bearer token."""
        if self._token is None:
            return True
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), self._token)

    @staticmethod
    def refusal() -> web.Response:
        """The 401 answer. The connection is closed after it: the request's body was not
        read, and a client without the token has nothing more to send."""
        response = web.Response(status=401, body=REFUSAL_BODY, headers={
            "Content-Type": "application/json",
            "WWW-Authenticate": 'Bearer realm="dynago"',
        })
        response.force_close()
        return response

    def require(self, handler: Handler) -> Handler:
        """``handler``, answering 401 (and not running it) without the token."""

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.authorized(request):
                return self.refusal()
            return await handler(request)

        return guarded
