"""``dynago node``: settings -> NodeOptions -> a running Node, until a signal.

Only parses, wires and waits: the settings come resolved from flags, the config file
and the environment (ops.config_file); ``node_options`` turns them into the frozen
NodeOptions the Node is assembled from.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dynago import cli_tags
from dynago.config import Config, ConfigError
from dynago.core.address import AddressError
from dynago.node_options import NodeOptions
from dynago.ops import config_file

if TYPE_CHECKING:
    from dynago.actors.kv_service import KvService

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print ``dynago: error: message`` on stderr; returns ``code`` (the exit status)."""
    print(f"dynago: error: {message}", file=sys.stderr)
    return code


def read_secret(path: str, what: str) -> str:
    """The stripped contents of the secret file ``path``; ArgumentTypeError if it cannot
    be read or is empty."""
    try:
        with open(path) as handle:
            secret = handle.read().strip()
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"cannot read {what} file {path}: {error.strerror}") from None
    if not secret:
        raise argparse.ArgumentTypeError(f"{what} file {path} is empty")
    return secret


def node_options(args: argparse.Namespace, config: Config) -> NodeOptions:
    """NodeOptions from resolved ``dynago node`` settings. Raises ValueError (bad
    options, TLS flags given only in part), KeyringError, TransportError or
    ArgumentTypeError (a secret file) with a plain sentence."""
    from dynago.transport.grpc_transport import TlsFiles
    from dynago.transport.handshake import Keyring

    keyring = Keyring.from_file(args.cluster_key_file) if args.cluster_key_file else None
    tls_args = (args.tls_cert, args.tls_key, args.tls_ca)
    tls = None
    if any(tls_args):
        if not all(tls_args):
            raise ValueError("mutual TLS needs all of --tls-cert, --tls-key and --tls-ca")
        tls = TlsFiles.load(args.tls_cert, args.tls_key, args.tls_ca, args.tls_server_name)
    token = (read_secret(args.admin_token_file, "admin token")
             if args.admin_token_file else None)
    return NodeOptions(
        bind=args.bind, name=args.name, seeds=tuple(args.seed), config=config,
        http_bind=args.http, advertise=args.advertise,
        tags=tuple(cli_tags.tag_argument(tag) for tag in args.tag),
        keyring=keyring, tls=tls, admin_token=token,
        fault_injection=bool(args.enable_fault_injection),
    )


def kv_service(args: argparse.Namespace, config: Config,
               kv: Mapping[str, Any] | None = None) -> KvService:
    """The node's key-value store from its settings (``kv``: the ``[kv]`` fields,
    ops.config_kv; ConfigError if they do not fit)."""
    from dynago.actors.kv_service import KvService
    from dynago.kv.config import KvConfig

    kv_config = KvConfig(data_dir=args.data_dir, engine=args.storage_engine,
                         max_key_bytes=args.max_key_bytes, max_value_bytes=args.max_value_bytes,
                         request_timeout_s=args.kv_request_timeout_s, **dict(kv or {}))
    return KvService(kv_config.validate(config.max_message_bytes))


def run_node(args: argparse.Namespace) -> int:
    try:
        settings = config_file.resolve(args, os.environ)
    except config_file.SettingsError as error:
        return fail(str(error))
    if args.print_config:
        print(config_file.render(settings), end="")
        return 0
    args, config = settings.args, settings.config
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from dynago.ops import logs

    logs.configure(args.log_level, args.log_format)
    for warning in settings.warnings:
        logging.getLogger("dynago").warning("%s", warning)
    import pykka

    from dynago.node import Node
    from dynago.storage import StorageError
    from dynago.transport.base import TransportError
    from dynago.transport.handshake import KeyringError

    try:
        options = node_options(args, config)
        handlers = None
        if args.on_event:
            from dynago.ops.handlers import EventHandlers

            handlers = EventHandlers(args.on_event, concurrency=args.on_event_concurrency,
                                     timeout_s=args.on_event_timeout_s)
        store = kv_service(args, config, settings.kv)
        store.open_storage()
        node = Node(options, event_handlers=handlers, services=[store])
    except (StorageError, ConfigError, AddressError, KeyringError, TransportError, ValueError,
            argparse.ArgumentTypeError) as error:
        return fail(str(error))

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        try:
            node.start()
        except TransportError as error:
            return fail(str(error))
        except OSError as error:
            return fail(f"cannot bind the admin API on {args.http}: {error.strerror or error}")
        except (ValueError, StorageError) as error:
            return fail(str(error))
        if node.http is not None:
            node.http.set_on_leave(stop.set)
        bound = f" bound={node.bound_address}" if node.bound_address != node.address else ""
        print(f"ready name={node.name} address={node.address} http={node.http_address or ''}"
              f"{bound}", flush=True)
        while not stop.wait(1.0):
            pass
        logging.getLogger("dynago").info("stopping: announcing the leave")
    finally:
        node.stop(leave=True)
        pykka.ActorRegistry.stop_all(timeout=1.0)
    return 0
