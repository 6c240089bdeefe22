"""Seed addresses: ``HOST:PORT`` as is, or ``dns:NAME:PORT`` resolved at every dial.

A DNS seed stands for every address its name resolves to (A and AAAA records), as a
Kubernetes headless service lists its ready pods. The membership core treats the seed as
one opaque string and retries it with backoff until it has joined, like any other seed;
the gRPC transport resolves the name each time the seed is dialled (see
``GrpcTransport.dial``), so a name that does not resolve yet, or resolves only to nodes
that are not up yet, is simply tried again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from dynago.core.address import AddressError, format_address, parse_address

log = logging.getLogger(__name__)

DNS_PREFIX = "dns:"

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``resolver(name, port)`` -> the ``host:port`` addresses of ``name`` (raises OSError
when the name does not resolve). Runs on the transport's event loop."""


def is_dns_seed(text: str) -> bool:
    """True for a seed of the form ``dns:NAME:PORT``."""
    return text.startswith(DNS_PREFIX)


def parse_seed(text: str) -> tuple[str, int]:
    """Check a seed, ``HOST:PORT`` or ``dns:NAME:PORT``; return ``(host or name, port)``.

    Raises AddressError with a plain sentence when it is neither.
    """
    if not isinstance(text, str):
        raise AddressError("seed is not a string")
    if is_dns_seed(text):
        rest = text[len(DNS_PREFIX):]
        try:
            return parse_address(rest)
        except AddressError as error:
            raise AddressError(f"DNS seed {text!r}: expected dns:NAME:PORT ({error})") from None
    return parse_address(text)


async def resolve_all(name: str, port: int) -> list[str]:
    """Every TCP address of ``name`` as sorted, de-duplicated ``host:port`` strings (IPv6
    in brackets). Resolution runs in the event loop's executor, never blocking the loop.
    Raises OSError (socket.gaierror) when the name does not resolve."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    addresses = set()
    for family, _kind, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        host = str(sockaddr[0])
        addresses.add(format_address(host, int(sockaddr[1])))
    return sorted(addresses)


class DnsSeeds:
    """Dials DNS seeds for a transport; every method runs on the transport's loop."""

    def __init__(self, resolver: Resolver, timeout_s: float) -> None:
        self._resolver = resolver
        self._timeout_s = timeout_s
        self._answers: dict[str, tuple[str, ...] | None] = {}

    async def dial(
        self,
        seed: str,
        connected: set[str],
        dial_one: Callable[[str, Callable[[str], None]], None],
        on_failed: Callable[[str], None],
    ) -> bool:
        """Resolve ``seed`` now and ``dial_one`` every address it resolves to that is not
        in ``connected`` (addresses an open stream reaches, this node's own included).

        ``on_failed`` is called once: at once if the name does not resolve, or when the
        last of the dials failed. If every address is connected already, nothing is
        dialled and nothing failed. Returns False if the name did not resolve.
        """
        name, port = parse_seed(seed)
        try:
            addresses = await asyncio.wait_for(self._resolver(name, port), self._timeout_s)
        except TimeoutError:
            self._note(seed, None, "lookup timed out")
            on_failed(f"{seed}: looking up {name} timed out")
            return False
        except (OSError, UnicodeError) as error:
            reason = str(error) or type(error).__name__
            self._note(seed, None, reason)
            on_failed(f"{seed}: {name} does not resolve: {reason}")
            return False
        self._note(seed, tuple(addresses), "")
        if not addresses:
            on_failed(f"{seed}: {name} resolves to no address")
            return False
        todo = [address for address in addresses if address not in connected]
        remaining = len(todo)
        reasons: list[str] = []

        def failed_one(address: str) -> Callable[[str], None]:
            def failed(reason: str) -> None:
                nonlocal remaining
                remaining -= 1
                reasons.append(f"{address}: {reason}")
                if remaining == 0:
                    on_failed(f"{seed}: no address answered ({'; '.join(reasons)[:500]})")
            return failed

        for address in todo:
            dial_one(address, failed_one(address))
        return True

    def _note(self, seed: str, answer: tuple[str, ...] | None, reason: str) -> None:
        """Log what a DNS seed resolves to whenever that changes (INFO)."""
        if self._answers.get(seed, ()) == answer:
            return
        if len(self._answers) < 1000:
            self._answers[seed] = answer
        if answer is None:
            log.info("seed %s does not resolve (yet): %s; trying again", seed, reason)
        else:
            log.info("seed %s resolves to %s", seed, ", ".join(answer) or "no address")
