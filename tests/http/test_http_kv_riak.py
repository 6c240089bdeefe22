"""Riak's HTTP object API (dynago.http.kv_riak) on a real aiohttp server on 127.0.0.1:0
over the in-memory FakeFrontend (tests/kv_fake.py), requests with http.client. The
expected framing is Riak's (riak_kv_wm_object, riak_kv_wm_utils:multipart_encode_body);
multipart answers are parsed back with the stdlib email parser."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import email.utils
import json
import re
from collections.abc import Iterator

import pytest
from kv_fake import START_US, FakeFrontend, KvServer

from dynago.kv.model import (
    QUORUM_ALL,
    QUORUM_MAJORITY,
    Content,
    ObjectKey,
    Quorum,
    Sibling,
    Unavailable,
)

TEXT = {"Content-Type": "text/plain"}
KEY = ObjectKey("b", "k")


@pytest.fixture
def server() -> Iterator[KvServer]:
    started = KvServer(FakeFrontend(), max_key_bytes=8, max_value_bytes=16,
                       stats=lambda: {"vnode_gets": 7}).start()
    yield started
    started.stop()


def vclock(headers: object) -> bytes:
    return base64.b64decode(headers["X-Riak-Vclock"])  # type: ignore[index]


def puts(server: KvServer) -> list[tuple[object, ...]]:
    return [call for call in server.frontend.calls if call[0] == "put"]


def test_riak_ping_root_and_stats(server: KvServer) -> None:
    assert server.request("GET", "/ping")[::2] == (200, b"OK")
    status, headers, body = server.request("GET", "/")
    assert status == 200 and json.loads(body)["riak_kv_wm_buckets"] == "/buckets"
    assert '</buckets>; rel="riak_kv_wm_buckets"' in headers["Link"]
    stats = json.loads(server.request("GET", "/stats")[2])
    assert stats["riak_kv_version"] and stats["vnode_gets"] == 7
    assert stats["nodename"] == "node-a"


def test_riak_put_then_get_carries_headers(server: KvServer) -> None:
    status, headers, _ = server.request(
        "PUT", "/buckets/b/keys/k", b"hello",
        {"Content-Type": "text/plain; charset=utf-8", "X-Riak-Meta-Color": "blue"})
    assert status == 204 and vclock(headers) == b"1"
    status, headers, body = server.request("GET", "/buckets/b/keys/k")
    assert (status, body) == (200, b"hello")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["ETag"] == '"v1"'
    assert headers["X-Riak-Meta-color"] == "blue"
    assert headers["Link"] == '</buckets/b>; rel="up"'
    assert vclock(headers) == b"1"
    stamped = email.utils.parsedate_to_datetime(headers["Last-Modified"])
    assert stamped.timestamp() == (START_US + 1_000_000) / 1e6
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT",
                        headers["Last-Modified"])


def test_riak_context_from_a_read_replaces_what_it_saw(server: KvServer) -> None:
    server.request("PUT", "/buckets/b/keys/k", b"one", TEXT)
    context = server.request("GET", "/buckets/b/keys/k")[1]["X-Riak-Vclock"]
    server.request("PUT", "/buckets/b/keys/k", b"two", {**TEXT, "X-Riak-Vclock": context})
    assert [s.content.value for s in server.frontend.live(KEY)] == [b"two"]
    assert puts(server)[-1][3]["context"] == b"1"


def concurrent(server: KvServer) -> None:
    server.request("PUT", "/buckets/b/keys/k", b"one\r\n--x", {
        "Content-Type": "application/octet-stream", "X-Riak-Meta-A": "1"})
    server.request("PUT", "/buckets/b/keys/k", b"two", TEXT)


def test_riak_siblings_multipart_framed_as_riak(server: KvServer) -> None:
    concurrent(server)
    status, headers, body = server.request("GET", "/buckets/b/keys/k",
                                           headers={"Accept": "multipart/mixed"})
    assert status == 300 and vclock(headers) == b"2"
    boundary = re.fullmatch(r"multipart/mixed; boundary=(\w+)", headers["Content-Type"])
    assert boundary is not None
    mark = boundary.group(1)
    assert body.startswith(f"\r\n--{mark}\r\nContent-Type: ".encode())
    assert body.endswith(f"\r\n--{mark}--\r\n".encode())
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
    parts = list(message.iter_parts())  # type: ignore[attr-defined]
    assert [p["Etag"] for p in parts] == ["v1", "v2"]
    assert [p["Content-Type"] for p in parts] == ["application/octet-stream", "text/plain"]
    assert all(p["Link"] == '</buckets/b>; rel="up"' for p in parts)
    assert parts[0]["X-Riak-Meta-a"] == "1" and parts[1]["X-Riak-Meta-a"] is None
    assert [p.get_payload(decode=True) for p in parts] == [b"one\r\n--x", b"two"]
    assert all(email.utils.parsedate_to_datetime(p["Last-Modified"]) for p in parts)
    assert all(p["X-Riak-Deleted"] is None for p in parts)


def test_riak_tombstone_sibling_is_marked_deleted(server: KvServer) -> None:
    server.call(lambda: server.frontend.seed(KEY, [
        Sibling(Content(b"live"), "a"), Sibling(Content(b"", deleted=True), "b")]))
    _, headers, body = server.request("GET", "/buckets/b/keys/k",
                                      headers={"Accept": "multipart/mixed"})
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
    deleted = [p["X-Riak-Deleted"] for p in message.iter_parts()]  # type: ignore[attr-defined]
    assert deleted == [None, "true"]


def test_riak_siblings_as_text_and_by_vtag(server: KvServer) -> None:
    concurrent(server)
    status, headers, body = server.request("GET", "/buckets/b/keys/k")
    assert (status, body) == (300, b"Siblings:\nv1\nv2\n")
    assert headers["Content-Type"].startswith("text/plain")
    status, headers, body = server.request("GET", "/buckets/b/keys/k?vtag=v2")
    assert (status, body, headers["ETag"]) == (200, b"two", '"v2"')
    assert server.request("GET", "/buckets/b/keys/k?vtag=v9")[0] == 404


def test_riak_missing_and_deleted_are_404(server: KvServer) -> None:
    status, headers, body = server.request("GET", "/buckets/b/keys/k")
    assert (status, body, headers["X-Riak-Vclock"]) == (404, b"not found\n", None)
    server.request("PUT", "/buckets/b/keys/k", b"v", TEXT)
    assert server.request("DELETE", "/buckets/b/keys/k")[0] == 204
    status, headers, _ = server.request("GET", "/buckets/b/keys/k")
    assert (status, headers["X-Riak-Deleted"]) == (404, "true")
    assert vclock(headers) == b"2"
    assert server.request("DELETE", "/buckets/b/keys/k")[0] == 404


def test_riak_returnbody(server: KvServer) -> None:
    status, headers, body = server.request("PUT", "/buckets/b/keys/k?returnbody=true",
                                           b"v", TEXT)
    assert (status, body, headers["ETag"]) == (200, b"v", '"v1"')
    status, _, body = server.request("POST", "/buckets/b/keys/k?returnbody=true", b"w", TEXT)
    assert (status, body) == (300, b"Siblings:\nv1\nv2\n")


def test_riak_post_to_bucket_generates_a_key() -> None:
    server = KvServer(FakeFrontend()).start()
    try:
        status, headers, _ = server.request("POST", "/buckets/my+b/keys", b"v", TEXT)
        assert status == 201
        found = re.fullmatch(r"/buckets/my\+b/keys/([A-Za-z0-9]{20,})", headers["Location"])
        assert found is not None
        stored = server.frontend.live(ObjectKey("my b", found.group(1)))
        assert stored[0].content.value == b"v"
        status, headers, _ = server.request("POST", "/types/default/buckets/b/keys?"
                                            "returnbody=true", b"w", TEXT)
        assert status == 201 and headers["Location"].startswith(
            "/types/default/buckets/b/keys/")
        assert headers["ETag"] == '"v1"'
        assert len(server.frontend.stored_keys()) == 2
    finally:
        server.stop()


def test_riak_generated_key_fits_the_key_limit(server: KvServer) -> None:
    status, headers, _ = server.request("POST", "/buckets/b/keys", b"v", TEXT)
    assert status == 201 and len(headers["Location"].rsplit("/", 1)[1]) == 8


def test_riak_typed_routes_reach_the_same_objects(server: KvServer) -> None:
    server.request("PUT", "/types/default/buckets/b/keys/k", b"v", TEXT)
    assert server.request("GET", "/buckets/b/keys/k")[2] == b"v"
    assert server.request("DELETE", "/types/default/buckets/b/keys/k")[0] == 204


def test_riak_names_decode_plus_and_percent(server: KvServer) -> None:
    server.request("PUT", "/buckets/my+bucket/keys/a%2Fb+c%2B", b"v", TEXT)
    assert server.frontend.stored_keys() == {ObjectKey("my bucket", "a/b c+")}
    status, _, body = server.request("GET", "/buckets/my%20bucket/keys/a%2Fb%20c%2B")
    assert (status, body) == (200, b"v")


def test_riak_keys_listing(server: KvServer) -> None:
    for key in ("x", "y"):
        server.request("PUT", f"/buckets/b/keys/{key}", b"v", TEXT)
    server.request("PUT", "/buckets/other/keys/z", b"v", TEXT)
    status, _, body = server.request("GET", "/buckets/b/keys?keys=true")
    assert (status, json.loads(body)) == (200, {"keys": ["x", "y"]})
    assert server.request("GET", "/buckets/b/keys")[0] == 400


@pytest.mark.parametrize(("query", "quorum"), [
    ("r=2", Quorum(r=2)), ("r=one&pr=0", Quorum(r=1, pr=0)),
    ("r=quorum", Quorum(r=QUORUM_MAJORITY)), ("r=all&pr=all", Quorum(r=QUORUM_ALL,
                                                                     pr=QUORUM_ALL)),
    ("r=default", Quorum()),
])
def test_riak_read_quorum_parameters(server: KvServer, query: str, quorum: Quorum) -> None:
    server.request("GET", f"/buckets/b/keys/k?{query}")
    assert server.frontend.calls[-1][2] == quorum


def test_riak_write_quorum_parameters(server: KvServer) -> None:
    server.request("PUT", "/buckets/b/keys/k?w=all&pw=1", b"v", TEXT)
    assert puts(server)[-1][2] == Quorum(w=QUORUM_ALL, pw=1)


@pytest.mark.parametrize(("query", "named"), [
    ("w=abc", b"w query"), ("r=-1", b"r query"), ("pw=1.5", b"pw query"),
    ("pr=ALL", b"pr query"), ("returnbody=yes", b"returnbody"),
])
def test_riak_bad_parameter_is_400_naming_it(server: KvServer, query: str,
                                             named: bytes) -> None:
    status, _, body = server.request("PUT", f"/buckets/b/keys/k?{query}", b"v", TEXT)
    assert status == 400 and body.startswith(named)
    assert server.frontend.objects == {}


def test_riak_frontend_refusal_maps_to_its_status(server: KvServer) -> None:
    status, _, body = server.request("PUT", "/buckets/b/keys/k?w=5", b"v", TEXT)
    assert (status, body) == (400, b"w must be an integer from 1 to 3 (n_val), got 5\n")
    server.frontend.unavailable = Unavailable("timeout", answered=1, needed=2)
    status, _, body = server.request("GET", "/buckets/b/keys/k")
    assert status == 503 and b"1/2" in body and body.startswith(b"R-value")
    status, _, body = server.request("PUT", "/buckets/b/keys/k", b"v", TEXT)
    assert status == 503 and body.startswith(b"W-value unsatisfied: 1/2")
    assert server.frontend.objects == {}


@pytest.mark.parametrize(("path", "body", "headers", "status"), [
    ("/buckets/b/keys/k", b"v" * 17, TEXT, 413),
    ("/buckets/b/keys/kkkkkkkkk", b"v", TEXT, 413),
    ("/buckets/b/keys/%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9", b"v", TEXT, 413),  # 10 bytes
    ("/buckets/" + "b" * 256 + "/keys/k", b"v", TEXT, 413),
    ("/buckets/%00/keys/k", b"v", TEXT, 400),
    ("/buckets/b/keys/%FF", b"v", TEXT, 400),
    ("/buckets/b/keys/k", b"v", {}, 400),
    ("/buckets/b/keys/k", b"v", {"Content-Type": "nonsense"}, 415),
    ("/buckets/b/keys/k", b"v", {**TEXT, "X-Riak-Vclock": "!!"}, 400),
])
def test_riak_bad_write_stores_nothing(server: KvServer, path: str, body: bytes,
                                       headers: dict[str, str], status: int) -> None:
    assert server.request("PUT", path, body, headers)[0] == status
    assert server.frontend.objects == {}
    assert puts(server) == []


def test_riak_value_at_the_limit_is_stored(server: KvServer) -> None:
    assert server.request("PUT", "/buckets/b/keys/kkkkkkkk", b"v" * 16, TEXT)[0] == 204
    assert server.frontend.live(ObjectKey("b", "kkkkkkkk"))[0].content.value == b"v" * 16
