"""Dynago's /kvstore API (dynago.http.kv_dynago) on a real aiohttp server on 127.0.0.1:0
over the in-memory FakeFrontend (tests/kv_fake.py), requests with http.client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kv_fake import START_US, FakeFrontend, KvServer

from dynago.kv.model import DEFAULT_BUCKET, Content, ObjectKey, Sibling, Unavailable


@pytest.fixture
def server() -> Iterator[KvServer]:
    started = KvServer(FakeFrontend(), max_key_bytes=8, max_value_bytes=16).start()
    yield started
    started.stop()


def post(server: KvServer, body: object) -> tuple[int, dict[str, object]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, data = server.request("POST", "/kvstore", raw,
                                     {"Content-Type": "application/json"})
    return status, json.loads(data)


def get(server: KvServer, key: str) -> tuple[int, dict[str, object]]:
    status, _, data = server.request("GET", f"/kvstore/{key}")
    return status, json.loads(data)


def test_kvstore_store_then_read_back(server: KvServer) -> None:
    assert post(server, {"Key": "k", "Value": "v"}) == (
        200, {"message": "Stored the key value", "node": "node-a"})
    assert get(server, "k") == (200, {"key": "k", "value": "v", "node": "node-a"})
    what, key, _, details = server.frontend.calls[0]
    assert (what, key, details["overwrite"], details["context"]) == (
        "put", ObjectKey(DEFAULT_BUCKET, "k"), True, None)


def test_kvstore_store_overwrites_every_sibling(server: KvServer) -> None:
    key = ObjectKey(DEFAULT_BUCKET, "k")
    server.call(lambda: server.frontend.seed(key, [Sibling(Content(b"a"), "x"),
                                                   Sibling(Content(b"b"), "y")]))
    assert post(server, {"Key": "k", "Value": "new"})[0] == 200
    assert [s.content.value for s in server.frontend.live(key)] == [b"new"]


@pytest.mark.parametrize("body", [
    {"key": "k", "value": "v"}, {"KEY": "k", "VALUE": "v"}, {"kEy": "k", "vaLUE": "v"},
    {"\u212aey": "k", "Value": "v"},  # Kelvin sign folds to k, in Go as in Python
    {"Key": "other", "key": "k", "Value": "v"},  # the last matching field wins
])
def test_kvstore_field_names_match_in_any_case(server: KvServer, body: object) -> None:
    assert post(server, body)[0] == 200
    assert get(server, "k")[1]["value"] == "v"


def test_kvstore_missing_value_is_the_empty_string(server: KvServer) -> None:
    assert post(server, {"Key": "k"})[0] == 200
    assert get(server, "k")[1]["value"] == ""


@pytest.mark.parametrize("body", [
    b"{not json", b'["Key", "k"]', b'[["Key", "k"]]', b'"k"', {"Value": "v"},
    {"Key": "", "Value": "v"}, {"Key": 3, "Value": "v"}, {"Key": "k", "Value": 3},
    {"Key": "k", "Value": None}, {"Key": "k", "Value": {"a": "b"}}, b"\xff\xfe",
])
def test_kvstore_bad_body_is_400_and_stores_nothing(server: KvServer, body: object) -> None:
    status, answer = post(server, body)
    assert status == 400 and isinstance(answer["error"], str)
    assert server.frontend.objects == {}
    assert not [c for c in server.frontend.calls if c[0] == "put"]


@pytest.mark.parametrize("body", [{"Key": "k" * 9, "Value": "v"},
                                  {"Key": "k", "Value": "v" * 17},
                                  {"Key": "k", "Value": "é" * 9}])  # 18 UTF-8 bytes
def test_kvstore_too_large_is_413_and_stores_nothing(server: KvServer, body: object) -> None:
    status, answer = post(server, body)
    assert status == 413 and " than " in str(answer["error"])
    assert server.frontend.objects == {}


def test_kvstore_missing_key_is_404(server: KvServer) -> None:
    status, answer = get(server, "nope")
    assert status == 404 and "nope" in str(answer["error"])


def test_kvstore_path_key_is_percent_decoded_plus_kept(server: KvServer) -> None:
    assert post(server, {"Key": "a b+c", "Value": "v"})[0] == 200
    assert get(server, "a%20b+c")[1]["key"] == "a b+c"


def sibling(value: bytes, vtag: str, at_us: int, deleted: bool = False) -> Sibling:
    return Sibling(Content(value, last_modified_us=at_us, deleted=deleted), vtag)


@pytest.mark.parametrize(("siblings", "chosen"), [
    ([sibling(b"old", "z", START_US), sibling(b"new", "a", START_US + 1)], "new"),
    ([sibling(b"low", "a", START_US), sibling(b"high", "b", START_US)], "high"),
    ([sibling(b"live", "a", START_US), sibling(b"", "z", START_US + 9, deleted=True)],
     "live"),
])
def test_kvstore_siblings_resolve_to_latest_then_greatest_vtag(
        server: KvServer, siblings: list[Sibling], chosen: str) -> None:
    key = ObjectKey(DEFAULT_BUCKET, "k")
    server.call(lambda: server.frontend.seed(key, siblings))
    assert get(server, "k")[1]["value"] == chosen


def test_kvstore_only_tombstones_is_404(server: KvServer) -> None:
    key = ObjectKey(DEFAULT_BUCKET, "k")
    server.call(lambda: server.frontend.seed(key, [sibling(b"", "a", START_US, True)]))
    assert get(server, "k")[0] == 404


def test_kvstore_binary_value_is_406(server: KvServer) -> None:
    key = ObjectKey(DEFAULT_BUCKET, "k")
    server.call(lambda: server.frontend.seed(key, [sibling(b"\xff", "a", START_US)]))
    status, answer = get(server, "k")
    assert status == 406 and "/buckets/default/keys/" in str(answer["error"])


def test_kvstore_unavailable_is_503_saying_how_many(server: KvServer) -> None:
    server.frontend.unavailable = Unavailable("1 of 2 replicas answered", answered=1,
                                              needed=2)
    status, answer = post(server, {"Key": "k", "Value": "v"})
    assert (status, answer["error"]) == (503, "1 of 2 replicas answered")
    assert get(server, "k")[0] == 503
    assert server.frontend.objects == {}


def test_kvstore_root_welcomes(server: KvServer) -> None:
    status, _, data = server.request("GET", "/kvstore")
    assert (status, json.loads(data)) == (200, "Welcome to keystore")
