"""KvClient (dynago.kv.client) against the KV routes on a real aiohttp server on
127.0.0.1:0 over the in-memory FakeFrontend (tests/kv_fake.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from kv_fake import FakeFrontend, KvServer

from dynago.kv.client import KvClient, KvClientError
from dynago.kv.model import QUORUM_MAJORITY, ObjectKey, Quorum, Unavailable


@pytest.fixture
def server() -> Iterator[KvServer]:
    started = KvServer(FakeFrontend(), max_value_bytes=1024).start()
    yield started
    started.stop()


@pytest.fixture
def client(server: KvServer) -> Iterator[KvClient]:
    with KvClient(server.address, timeout_s=5.0) as kv:
        yield kv


def test_client_put_then_get(client: KvClient) -> None:
    written = client.put("k", "héllo", bucket="b", meta={"Color": "blue"})
    assert written.siblings == () and written.context == b"1"
    obj = client.get("k", bucket="b")
    assert obj is not None and obj.value == "héllo".encode()
    (sibling,) = obj.siblings
    assert sibling.content_type == "application/octet-stream; charset=utf-8"
    assert sibling.vtag == "v1" and sibling.meta == (("color", "blue"),)
    assert sibling.last_modified and obj.context == b"1"


def test_client_missing_key_is_none(client: KvClient) -> None:
    assert client.get("nope") is None
    assert client.delete("nope") is False


def test_client_concurrent_writes_are_siblings_until_resolved(client: KvClient) -> None:
    client.put("k", b"one\r\n--boundary\r\n", bucket="b")
    client.put("k", b"two", bucket="b", content_type="text/plain")
    obj = client.get("k", bucket="b")
    assert obj is not None
    assert [(s.vtag, s.value, s.content_type) for s in obj.siblings] == [
        ("v1", b"one\r\n--boundary\r\n", "application/octet-stream"),
        ("v2", b"two", "text/plain")]
    with pytest.raises(ValueError):
        _ = obj.value
    resolved = client.put("k", b"merged", bucket="b", context=obj.context, return_body=True)
    assert [s.value for s in resolved.siblings] == [b"merged"]
    again = client.get("k", bucket="b")
    assert again is not None and again.value == b"merged"


def test_client_put_without_key_generates_one(client: KvClient, server: KvServer) -> None:
    written = client.put(None, b"v", bucket="b")
    assert written.location == f"/buckets/b/keys/{written.key}"
    assert server.frontend.live(ObjectKey("b", written.key))[0].content.value == b"v"


def test_client_delete_and_keys(client: KvClient) -> None:
    for key in ("a b", "c/d"):
        client.put(key, b"v", bucket="my bucket")
    assert client.keys("my bucket") == ["a b", "c/d"]
    obj = client.get("a b", bucket="my bucket")
    assert obj is not None
    assert client.delete("a b", bucket="my bucket", context=obj.context) is True
    assert client.get("a b", bucket="my bucket") is None
    assert client.keys("my bucket") == ["c/d"]


def test_client_passes_quorum_values(client: KvClient, server: KvServer) -> None:
    client.get("k", r="quorum")
    assert server.frontend.calls[-1][2] == Quorum(r=QUORUM_MAJORITY)
    client.put("k", b"v", w=2)
    assert server.frontend.calls[-1][2] == Quorum(w=2)


def test_client_errors_carry_status_and_message(client: KvClient, server: KvServer) -> None:
    with pytest.raises(KvClientError) as bad:
        client.put("k", b"v", w="most")
    assert bad.value.status == 400 and "w query parameter" in bad.value.message
    with pytest.raises(KvClientError) as large:
        client.put("k", b"v" * 1025)
    assert large.value.status == 413
    server.frontend.unavailable = Unavailable("timeout", answered=0, needed=2)
    with pytest.raises(KvClientError) as down:
        client.get("k")
    assert down.value.status == 503 and "0/2" in down.value.message
    with pytest.raises(KvClientError) as kv_down:
        client.kvstore_put("k", "v")
    assert (kv_down.value.status, kv_down.value.message) == (503, "timeout")


def test_client_kvstore_api(client: KvClient) -> None:
    assert client.kvstore_put("k y", "v") == {"message": "Stored the key value",
                                              "node": "node-a"}
    assert client.kvstore_get("k y") == "v"
    assert client.kvstore_get("nope") is None


def test_client_keeps_one_connection_alive(client: KvClient) -> None:
    client.put("k", b"v")
    first = client._connection
    client.get("k")
    client.get("missing")
    assert first is not None and client._connection is first


def test_client_reconnects_after_the_server_closed_the_connection(
        client: KvClient, server: KvServer) -> None:
    client.put("k", b"v")
    assert client._connection is not None and client._connection.sock is not None
    client._connection.sock.shutdown(socket.SHUT_RDWR)  # as if the node closed it
    obj = client.get("k")
    assert obj is not None and obj.value == b"v"


def test_client_unreachable_node_raises_oserror() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError), KvClient(f"127.0.0.1:{port}", timeout_s=2.0) as kv:
        kv.get("k")
