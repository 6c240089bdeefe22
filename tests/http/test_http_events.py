"""The admin API's event stream, tags and history on in-process Nodes: real HTTP on
127.0.0.1 (port 0), nodes joined over a MemoryNetwork on real time. Each test polls with
deadlines; every node is stopped at teardown.

What is checked here: the SSE framing and stream life (keep-alives, a client that hangs
up, a slow client, the node stopping, the client limit), and the tags and history
resources with their errors. The same features between real processes:
tests/process/test_proc_events.py and test_proc_tags.py.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from cluster_support import http_status

from dynago.actors import api
from dynago.config import Config
from dynago.core import Member, Status
from dynago.launch import LaunchError, wait_until
from dynago.node import Node
from dynago.transport.memory import MemoryNetwork

TIMEOUT_S = 10.0
PORT = iter(range(17500, 17600))


@pytest.fixture
def nodes() -> Iterator[Callable[..., Node]]:
    """Start in-process nodes on one MemoryNetwork, each with its admin API on port 0."""
    network = MemoryNetwork()
    started: list[Node] = []

    def start(name: str, *, seed: Node | None = None, **kwargs: Any) -> Node:
        node = Node(bind=f"127.0.0.1:{next(PORT)}", name=name, config=Config.local(),
                    seeds=(seed.address,) if seed else (), transport=network.transport(),
                    http_bind="127.0.0.1:0", **kwargs)
        started.append(node)
        return node.start()

    yield start
    for node in started:
        node.stop(leave=False)
    pykka.ActorRegistry.stop_all(timeout=10)


class SseClient:
    """Reads an event stream on a thread: ``messages`` are (event, data) pairs, comments
    are ``(":", text)``; ``ended`` is set when the server closes the stream."""

    def __init__(self, address: str, path: str = "/v1/events") -> None:
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_S)
        self.connection.connect()
        self.sock = self.connection.sock  # http.client hands it to the response; keep it
        self.connection.request("GET", path)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())
        self._lock = threading.Lock()
        self._messages: list[tuple[str, Any]] = []
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind, data = "message", []
        try:
            while raw := self.response.readline():
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    with self._lock:
                        self._messages.append((":", line[1:].strip()))
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    with self._lock:
                        self._messages.append((kind, json.loads("\n".join(data))))
                    kind, data = "message", []
        except (OSError, ValueError):
            pass
        self.ended.set()

    @property
    def messages(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self._messages)

    def events(self) -> list[tuple[str, str]]:
        """(kind, member name) of every member event so far."""
        return [(kind, data["name"]) for kind, data in self.messages
                if kind not in (":", "snapshot")]

    def close(self) -> None:
        """Hang up for real (the response object would keep the socket open)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.connection.close()


def stats(node: Node) -> dict[str, int]:
    status, body = http_status(node.http_address, "/v1/stats")
    assert status == 200
    result: dict[str, int] = json.loads(body)
    return result


def wait(condition: Callable[[], Any], what: str, timeout_s: float = TIMEOUT_S) -> Any:
    try:
        return wait_until(condition, timeout_s=timeout_s, what=what)
    except LaunchError as error:
        pytest.fail(str(error))


# ---------------------------------------------------------------------- the stream


def test_events_stream_a_node_joining_and_leaving(nodes):
    """GET /v1/events: one SSE message per member event, with a JSON record that names
    the member, its status and who reported it; headers of an event stream."""
    a = nodes("a")
    client = SseClient(a.http_address)
    assert client.status == 200
    assert client.headers["Content-Type"].startswith("text/event-stream")

    b = nodes("b", seed=a, tags={"role": "kv"})
    wait(lambda: ("joined", "b") in client.events(), "a's stream to show b joining")
    b.stop()
    wait(lambda: ("left", "b") in client.events(), "a's stream to show b leaving")

    joined = next(d for k, d in client.messages if k == "joined")
    assert (joined["status"], joined["incarnation"], joined["tags"]) == ("alive", 0, {"role": "kv"})
    assert joined["previous"] is None and joined["at"].endswith("Z")
    left = next(d for k, d in client.messages if k == "left")
    assert left["previous"]["status"] == "alive" and left["reporter"] == "b"
    client.close()


