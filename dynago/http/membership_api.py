"""Admin API resources about members: the member list (with tags and a tag filter), this
node's tags, and a member's history. Each function returns ``(HTTP status, JSON body)``;
dynago.http.admin routes requests to them and writes the answer.

* ``GET /v1/members[?tag=KEY=VALUE|KEY]...`` — every record, with its tags; each ``tag``
  filter must match (exact value, or the key present). A bad filter: 400.
* ``GET /v1/tags`` — this node's tags and incarnation.
* ``PUT /v1/tags`` — replace this node's tags with the JSON object (string values).
* ``POST /v1/tags`` — change them by JSON merge patch (RFC 7386): a string sets a key,
  ``null`` removes it. Bad input: 400 and nothing changes.
* ``GET /v1/members/{name}/history`` — what this node saw happen to ``name``, oldest
  first, each change in plain words too; 404 for a member it neither holds nor remembers.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from dynago.actors import api
from dynago.actors.messages import MemberView
from dynago.core.tags import TagError, make_tags, matches, parse_filter
from dynago.explain import explain_entry

if TYPE_CHECKING:
    from dynago.core.history import HistoryEntry
    from dynago.nodeview import NodeView

Answer = tuple[int, Any]

HISTORY_PREFIX = "/v1/members/"
HISTORY_SUFFIX = "/history"


def rfc3339(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds (``2024-05-01T12:00:00.123Z``)."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def member_json(view: MemberView) -> dict[str, Any]:
    """One member as ``/v1/members`` shows it."""
    return {
        "name": view.name,
        "address": view.address,
        "status": view.status,
        "incarnation": view.incarnation,
        "since": rfc3339(view.since),
        "tags": dict(view.tags),
    }


def members(node: NodeView, query: dict[str, list[str]]) -> Answer:
    """``GET /v1/members``, filtered by every ``tag`` parameter."""
    unknown = set(query) - {"tag"}
    if unknown:
        return 400, {"error": f"unknown query parameters: {', '.join(sorted(unknown))}"}
    try:
        filters = [parse_filter(text) for text in query.get("tag", [])]
    except TagError as error:
        return 400, {"error": f"bad tag filter: {error}"}
    return 200, [member_json(view) for view in node.members() if matches(view.tags, filters)]


def _own_tags(node: NodeView) -> dict[str, Any]:
    me = next(view for view in node.members() if view.name == node.name)
    return {"name": me.name, "incarnation": me.incarnation, "tags": dict(me.tags)}


def tags(node: NodeView) -> Answer:
    """``GET /v1/tags``."""
    return 200, _own_tags(node)


def change_tags(node: NodeView, method: str, body: bytes) -> Answer:
    """``PUT /v1/tags`` (replace) or ``POST /v1/tags`` (merge patch)."""
    try:
        request = json.loads(body or b"null")
    except ValueError as error:
        return 400, {"error": f"body is not JSON: {error}"}
    if not isinstance(request, dict):
        return 400, {"error": "expected a JSON object of tag keys to values"}
    assert node.membership is not None, "start() first"
    try:
        if method == "PUT":
            for key, value in request.items():
                if not isinstance(value, str):
                    raise TagError(f"tag {key!r}: value {value!r} is not a string")
            new = make_tags(request)
            api.set_tags(node.membership, new)
        else:
            api.update_tags(node.membership, request)
    except ValueError as error:  # TagError, or the node is leaving
        return 400, {"error": str(error)}
    return 200, _own_tags(node)


def history_name(path: str) -> str | None:
    """The member name in ``/v1/members/{name}/history``, or None for another path."""
    if not (path.startswith(HISTORY_PREFIX) and path.endswith(HISTORY_SUFFIX)):
        return None
    name = unquote(path[len(HISTORY_PREFIX):-len(HISTORY_SUFFIX)])
    return name or None


def history(node: NodeView, name: str) -> Answer:
    """``GET /v1/members/{name}/history``."""
    assert node.membership is not None, "start() first"
    try:
        entries = api.history(node.membership, name)
    except KeyError:
        return 404, {"error": f"{node.name} knows no member named {name!r}"}
    current = next((member_json(v) for v in node.members() if v.name == name), None)
    return 200, {
        "name": name,
        "observer": node.name,
        "current": current,
        "history": [entry_json(entry) for entry in entries],
    }


def entry_json(entry: HistoryEntry) -> dict[str, Any]:
    """One history entry as JSON, with its plain-words explanation."""
    return {
        "at": rfc3339(entry.at),
        "kind": entry.kind.value,
        "address": entry.address,
        "status": entry.status.label,
        "incarnation": entry.incarnation,
        "status_before": entry.status_before.label if entry.status_before is not None else None,
        "incarnation_before": entry.incarnation_before,
        "reporter": entry.reporter,
        "origin": entry.origin,
        "detail": entry.detail,
        "tags": dict(entry.tags),
        "tags_before": dict(entry.tags_before),
        "explanation": explain_entry(entry),
    }
