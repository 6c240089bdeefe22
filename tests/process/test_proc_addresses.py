"""Addresses: an IPv6 loopback cluster end to end, a DNS seed (``dns:localhost:PORT``)
that is retried until a node answers there, and ``--advertise`` behind a port-mapping
TCP relay (as NAT or a container runtime does)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dynago.launch import http_json

pytestmark = pytest.mark.process


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _free_port() -> int:
    """A port free on 127.0.0.1 just now (for a node that must bind a known port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_loopback_cluster_end_to_end(cluster: Any, dynago_cli: Any) -> None:
    """Nodes bound to [::1]:0 (gRPC and admin API) join through an IPv6 seed, print and
    list their addresses in brackets, and `dynago members --http [::1]:PORT` works."""
    a = cluster("a", bind="[::1]:0", extra_args=["--http", "[::1]:0"])
    b = cluster("b", seeds=[a.address], bind="[::1]:0", extra_args=["--http", "[::1]:0"])
    c = cluster("c", seeds=[b.address], bind="[::1]:0")
    for node in (a, b, c):
        assert node.address.startswith("[::1]:"), node.address
    assert a.http.startswith("[::1]:") and b.http.startswith("[::1]:")

    expected = [a.address, b.address, c.address]
    cluster.wait(lambda: cluster.all_list([a, b, c], expected), "every node to list all 3")
    statuses = {m["address"]: m["status"] for m in http_json(a.http, "/v1/members")}
    assert statuses == dict.fromkeys(expected, "alive")

    table = dynago_cli(["members", "--http", a.http], timeout_s=20)
    assert table.returncode == 0, table.stderr
    assert all(address in table.stdout for address in expected), table.stdout


def test_dns_seed_is_retried_until_a_node_answers(cluster: Any) -> None:
    """b's only seed is dns:localhost:PORT and nothing listens there yet: b keeps trying
    (its seed dial failures rise); once a starts on 127.0.0.1:PORT, b joins it. (localhost
    may also resolve to ::1, where nobody listens: that address just fails.)"""
    port = _free_port()
    b = cluster("b", seeds=[f"dns:localhost:{port}"])
    cluster.wait(lambda: cluster.stats(b)["seed_dial_failures"] >= 2,
                 "b to try its DNS seed at least twice")
    assert b.members() == [b.address]

    a = cluster("a", bind=f"127.0.0.1:{port}")
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]),
                 "b to join a through the DNS seed", timeout_s=15)
    lines = cluster.stderr_of(b).splitlines()
    assert any(f"seed dns:localhost:{port} resolves to" in line
               and f"127.0.0.1:{port}" in line for line in lines), cluster.report()


class PortRelay:
    """Accepts on 127.0.0.1:<any port> and relays every connection to ``target_port``,
    as a NAT port mapping does; counts the connections it relayed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 5)
            except OSError:
                client.close()
                continue
            self.connections += 1
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stopping.set()
        self._listener.close()
        for sock in self._sockets:
            sock.close()
        self._thread.join(2)


@contextlib.contextmanager
def port_relay(target_port: int) -> Iterator[PortRelay]:
    relay = PortRelay(target_port)
    try:
        yield relay
    finally:
        relay.close()


def test_advertise_is_the_address_others_list_and_reach(cluster: Any) -> None:
    """b binds 127.0.0.1:P but is reachable as 127.0.0.1:Q through a port relay, and says
    so with --advertise. Every node lists b at Q, never at P; a node given only Q as its
    seed joins through the relay."""
    a = cluster("a")
    bound_port = _free_port()
    with port_relay(bound_port) as relay:
        advertised = f"127.0.0.1:{relay.port}"
        b = cluster("b", seeds=[a.address], bind=f"127.0.0.1:{bound_port}",
                    extra_args=["--advertise", advertised])
        assert b.address == advertised and b.name == "b"
        cluster.wait(lambda: cluster.all_list([a, b], [a.address, advertised]),
                     "a and b to list b at its advertised address")

        c = cluster("c", seeds=[advertised])
        everyone = [a.address, advertised, c.address]
        cluster.wait(lambda: cluster.all_list([a, b, c], everyone),
                     "c to join through b's advertised address")
        assert relay.connections >= 1
        for node in (a, b, c):
            assert f"127.0.0.1:{bound_port}" not in node.members()
