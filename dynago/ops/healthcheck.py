"""``python -m dynago.ops.healthcheck HOST:PORT``: is the node on that port serving?

Asks the standard gRPC health service (``grpc.health.v1.Health/Check``) of a node's
node-to-node port, as Kubernetes' ``grpc`` probe and ``grpc_health_probe`` do, so that a
container image can have a ``HEALTHCHECK`` without shipping another binary. Exit codes:

* **0** — the node answered SERVING for the service asked (default ``""``: the node);
* **1** — anything else: NOT_SERVING (the node is stopping), nothing listening, no answer
  within ``--timeout``, an unknown service, a TLS failure;
* **2** — bad input: an address that is not ``HOST:PORT``, an unreadable TLS file, a bad
  flag.

One line on stderr says why whenever the exit code is not 0. Nodes that run mutual TLS
need ``--tls-cert``, ``--tls-key`` and ``--tls-ca`` (the node's own files will do).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from dynago.core.address import AddressError, parse_address

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"healthcheck: error: {message}\n")


def _address(text: str) -> str:
    try:
        parse_address(text)
    except AddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError("the timeout must be between 0 and 300 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dynago.ops.healthcheck",
                     description="Exit 0 when the dynago node at HOST:PORT (its node-to-node "
                                 "gRPC port) reports SERVING, 1 otherwise, 2 on bad input.")
    parser.add_argument("address", type=_address, metavar="HOST:PORT")
    parser.add_argument("--service", default="",
                        help="service to ask about (default '': the whole node; or "
                             "dynago.v1.Membership)")
    parser.add_argument("--timeout", type=_timeout, default=3.0, metavar="SECONDS",
                        help="give up after this long (default 3)")
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
    parser.add_argument("--tls-key", metavar="PEM", help="client private key")
    parser.add_argument("--tls-ca", metavar="PEM", help="the cluster's CA certificate")
    parser.add_argument("--tls-server-name", default="dynago", metavar="NAME",
                        help="DNS name the node certificates carry (default 'dynago')")
    return parser


def check(address: str, *, service: str = "", timeout_s: float = 3.0,
          tls: tuple[bytes, bytes, bytes, str] | None = None) -> tuple[bool, str]:
    """Ask ``address``'s health service about ``service``.

    Args:
        address: the node's gRPC ``HOST:PORT`` (checked by the caller).
        service: the service name; ``""`` is the node as a whole.
        timeout_s: deadline of the whole check, connecting included.
        tls: ``(cert, key, ca, server_name)`` for mutual TLS, or None for plaintext.

    Returns:
        ``(serving, detail)``: serving is True only for a SERVING answer; detail is the
        status name or the reason there was none.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if tls is None:
        channel = grpc.insecure_channel(address)
    else:
        cert, key, ca, server_name = tls
        credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                                   certificate_chain=cert)
        channel = grpc.secure_channel(
            address, credentials, options=[("grpc.ssl_target_name_override", server_name)])
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service),
                                timeout=timeout_s, wait_for_ready=False)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            name = code.name if code is not None else "ERROR"
            return False, f"{name}: {error.details() if hasattr(error, 'details') else error}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return answer.status == health_pb2.HealthCheckResponse.SERVING, status


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ValueError(f"cannot read the {what} {path!r}: {error.strerror}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tls_files = (args.tls_cert, args.tls_key, args.tls_ca)
    tls = None
    if any(tls_files):
        if not all(tls_files):
            print("healthcheck: error: mutual TLS needs all of --tls-cert, --tls-key and "
                  "--tls-ca", file=sys.stderr)
            return EXIT_USAGE
        try:
            tls = (_read(args.tls_cert, "certificate"), _read(args.tls_key, "key"),
                   _read(args.tls_ca, "CA"), args.tls_server_name)
        except ValueError as error:
            print(f"healthcheck: error: {error}", file=sys.stderr)
            return EXIT_USAGE
    serving, detail = check(args.address, service=args.service, timeout_s=args.timeout,
                            tls=tls)
    if serving:
        return EXIT_SERVING
    print(f"healthcheck: {args.address}: {detail}", file=sys.stderr)
    return EXIT_NOT_SERVING


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
