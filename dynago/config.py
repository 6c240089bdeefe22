"""Node configuration: one frozen object, every field with its unit and default.

Presets:

* ``Config.lan()`` — the default for a cluster on one local network.
* ``Config.local()`` — faster timings for clusters on one machine and for tests.
* ``Config.wan()`` — slower, more patient timings for members spread over a wide-area
  network (after memberlist's DefaultWANConfig).

``validate()`` checks each field and the relations between fields and raises
``ConfigError`` with a plain sentence; nothing else in the node re-checks them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

PROTOCOL_VERSION = 3
"""Version of the wire protocol this code speaks (2: the key-value store's Kv* kinds; 3: batch
envelopes, which are sent only to peers of version 3 or later, and the repair layer's kinds
and fields: hints on KvPut/KvGet, KvAae*, KvHandoff*, KvExplain*, which a version-2 peer
drops and counts as malformed)."""

MIN_COMPATIBLE_PROTOCOL_VERSION = 2
"""Oldest peer protocol version this code still understands."""

DEFAULT_CLUSTER = "dynago"


class ConfigError(ValueError):
    """A configuration value, or a combination of values, is not usable."""


@dataclass(frozen=True, slots=True)
class Config:
    """Timing and size settings of one node.

    Every ``*_s`` field is in seconds (floats allowed), every ``*_bytes`` in bytes.
    """

    cluster: str = DEFAULT_CLUSTER
    """Cluster name. Nodes refuse streams from nodes with another name."""

    ring_partitions: int = 64
    """Partitions of the key-value store's ring (default 64; a power of two, 8 to 1024),
    fixed for the life of a cluster: nodes whose ring differs refuse each other. More
    partitions spread keys more evenly over many nodes and cost more per ring change."""

    n_val: int = 3
    """Replicas of every key (default 3; 1 to 5), fixed per cluster like
    ``ring_partitions``. Quorums (R, W) are counted out of it."""

    tick_interval_s: float = 0.05
    """How often the membership actor gets a timer tick (default 0.05 s). Every periodic
    action below is rounded up to a multiple of it: lower it for finer timing, at the cost
    of more wake-ups of an idle node."""

    gossip_interval_s: float = 0.2
    """Period of a gossip round (default 0.2 s). Each round sends the pending changes to
    ``gossip_fanout`` random members. Lower spreads changes faster and sends more messages."""

    gossip_fanout: int = 3
    """Members a gossip round sends to (default 3). Higher spreads faster, costs
    proportionally more messages per round."""

    retransmit_mult: int = 4
    """A change is sent in ``retransmit_mult * ceil(log10(N + 1))`` rounds before it is
    dropped from the gossip queue (default 4, as memberlist). Higher makes a change more
    likely to reach everyone under loss; lower saves bytes."""

    max_updates_per_message: int = 64
    """Most member records in one gossip message (default 64). Bounds message size."""

    anti_entropy_interval_s: float = 10.0
    """Period of the full-state exchange with one random member (default 10 s) in a
    cluster of up to 32 members. It repairs whatever gossip missed. Each exchange costs
    O(N) bytes, so above 32 members the period is multiplied by
    ``ceil(log2(N / 32)) + 1`` (memberlist's rule): x2 at 64 members, x6 at 1,000, x10 at
    10,000. Lower repairs faster."""

    max_members_per_sync_message: int = 256
    """Most member records in one chunk of a full-state exchange (default 256)."""

    max_message_bytes: int = 4 << 20
    """Largest message accepted or sent on a stream (default 4 MiB). Larger ones are
    refused. It bounds a key-value object on the wire (its values and siblings together),
    so it must exceed the largest value a client may store (1 MiB by default); a stream
    reads at most 4 messages ahead, so it also bounds what one peer can make a node hold."""

    connect_timeout_s: float = 3.0
    """How long a dial may take, handshake included, before it counts as failed (default 3 s)."""

    reconnect_initial_backoff_s: float = 0.1
    """First delay before redialling a lost stream (default 0.1 s); it doubles per failure."""

    reconnect_max_backoff_s: float = 5.0
    """Cap on the redial delay (default 5 s). Each delay is jittered to between half and
    all of its value, so peers do not redial in step."""

    outbound_buffer_size: int = 256
    """Messages a peer actor holds while its stream is down (default 256); the oldest is
    dropped (and counted) beyond that."""

    leave_timeout_s: float = 1.0
    """How long a leaving node waits for its leave notice to be written to its peers
    (default 1 s) before it stops anyway."""

    probe_interval_s: float = 0.5
    """SWIM protocol period (default 0.5 s): each period this node probes one member,
    round-robin over a shuffled list. Lower detects failures sooner and sends more probes
    (one ping and one ack per node per period, whatever N)."""

    probe_timeout_s: float = 0.2
    """How long a direct probe waits for its ack before asking ``indirect_checks`` other
    members to probe, and how long those helpers wait before they nack (default 0.2 s;
    ``probe_interval_s`` must hold two of it plus two ticks). Raise it on slow or loaded
    networks; too low sends needless indirect probes."""

    indirect_checks: int = 3
    """Members asked to probe a target that did not answer directly (default 3). More
    helpers make a false suspicion through one bad link less likely."""

    suspicion_mult: int = 3
    """Lifeguard minimum suspicion timeout is ``suspicion_mult * max(1, log10(N)) *
    probe_interval_s`` (default 3: 1.5 s for N < 10 in this preset). Higher tolerates
    longer pauses of a member before it is declared failed, and detects crashes later."""

    suspicion_max_timeout_mult: int = 4
    """A suspicion starts at ``suspicion_max_timeout_mult`` times the minimum and shrinks
    to the minimum as independent members confirm it (default 4)."""

    awareness_max_multiplier: int = 8
    """Lifeguard local health: probe interval and timeout stretch up to this factor while
    this node sees signs that it is itself slow (default 8)."""

    reconnect_interval_s: float = 2.0
    """How often this node may try one failed member, and any seed that is not a live
    member, again with a full-state exchange (default 2 s). This heals partitions with no
    operator action. Each period a node tries a failed member with probability
    failed / live (Serf's rule, capped at 1), so a cluster as a whole tries each failed
    member about once per period, however large it is. Lower heals faster; each try costs
    one O(N) exchange."""

    tombstone_retention_s: float = 3600.0
    """How long failed and left members are kept, with their incarnation, before they are
    forgotten (default 3600 s). They are tried again (failed) and shown in /v1/members
    meanwhile. Too low lets a stale record of a dead member come back as news."""

    max_members: int = 10_000
    """Most members (tombstones included) this node holds (default 10,000). Records of
    further new members are dropped and counted; members already held are never pushed
    out. Raise it for larger clusters: memory is about 1 KB per member."""

    new_members_per_peer_per_s: float = 100.0
    """How many members not yet known one peer may introduce per second, after its burst
    (default 100/s). Bounds what a misbehaving peer can make up."""

    new_members_burst: int = 2048
    """How many new members one peer may introduce at once (default 2048), then at the
    rate above. A node that has not joined yet takes the whole list of the seed it joins
    through, whatever its size (only ``max_members`` applies): the operator named it."""

    keepalive_interval_s: float = 10.0
    """HTTP/2 keepalive ping period on node-to-node connections (default 10 s). A hint about
    the connection only; it never decides that a member failed."""

    history_per_member: int = 32
    """How many of its latest state changes the node keeps per member for
    ``/v1/members/{name}/history`` and ``dynago explain`` (default 32)."""

    history_max_members: int = 2048
    """Of how many members the node keeps a history (default 2048); past that, the
    member whose latest change is the oldest is forgotten first."""

    @classmethod
    def lan(cls, **overrides: object) -> Config:
        """The default preset for nodes on one local network."""
        return dataclasses.replace(cls(), **overrides)  # type: ignore[arg-type]

    @classmethod
    def local(cls, **overrides: object) -> Config:
        """Faster timings for nodes on one machine and for tests."""
        base = cls(
            gossip_interval_s=0.1,
            anti_entropy_interval_s=2.0,
            reconnect_max_backoff_s=1.0,
            connect_timeout_s=2.0,
            probe_interval_s=0.3,
            probe_timeout_s=0.1,
            suspicion_mult=4,
            reconnect_interval_s=1.0,
            tombstone_retention_s=60.0,
        )
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]

    @classmethod
    def wan(cls, **overrides: object) -> Config:
        """Patient timings for members across a wide-area network, after memberlist's WAN
        preset: a 5 s protocol period with a 2 s probe timeout (round trips of hundreds of
        milliseconds, and room for the indirect probes within the period), a suspicion
        multiplier of 6 (minimum suspicion timeout 30 s for N < 10), gossip to 4 members
        every 0.5 s, and a full-state exchange every 60 s."""
        base = cls(
            gossip_interval_s=0.5,
            gossip_fanout=4,
            anti_entropy_interval_s=60.0,
            connect_timeout_s=10.0,
            reconnect_max_backoff_s=10.0,
            probe_interval_s=5.0,
            probe_timeout_s=2.0,
            suspicion_mult=6,
            reconnect_interval_s=10.0,
        )
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]

    def validate(self) -> Config:
        """Return self if usable, else raise ConfigError saying what is wrong."""
        if not self.cluster or len(self.cluster) > 128:
            raise ConfigError("cluster name must be 1 to 128 characters long")
        p = self.ring_partitions
        if not 8 <= p <= 1024 or p & (p - 1):
            raise ConfigError(f"ring_partitions must be a power of two from 8 to 1024, got {p}")
        if not 1 <= self.n_val <= 5:
            raise ConfigError(f"n_val must be 1 to 5, got {self.n_val}")
        positive = {
            "tick_interval_s": self.tick_interval_s,
            "gossip_interval_s": self.gossip_interval_s,
            "anti_entropy_interval_s": self.anti_entropy_interval_s,
            "connect_timeout_s": self.connect_timeout_s,
            "reconnect_initial_backoff_s": self.reconnect_initial_backoff_s,
            "reconnect_max_backoff_s": self.reconnect_max_backoff_s,
            "leave_timeout_s": self.leave_timeout_s,
            "keepalive_interval_s": self.keepalive_interval_s,
            "probe_interval_s": self.probe_interval_s,
            "probe_timeout_s": self.probe_timeout_s,
            "reconnect_interval_s": self.reconnect_interval_s,
            "tombstone_retention_s": self.tombstone_retention_s,
            "new_members_per_peer_per_s": self.new_members_per_peer_per_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be greater than 0, got {value}")
        counts = {
            "gossip_fanout": self.gossip_fanout,
            "retransmit_mult": self.retransmit_mult,
            "max_updates_per_message": self.max_updates_per_message,
            "max_members_per_sync_message": self.max_members_per_sync_message,
            "outbound_buffer_size": self.outbound_buffer_size,
            "indirect_checks": self.indirect_checks,
            "suspicion_mult": self.suspicion_mult,
            "suspicion_max_timeout_mult": self.suspicion_max_timeout_mult,
            "awareness_max_multiplier": self.awareness_max_multiplier,
            "max_members": self.max_members,
            "new_members_burst": self.new_members_burst,
            "history_per_member": self.history_per_member,
            "history_max_members": self.history_max_members,
        }
        for name, count in counts.items():
            if count < 1:
                raise ConfigError(f"{name} must be at least 1, got {count}")
        if self.gossip_interval_s < self.tick_interval_s:
            raise ConfigError(
                "gossip_interval_s must be at least tick_interval_s: "
                "gossip rounds run on ticks"
            )
        if self.probe_interval_s < 2 * self.probe_timeout_s + 2 * self.tick_interval_s - 1e-9:
            raise ConfigError(
                "probe_interval_s must be at least 2 * probe_timeout_s + 2 * tick_interval_s: "
                "the indirect probes that follow a timeout, and the helpers' nacks, must "
                "come back within the same protocol period"
            )
        if self.probe_timeout_s < self.tick_interval_s:
            raise ConfigError(
                "probe_timeout_s must be at least tick_interval_s: probe deadlines are "
                "checked on ticks"
            )
        if self.tombstone_retention_s <= self.reconnect_interval_s:
            raise ConfigError(
                "tombstone_retention_s must be longer than reconnect_interval_s, or failed "
                "members are forgotten before they are ever tried again"
            )
        if self.anti_entropy_interval_s < self.gossip_interval_s:
            raise ConfigError(
                "anti_entropy_interval_s must be at least gossip_interval_s: the full-state "
                "exchange repairs what gossip missed and should be the rarer of the two"
            )
        if self.reconnect_max_backoff_s < self.reconnect_initial_backoff_s:
            raise ConfigError(
                "reconnect_max_backoff_s must be at least reconnect_initial_backoff_s"
            )
        # A member record is at most ~600 bytes on the wire (name and address are capped),
        # plus its tags (capped too, see core.tags).
        from dynago.core.tags import MAX_TAGS_WIRE_BYTES

        worst = (600 + MAX_TAGS_WIRE_BYTES) * max(self.max_updates_per_message,
                                                  self.max_members_per_sync_message)
        if self.max_message_bytes < worst:
            raise ConfigError(
                f"max_message_bytes ({self.max_message_bytes}) is too small for "
                f"{max(self.max_updates_per_message, self.max_members_per_sync_message)} "
                f"members per message; it must be at least {worst}"
            )
        return self
