"""The page's routes in-process: ``GET /v1/kv/latency`` and ``GET /v1/kv/explain``
(dynago.http.kv_ui_api) over the FakeFrontend (tests/kv_fake.py) and a real ring, and
``GET /ui`` with its files and headers (dynago.http.ui_routes), each on an aiohttp test
server on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kv_fake import FakeFrontend

from dynago.http.kv_ui_api import VALUE_PREVIEW_BYTES, add_kv_ui_routes
from dynago.http.ui_routes import add_ui_routes
from dynago.kv.model import QUORUM_MAJORITY, Content, ObjectKey, Sibling, Unavailable
from dynago.kv.ring import Ring, RingMember, partition_of
from dynago.kv.stats import LATENCY_BUCKETS_S, KvSnapshot, KvStats

RING = Ring.build([RingMember("a"), RingMember("b"), RingMember("c"), RingMember("d")],
                  partitions=64, n_val=3)


def kv_app(frontend: FakeFrontend, snapshot: KvSnapshot | None = None) -> web.Application:
    app = web.Application()
    add_kv_ui_routes(app, node_name="a", frontend=frontend, ring=lambda: RING,
                     kv_snapshot=lambda: snapshot, max_key_bytes=8)
    add_ui_routes(app)
    return app


Answer = tuple[int, dict[str, str], bytes]


def requests(app: web.Application, *paths: str) -> list[Answer]:
    """GET each path in turn from one test server of ``app`` (an app runs on one loop)."""

    async def go() -> list[Answer]:
        answers = []
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            for path in paths:
                response = await client.get(path)
                answers.append((response.status, dict(response.headers),
                                await response.read()))
        return answers

    return asyncio.run(go())


def request(app: web.Application, path: str) -> Answer:
    return requests(app, path)[0]


def get_json(app: web.Application, path: str) -> tuple[int, Any]:
    status, _, body = request(app, path)
    return status, json.loads(body)


def test_kv_latency_gives_cumulative_histograms_per_operation() -> None:
    stats = KvStats()
    for seconds in (0.0003, 0.003, 0.003, 20.0):
        stats.request("get", "ok", seconds)
    stats.request("put", "ok", 0.04)
    status, body = get_json(kv_app(FakeFrontend(), stats.snapshot()), "/v1/kv/latency")
    assert status == 200
    assert body["node"] == "a" and body["bounds"] == list(LATENCY_BUCKETS_S)
    get = body["ops"]["get"]
    assert len(get["cumulative"]) == len(LATENCY_BUCKETS_S) + 1
    # ≤0.5 ms: 1; ≤5 ms: 3; the 20 s one only in +Inf.
    assert get["cumulative"][0] == 1 and get["cumulative"][3] == 3
    assert get["cumulative"][-2] == 3 and get["cumulative"][-1] == get["count"] == 4
    assert body["ops"]["put"]["cumulative"][6] == 1 and body["ops"]["delete"]["count"] == 0


def test_kv_latency_is_503_when_the_kv_actor_does_not_answer() -> None:
    status, body = get_json(kv_app(FakeFrontend(), None), "/v1/kv/latency")
    assert status == 503 and "did not answer" in body["error"]


def test_kv_explain_shows_partition_preference_list_and_siblings() -> None:
    frontend = FakeFrontend("a")
    key = ObjectKey("cart", "alice")
    frontend.seed(key, [Sibling(Content(b"milk", "text/plain", last_modified_us=10**15), "v1"),
                        Sibling(Content(b"\xff" * (VALUE_PREVIEW_BYTES + 1)), "v2")])
    status, body = get_json(kv_app(frontend), "/v1/kv/explain?bucket=cart&key=alice")
    assert status == 200
    assert body["partition"] == partition_of(key, 64) and body["partitions"] == 64
    assert body["preference_list"] == list(RING.preference_list_for(key))
    assert body["n_val"] == 3 and body["r"] == 2
    read = body["read"]
    assert read["status"] == 200 and read["found"] and read["node"] == "a"
    assert base64.b64decode(read["context"]) == b"2"
    text, raw = read["siblings"]
    assert (text["value"], text["value_encoding"], text["truncated"]) == ("milk", "utf-8", False)
    assert text["last_modified"] == "2001-09-09T01:46:40.000Z"
    assert raw["value_encoding"] == "base64" and raw["truncated"]
    assert raw["value_bytes"] == VALUE_PREVIEW_BYTES + 1
    assert base64.b64decode(raw["value"]) == b"\xff" * VALUE_PREVIEW_BYTES
    # The read is a quorum read.
    (what, asked, quorum, _), = frontend.calls
    assert (what, asked, quorum.r) == ("get", key, QUORUM_MAJORITY)


def test_kv_explain_missing_key_is_found_false() -> None:
    status, body = get_json(kv_app(FakeFrontend()), "/v1/kv/explain?bucket=b&key=none")
    assert status == 200 and body["read"]["found"] is False and body["read"]["status"] == 404


def test_kv_explain_reports_an_unavailable_read_with_the_placement() -> None:
    frontend = FakeFrontend()
    frontend.unavailable = Unavailable("1 of 2 replicas answered", answered=1, needed=2)
    status, body = get_json(kv_app(frontend), "/v1/kv/explain?bucket=b&key=k")
    assert status == 200 and len(body["preference_list"]) == 3
    assert body["read"] == {"status": 503, "error": "1 of 2 replicas answered"}


def test_kv_explain_bad_input_is_refused_and_reads_nothing() -> None:
    frontend = FakeFrontend()
    answers = requests(kv_app(frontend), "/v1/kv/explain?bucket=b", "/v1/kv/explain?key=k",
                       "/v1/kv/explain?bucket=b&key=k&r=1",
                       "/v1/kv/explain?bucket=b&key=123456789")
    assert [status for status, _, _ in answers] == [400, 400, 400, 413]
    assert "more than 8" in json.loads(answers[3][2])["error"]
    assert frontend.calls == []


def test_ui_serves_the_page_and_its_files_from_the_node_only() -> None:
    files = (("/ui", "text/html"), ("/ui/", "text/html"), ("/ui/app.js", "text/javascript"),
             ("/ui/app.css", "text/css"))
    answers = requests(kv_app(FakeFrontend()), *(path for path, _ in files))
    for (path, media), (status, headers, body) in zip(files, answers, strict=True):
        assert status == 200 and headers["Content-Type"] == f"{media}; charset=utf-8", path
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert body
    page, script = answers[0][2], answers[2][2]
    # Everything the page loads comes from the node: no other site, no inline script.
    assert set(re.findall(rb'(?:src|href)="([^"]+)"', page)) == {b"/ui/app.js", b"/ui/app.css"}
    assert b"<script>" not in page
    assert b'EventSource("/v1/events?snapshot=1")' in script
    assert not re.search(rb"https?://(?!www\.w3\.org/2000/svg)[a-z]", script)


def test_ui_cross_origin_header_only_on_the_counters() -> None:
    explain, page, latency = requests(kv_app(FakeFrontend(), KvStats().snapshot()),
                                      "/v1/kv/explain?bucket=b&key=k", "/ui", "/v1/kv/latency")
    assert "Access-Control-Allow-Origin" not in explain[1]
    assert "Access-Control-Allow-Origin" not in page[1]
    assert latency[1]["Access-Control-Allow-Origin"] == "*"
