"""DNS seeds (``dns:NAME:PORT``): parsing, what one dial of such a seed does with the
addresses the name resolves to, and a real node that keeps trying a name that does not
resolve yet until it does, then joins."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pykka
import pytest

from dynago.config import Config
from dynago.core.address import AddressError
from dynago.launch import wait_until
from dynago.node import Node
from dynago.transport.grpc_transport import GrpcTransport
from dynago.transport.resolve import DnsSeeds, parse_seed, resolve_all


def test_parse_seed_accepts_addresses_and_dns_names() -> None:
    assert parse_seed("127.0.0.1:7001") == ("127.0.0.1", 7001)
    assert parse_seed("[::1]:7001") == ("::1", 7001)
    assert parse_seed("dns:dynago.default.svc:7001") == ("dynago.default.svc", 7001)
    for bad in ("dns:", "dns:name", "dns:name:0", "name"):
        with pytest.raises(AddressError):
            parse_seed(bad)


def test_resolve_all_finds_loopback_for_localhost() -> None:
    """localhost resolves to 127.0.0.1 (and on some machines also to [::1])."""
    addresses = asyncio.run(resolve_all("localhost", 7001))
    assert "127.0.0.1:7001" in addresses
    assert set(addresses) <= {"127.0.0.1:7001", "[::1]:7001"}


def _dial(answer: Callable[[], list[str]], connected: set[str]
          ) -> tuple[bool, list[str], list[Callable[[str], None]], list[str]]:
    """One DnsSeeds.dial of dns:svc:7001 whose resolver calls ``answer``: (resolved?,
    addresses dialled, their failure callbacks, on_failed reasons)."""
    dialled: list[str] = []
    callbacks: list[Callable[[str], None]] = []
    failures: list[str] = []

    async def resolver(name: str, port: int) -> list[str]:
        assert (name, port) == ("svc", 7001)
        return answer()

    def dial_one(address: str, failed: Callable[[str], None]) -> None:
        dialled.append(address)
        callbacks.append(failed)

    seeds = DnsSeeds(resolver, timeout_s=1.0)
    resolved = asyncio.run(seeds.dial("dns:svc:7001", connected, dial_one, failures.append))
    return resolved, dialled, callbacks, failures


def test_dns_seed_dials_every_address_no_stream_reaches() -> None:
    """Every resolved address is dialled except those already connected; the seed has
    failed only once the last of its dials failed."""
    resolved, dialled, callbacks, failures = _dial(
        lambda: ["10.0.0.1:7001", "10.0.0.2:7001", "10.0.0.3:7001"], {"10.0.0.2:7001"})
    assert resolved and dialled == ["10.0.0.1:7001", "10.0.0.3:7001"]
    callbacks[0]("refused")
    assert failures == []
    callbacks[1]("timed out")
    assert len(failures) == 1 and "no address answered" in failures[0]


def test_dns_seed_with_every_address_connected_dials_nothing() -> None:
    resolved, dialled, _callbacks, failures = _dial(lambda: ["10.0.0.1:7001"],
                                                    {"10.0.0.1:7001"})
    assert resolved and dialled == [] and failures == []


def test_dns_seed_that_does_not_resolve_fails_once() -> None:
    def nxdomain() -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    resolved, dialled, _callbacks, failures = _dial(nxdomain, set())
    assert not resolved and dialled == []
    assert len(failures) == 1 and "does not resolve" in failures[0]


def test_node_keeps_trying_a_dns_seed_until_the_name_resolves() -> None:
    """b's seed is a DNS name that fails to resolve three times, then names a running
    node a: b keeps retrying (the core's seed backoff) and joins a once it resolves."""
    config = Config.local()
    a = Node(bind="127.0.0.1:0", name="a", config=config).start()
    lookups: list[int] = []

    async def resolver(name: str, port: int) -> list[str]:
        lookups.append(port)
        if len(lookups) <= 3:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} not known yet")
        return [a.address]

    b = Node(bind="127.0.0.1:0", name="b", seeds=("dns:dynago-peers:7001",), config=config,
             transport=GrpcTransport(config, resolver=resolver))
    try:
        b.start()
        wait_until(lambda: {m.name for m in b.members(live_only=True)} == {"a", "b"}
                   and {m.name for m in a.members(live_only=True)} == {"a", "b"},
                   timeout_s=15, what="b to join a once the name resolves")
        assert len(lookups) >= 4
        assert b.stats()["seed_dial_failures"] >= 3
    finally:
        b.stop()
        a.stop()
        pykka.ActorRegistry.stop_all(timeout=2.0)
