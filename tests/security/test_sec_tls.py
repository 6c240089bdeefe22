"""Mutual TLS between nodes: certificates from the cluster CA form a cluster; a plaintext
node, a node whose certificate another CA signed, a raw plaintext gRPC client and a TLS
client without a certificate get nothing in. Certificates are made here (``cryptography``:
EC P-256, SAN DNS:dynago, valid for one hour) and written under ``tmp_path``."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dynago.transport import codec

pytestmark = pytest.mark.process

SERVER_NAME = "dynago"
"""The DNS SAN every node certificate carries (the nodes' default --tls-server-name)."""

ATTEMPTS = 3
"""Failed seed dials of a node that must stay out, waited for before judging."""


# ---------------------------------------------------------------------- certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Ca:
    """A throwaway certificate authority."""

    def __init__(self, common_name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.name = _name(common_name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) of a node: SAN DNS:dynago, server and client use."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _tls_args(directory: Path, node: str, ca: Ca, trusted: Ca) -> list[str]:
    """Write ``node``'s certificate (signed by ``ca``), key and the CA it trusts; return
    its --tls-* flags."""
    cert, key = ca.issue(node)
    paths = {"cert": directory / f"{node}.crt", "key": directory / f"{node}.key",
             "ca": directory / f"{node}-trusts.crt"}
    paths["cert"].write_bytes(cert)
    paths["key"].write_bytes(key)
    paths["key"].chmod(0o600)
    paths["ca"].write_bytes(trusted.pem)
    return ["--tls-cert", str(paths["cert"]), "--tls-key", str(paths["key"]),
            "--tls-ca", str(paths["ca"])]


# ---------------------------------------------------------------------- the test


def test_tls_mutual_only_cluster_ca_certificates_join(
    cluster: Any, raw_peer: Any, tmp_path: Path
) -> None:
    """``a`` and ``b`` (certificates from the cluster CA) form a cluster. ``p`` (no TLS at
    all) and ``w`` (certificate from another CA, though it trusts the cluster CA) seed
    from ``a`` and never get in; a raw plaintext gRPC client and a TLS client without a
    certificate cannot even open a stream. ``a`` keeps serving exactly ``a`` and ``b``;
    nothing from the outsiders reached its handshake (no refusal, nothing malformed)."""
    directory = tmp_path / "tls"
    directory.mkdir()
    cluster_ca, other_ca = Ca("dynago test cluster CA"), Ca("some other CA")

    a = cluster("a", extra_args=_tls_args(directory, "a", cluster_ca, cluster_ca))
    b = cluster("b", seeds=[a.address],
                extra_args=_tls_args(directory, "b", cluster_ca, cluster_ca))
    cluster.wait(lambda: cluster.all_list([a, b], [a.address, b.address]),
                 "a and b to form over mutual TLS")

    p, w = cluster.start_many([
        ("p", [a.address], []),
        ("w", [a.address], _tls_args(directory, "w", other_ca, cluster_ca)),
    ])
    cluster.wait(lambda: all(cluster.stats(n)["seed_dial_failures"] >= ATTEMPTS for n in (p, w)),
                 f"{ATTEMPTS} failed seed dials each of p (plaintext) and w (other CA)")

    # A raw plaintext gRPC client: the TLS port does not speak plaintext HTTP/2.
    plain = raw_peer(a.address)
    plain.send(codec.encode(codec.Hello("intruder", "127.0.0.1:9", "dynago", 1, 1,
                                        nonce=b"\x00" * 16)))
    assert plain.wait_closed(), "a plaintext stream to a TLS node stayed open"
    assert plain.recv(timeout_s=1.0) is None, "a answered a plaintext client"
    assert plain.end.startswith("UNAVAILABLE"), plain.end

    # A TLS client that trusts the cluster CA but has no certificate of its own.
    anonymous = raw_peer(a.address, credentials=grpc.ssl_channel_credentials(cluster_ca.pem),
                         options=[("grpc.ssl_target_name_override", SERVER_NAME)])
    anonymous.send(codec.encode(codec.Hello("intruder", "127.0.0.1:9", "dynago", 1, 1,
                                            nonce=b"\x00" * 16)))
    assert anonymous.wait_closed(), "a TLS stream without a client certificate stayed open"
    assert anonymous.recv(timeout_s=1.0) is None, "a answered a client without certificate"
    assert anonymous.end.startswith("UNAVAILABLE"), anonymous.end

    for node in (a, b):
        cluster.assert_serves_exactly(node, [a, b])
        assert set(cluster.statuses(node)) == {"a", "b"}, cluster.report(
            f"{node.name} holds records of outsiders")
    cluster.assert_serves_exactly(p, [p])
    cluster.assert_serves_exactly(w, [w])
    stats = cluster.stats(a)
    # Nothing reached the handshake: no stream was refused or found malformed on a.
    assert stats["transport_streams_refused"] == 0, cluster.report(f"a: {stats}")
    assert stats["transport_malformed_messages"] == 0, cluster.report(f"a: {stats}")
