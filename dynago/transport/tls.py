"""Mutual TLS material for node-to-node connections."""

from __future__ import annotations

from dataclasses import dataclass

from dynago.transport.base import TransportError


@dataclass(frozen=True)
class TlsFiles:
    """Mutual TLS: this node's certificate chain and key, and the cluster's CA (PEM bytes).

    Both sides verify each other against ``ca``. The certificate a node presents must
    name ``server_name`` (a DNS subject alternative name; default ``dynago``), which
    every node checks instead of the address it dialled, so one name serves a cluster.
    """

    cert: bytes
    key: bytes
    ca: bytes
    server_name: str = "dynago"

    @classmethod
    def load(cls, cert: str, key: str, ca: str, server_name: str = "dynago") -> TlsFiles:
        """Read the three PEM files; raise TransportError naming one that cannot be read."""
        contents = []
        for label, path in (("certificate", cert), ("key", key), ("CA", ca)):
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError as error:
                raise TransportError(f"cannot read TLS {label} {path}: {error.strerror}") from None
            if b"-----BEGIN" not in data:
                raise TransportError(f"TLS {label} {path} is not a PEM file")
            contents.append(data)
        return cls(contents[0], contents[1], contents[2], server_name)