def test_events_snapshot_first_then_changes(nodes):
    a = nodes("a")
    client = SseClient(a.http_address, "/v1/events?snapshot=1")
    wait(lambda: any(k == "snapshot" for k, _ in client.messages), "the snapshot")
    (snapshot,) = [d for k, d in client.messages if k == "snapshot"]
    assert [m["name"] for m in snapshot] == ["a"]
    api.add(a.membership, Member("x", "127.0.0.1:9"))
    wait(lambda: client.events() == [("joined", "x")], "the event after the snapshot")
    client.close()


def test_events_kinds_filter_and_bad_kinds(nodes):
    a = nodes("a")
    client = SseClient(a.http_address, "/v1/events?kinds=left")
    api.add(a.membership, Member("x", "127.0.0.1:9"))
    api.remove(a.membership, "x")
    api.add(a.membership, Member("y", "127.0.0.1:10"))
    api.add(a.membership, Member("y", "127.0.0.1:10", 0, Status.LEFT))
    wait(lambda: client.events() == [("left", "y")], "only the left event")
    client.close()

    status, body = http_status(a.http_address, "/v1/events?kinds=exploded")
    assert status == 400 and b"unknown event kinds" in body
    status, _ = http_status(a.http_address, "/v1/events?bogus=1")
    assert status == 400


def test_events_keep_alive_comments_on_a_quiet_stream(nodes):
    a = nodes("a")
    a.http.events.keepalive_s = 0.1
    client = SseClient(a.http_address)
    wait(lambda: client.messages.count((":", "keep-alive")) >= 2, "two keep-alive comments")
    client.close()


def test_events_client_that_hangs_up_is_let_go(nodes):
    a = nodes("a")
    client = SseClient(a.http_address)
    wait(lambda: stats(a)["event_streams_open"] == 1, "the stream to be open")
    client.close()
    wait(lambda: stats(a)["event_streams_open"] == 0, "the server to notice the hang-up")
    assert stats(a)["event_streams_too_slow"] == 0


def test_events_stream_ends_cleanly_when_the_node_stops(nodes):
    """Node.stop: the stream gets the node's own leave, a last comment, then EOF, and
    the stop is not held up by the open stream."""
    a = nodes("a")
    client = SseClient(a.http_address)
    wait(lambda: stats(a)["event_streams_open"] == 1, "the stream to be open")
    started = time.monotonic()
    a.stop()
    assert time.monotonic() - started < 5.0
    assert client.ended.wait(TIMEOUT_S), "the stream did not end"
    assert client.events() == [("left", "a")]
    assert client.messages[-1] == (":", "the node is stopping")


def test_events_slow_client_is_disconnected_and_the_node_goes_on(nodes):
    """A client that reads nothing falls behind its bounded queue and is disconnected;
    meanwhile the node takes every change at full speed."""
    a = nodes("a")
    a.http.events.queue_capacity = 16
    a.http.events.write_timeout_s = 2.0
    host, port = a.http_address.rsplit(":", 1)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((host, int(port)))
    slow.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        wait(lambda: stats(a)["event_streams_open"] == 1, "the slow stream to be open")
        big = {f"k{i}": "v" * 120 for i in range(15)}  # ~2 KB of tags per event
        started = time.monotonic()
        for batch in range(30):
            api.merge(a.membership, [Member(f"m{batch}-{i}", f"127.0.0.1:{1000 + i}",
                                            tags=tuple(sorted(big.items())))
                                     for i in range(100)])
        took = time.monotonic() - started
        wait(lambda: stats(a)["event_streams_too_slow"] == 1, "the slow client to be dropped")
        wait(lambda: stats(a)["event_streams_open"] == 0, "the slow stream to be closed")
        assert len(a.members()) == 3001
        # Not a timing assertion on the node's speed: a bound far above any normal run
        # that a node blocked by its client (write timeout 2 s, 3000 events) would exceed.
        assert took < 60.0
    finally:
        slow.close()


