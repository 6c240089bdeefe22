"""Node addresses: ``host:port`` strings, with IPv6 hosts in brackets (``[::1]:7001``)."""

from __future__ import annotations

import re

MAX_ADDRESS_LENGTH = 261
"""253 characters of DNS name, brackets, a colon and five digits of port."""


_NOT_IN_HOST = re.compile(r"[\s/@?#]")
"""Whitespace (``\\s`` in a str pattern is exactly what str.isspace() accepts) and the
characters that end a host in a URL."""


class AddressError(ValueError):
    """A string is not a usable ``host:port`` address."""


def parse_address(text: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """Split ``host:port`` into ``(host, port)``; raise AddressError if it is not one.

    ``allow_port_zero`` accepts port 0 (bind to any free port), which is only meaningful
    for an address this node binds, never for one it dials or advertises.
    """
    if not isinstance(text, str) or not text:
        raise AddressError("address is empty; expected HOST:PORT")
    if len(text) > MAX_ADDRESS_LENGTH:
        raise AddressError(f"address is longer than {MAX_ADDRESS_LENGTH} characters")
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise AddressError(f"{text!r} is not HOST:PORT (IPv6 form is [HOST]:PORT)")
        host, port_text = text[1:close], text[close + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise AddressError(f"{text!r} has no port; expected HOST:PORT")
        if ":" in host:
            raise AddressError(f"{text!r}: write an IPv6 host in brackets, [HOST]:PORT")
    if not host:
        raise AddressError(f"{text!r} has no host; expected HOST:PORT")
    if _NOT_IN_HOST.search(host):
        raise AddressError(f"{text!r}: host {host!r} contains characters a host cannot")
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise AddressError(f"{text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    lowest = 0 if allow_port_zero else 1
    if not lowest <= port <= 65535:
        raise AddressError(f"{text!r}: port {port} is outside {lowest}..65535")
    return host, port


def format_address(host: str, port: int) -> str:
    """Inverse of parse_address."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def is_valid_address(text: str) -> bool:
    """True when ``text`` parses as a dialable address."""
    try:
        parse_address(text)
    except AddressError:
        return False
    return True
