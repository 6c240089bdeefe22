"""NodeOptions: everything a Node is configured with, as one frozen, checked value.

The CLI (from flags, the config file and the environment: cli_node, ops.config_file)
and tests build one; ``Node`` assembles its parts (transport, MembershipActor, admin
API, services) from it. Live objects — a transport, a clock, a scheduler, fault rules
a test steers, event handlers, services — are parts handed to ``Node`` beside it, not
options.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dynago.config import Config
from dynago.core.address import parse_address
from dynago.core.tags import Tags, make_tags
from dynago.transport.resolve import parse_seed

if TYPE_CHECKING:
    from dynago.transport.handshake import Keyring
    from dynago.transport.tls import TlsFiles


@dataclass(frozen=True, kw_only=True)
class NodeOptions:
    """How to run one node. Checked when built: raises ConfigError, AddressError or
    TagError (all ValueErrors) with a plain sentence, so a bad option fails before
    anything binds."""

    bind: str
    """Node-to-node listen address, ``HOST:PORT`` (port 0: any free port)."""
    name: str | None = None
    """Node name (None: the advertised address)."""
    seeds: tuple[str, ...] = ()
    """Seed addresses to join through: ``HOST:PORT`` or ``dns:NAME:PORT``."""
    config: Config = field(default_factory=Config.lan)
    """Protocol settings (validated here)."""
    http_bind: str | None = None
    """Admin API listen address (None: no admin API)."""
    advertise: str | None = None
    """The address other nodes are told, if not the bound one (NAT, containers)."""
    tags: Tags = ()
    """This node's tags; any mapping or pairs are made canonical (core.tags)."""
    seed: int | None = None
    """Seed of the node's random choices (None: from the OS); tests fix it."""
    keyring: Keyring | None = None
    """Cluster keys peers must prove they hold (None: no key check)."""
    tls: TlsFiles | None = None
    """Mutual TLS material for node-to-node streams (None: plaintext)."""
    admin_token: str | None = None
    """Bearer token the admin API's changing endpoints require (None: none)."""
    fault_injection: bool = False
    """Serve /v1/faults and let its rules drop or delay messages (tests, drills)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", self.config.validate())
        tags: Mapping[str, str] | Iterable[tuple[str, str]] = self.tags
        object.__setattr__(self, "tags", make_tags(tags))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        parse_address(self.bind, allow_port_zero=True)
        for address in self.seeds:
            parse_seed(address)  # HOST:PORT, or dns:NAME:PORT (resolved at each dial)
        if self.advertise is not None:
            parse_address(self.advertise)
        if self.http_bind is not None:
            parse_address(self.http_bind, allow_port_zero=True)