def test_events_client_limit(nodes):
    a = nodes("a")
    a.http.events.max_clients = 1
    first = SseClient(a.http_address)
    assert first.status == 200
    second = SseClient(a.http_address)
    assert second.status == 503
    assert stats(a)["event_streams_refused"] == 1
    first.close()
    second.close()


# ---------------------------------------------------------------------- tags and history


def _request(node: Node, method: str, path: str, body: Any = None,
             token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    status, raw = http_status(node.http_address, path, method=method, headers=headers,
                              body=data)
    return status, json.loads(raw) if raw else None


def test_tags_put_replaces_post_patches_get_shows(nodes):
    a = nodes("a", tags={"role": "kv"})
    assert _request(a, "GET", "/v1/tags") == (200, {"name": "a", "incarnation": 0,
                                                    "tags": {"role": "kv"}})
    assert _request(a, "POST", "/v1/tags", {"zone": "b"})[1]["tags"] == {"role": "kv",
                                                                         "zone": "b"}
    assert _request(a, "POST", "/v1/tags", {"role": None})[1]["tags"] == {"zone": "b"}
    status, answer = _request(a, "PUT", "/v1/tags", {"rack": "r1"})
    assert (status, answer) == (200, {"name": "a", "incarnation": 3, "tags": {"rack": "r1"}})


@pytest.mark.parametrize(
    ("method", "body"),
    [("PUT", {"a b": "x"}), ("POST", {"k": 5}), ("PUT", ["k", "v"]), ("POST", {"k": "v" * 600}),
     ("PUT", {f"k{i}": "" for i in range(65)})],
)
def test_tags_bad_input_is_400_and_changes_nothing(nodes, method, body):
    a = nodes("a", tags={"role": "kv"})
    status, answer = _request(a, method, "/v1/tags", body)
    assert status == 400 and answer["error"]
    assert _request(a, "GET", "/v1/tags")[1] == {"name": "a", "incarnation": 0,
                                                 "tags": {"role": "kv"}}


def test_tags_change_needs_the_admin_token(nodes):
    a = nodes("a", admin_token="s3cret")
    assert _request(a, "PUT", "/v1/tags", {"zone": "b"})[0] == 401
    assert _request(a, "POST", "/v1/tags", {"zone": "b"}, token="wrong")[0] == 401
    assert _request(a, "GET", "/v1/tags")[1]["tags"] == {}
    assert _request(a, "PUT", "/v1/tags", {"zone": "b"}, token="s3cret")[0] == 200
    assert _request(a, "PUT", "/v1/leave", {}, token="s3cret")[0] == 405


def test_members_filter_by_tag(nodes):
    a = nodes("a", tags={"role": "kv", "zone": "a"})
    nodes("b", seed=a, tags={"role": "web"})
    wait(lambda: len(a.members()) == 2, "b to join a")
    assert [m["name"] for m in _request(a, "GET", "/v1/members?tag=role=kv")[1]] == ["a"]
    assert [m["name"] for m in _request(a, "GET", "/v1/members?tag=role")[1]] == ["a", "b"]
    assert _request(a, "GET", "/v1/members?tag=role=kv&tag=zone=b")[1] == []
    status, answer = _request(a, "GET", "/v1/members?tag=bad%20key")
    assert status == 400 and "bad tag filter" in answer["error"]


def test_history_resource_and_404(nodes):
    a = nodes("a")
    api.add(a.membership, Member("x:1", "127.0.0.1:9"))
    api.remove(a.membership, "x:1")
    status, document = _request(a, "GET", "/v1/members/x%3A1/history")
    assert status == 200
    assert (document["name"], document["observer"]) == ("x:1", "a")
    assert document["current"]["status"] == "failed"
    assert [(e["kind"], e["reporter"], e["status_before"]) for e in document["history"]] == [
        ("joined", "local", None), ("failed", "local", "alive")]
    assert document["history"][1]["explanation"] == (
        "failed (inc 0) — removed on this node by a local call (force-remove)")
    status, answer = _request(a, "GET", "/v1/members/nobody/history")
    assert status == 404 and "nobody" in answer["error"]
