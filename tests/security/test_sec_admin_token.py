"""Admin token (``--admin-token-file``): every POST needs ``Authorization: Bearer TOKEN``;
without it, or with a wrong one, the answer is 401 and nothing changes. Reads stay open.
``dynago leave --admin-token-file`` presents the token."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.process

CLI_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 10.0


def test_admin_token_guards_posts_reads_stay_open(
    cluster: Any, dynago_cli: Any, tmp_path: Path
) -> None:
    """POST /v1/leave and POST /v1/faults with no Authorization header, a wrong token, the
    right token under another scheme, or an empty bearer: 401 with WWW-Authenticate, the
    node keeps running and its fault rules are unchanged. With the right token /v1/faults
    changes. GET /members, /v1/members, /v1/stats, /healthz and /v1/faults need no token.
    ``dynago leave`` with a wrong token file fails (exit 1) and the node stays; with the
    right one the node leaves and exits 0, and ``b`` then lists only itself."""
    token = secrets.token_urlsafe(32)
    token_path = tmp_path / "admin.token"
    token_path.write_text(token + "\n")
    wrong_path = tmp_path / "wrong.token"
    wrong_path.write_text(secrets.token_urlsafe(32) + "\n")

    a = cluster("a", extra_args=["--admin-token-file", str(token_path),
                                 "--enable-fault-injection"])
    b = cluster("b", seeds=[a.address])
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]), "a and b to form")

    for path in ("/members", "/v1/members", "/v1/stats", "/healthz", "/v1/faults"):
        status, _ = cluster.http_status(a.http, path)
        assert status == 200, f"GET {path} without a token: {status}"
    _, before = cluster.http_status(a.http, "/v1/faults")

    cut = json.dumps({"cut": {"node": "b", "direction": "both"}}).encode()
    refused_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer " + secrets.token_urlsafe(32)},
        {"Authorization": "Basic " + token},
        {"Authorization": "Bearer"},
        {"Authorization": token},
    ]
    for headers in refused_headers:
        for path, body in (("/v1/faults", cut), ("/v1/leave", b"")):
            status, answer = cluster.http_status(
                a.http, path, method="POST", body=body,
                headers={**headers, "Content-Type": "application/json"})
            assert status == 401, f"POST {path} with {list(headers.values())}: {status} {answer!r}"
    status, after = cluster.http_status(a.http, "/v1/faults")
    assert (status, after) == (200, before), f"fault rules changed: {before!r} -> {after!r}"
    cluster.assert_serves_exactly(a, [a, b])
    cluster.assert_serves_exactly(b, [a, b])

    # With the token: a harmless rule (cut a node that does not exist), then heal it.
    bearer = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status, answer = cluster.http_status(
        a.http, "/v1/faults", method="POST", headers=bearer,
        body=json.dumps({"cut": {"node": "nobody", "direction": "out"}}).encode())
    assert status == 200 and b"nobody" in answer, (status, answer)
    status, answer = cluster.http_status(a.http, "/v1/faults", method="POST", headers=bearer,
                                         body=json.dumps({"heal": True}).encode())
    assert status == 200 and cluster.http_status(a.http, "/v1/faults")[1] == before, answer

    refused = dynago_cli(["leave", "--http", a.http, "--admin-token-file", str(wrong_path)],
                         timeout_s=CLI_TIMEOUT_S)
    assert refused.returncode == 1 and "401" in refused.stderr, (refused.returncode,
                                                                 refused.stderr)
    cluster.assert_serves_exactly(a, [a, b])

    left = dynago_cli(["leave", "--http", a.http, "--admin-token-file", str(token_path)],
                      timeout_s=CLI_TIMEOUT_S)
    assert left.returncode == 0 and "is leaving" in left.stdout, (left.returncode,
                                                                  left.stdout, left.stderr)
    assert a.proc.wait(EXIT_TIMEOUT_S) == 0, cluster.report("a did not exit 0 after leave")
    cluster.wait(lambda: b.members() == [b.address], "b to drop a after a left")
    assert cluster.statuses(b).get("a") == "left", cluster.report("b does not hold a as left")
