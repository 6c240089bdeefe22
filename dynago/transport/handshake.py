"""Proof of the shared cluster key during the stream handshake (no key ever travels).

Each side sends a fresh random nonce in its Hello. The acceptor answers with its Hello
carrying ``proof = HMAC-SHA256(key, "dynago-v1 acceptor" | cluster | dialler nonce |
acceptor nonce | acceptor name | dialler name)``; the dialler checks it, then sends
``Auth(proof)`` computed the same way with the role "dialler" and the nonces swapped.
Nothing but these handshake messages is processed before both proofs check out.

A ``Keyring`` holds one or more keys: proofs are made with the first (primary) and
accepted from any, so keys rotate without downtime: add the new key last everywhere,
then make it first everywhere, then remove the old one (as memberlist's keyring does).
A node without a keyring sends empty proofs and refuses non-empty ones it cannot check:
a keyed and an unkeyed node never talk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

NONCE_BYTES = 16
MIN_KEY_BYTES = 16
MAX_KEYS = 16


class KeyringError(ValueError):
    """A key file or key that cannot be used."""


@dataclass(frozen=True, slots=True)
class Keyring:
    """The cluster keys of this node; ``keys[0]`` is the primary one."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("a keyring needs at least one key")
        if len(self.keys) > MAX_KEYS:
            raise KeyringError(f"a keyring holds at most {MAX_KEYS} keys")
        for key in self.keys:
            if len(key) < MIN_KEY_BYTES:
                raise KeyringError(f"a cluster key must be at least {MIN_KEY_BYTES} bytes")

    @classmethod
    def from_file(cls, path: str | Path) -> Keyring:
        """One key per line, base64 (``openssl rand -base64 32``); blank lines and lines
        starting with # are ignored; the first key is the primary one."""
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise KeyringError(f"cannot read key file {path}: {error.strerror}") from None
        keys = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                keys.append(base64.b64decode(line, validate=True))
            except (binascii.Error, ValueError):
                raise KeyringError(f"{path}:{number}: not a base64 key") from None
        if not keys:
            raise KeyringError(f"{path}: no key in the file")
        return cls(tuple(keys))


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def _message(role: str, cluster: str, own_nonce: bytes, peer_nonce: bytes,
             own_name: str, peer_name: str) -> bytes:
    parts = [f"dynago-v1 {role}".encode(), cluster.encode(), peer_nonce, own_nonce,
             own_name.encode(), peer_name.encode()]
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def make_proof(keyring: Keyring | None, role: str, cluster: str, own_nonce: bytes,
               peer_nonce: bytes, own_name: str, peer_name: str) -> bytes:
    """Our proof for the peer (empty without a keyring)."""
    if keyring is None:
        return b""
    message = _message(role, cluster, own_nonce, peer_nonce, own_name, peer_name)
    return hmac.new(keyring.keys[0], message, hashlib.sha256).digest()


def check_proof(keyring: Keyring | None, proof: bytes, role: str, cluster: str,
                peer_nonce: bytes, own_nonce: bytes, peer_name: str,
                own_name: str) -> str | None:
    """None if the peer's ``proof`` (made in ``role``) is acceptable, else why not."""
    if keyring is None:
        return None if not proof else "peer uses a cluster key and this node has none"
    if not proof:
        return "peer sent no proof of the cluster key"
    if len(peer_nonce) != NONCE_BYTES:
        return "peer sent a malformed nonce"
    message = _message(role, cluster, peer_nonce, own_nonce, peer_name, own_name)
    for key in keyring.keys:
        expected = hmac.new(key, message, hashlib.sha256).digest()
        if hmac.compare_digest(expected, proof):
            return None
    return "peer's proof matches none of this node's cluster keys"
