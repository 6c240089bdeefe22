"""Settings of a node's key-value store. The ring's partitions and replica count are
cluster-wide and live in ``dynago.config.Config`` (``ring_partitions``, ``n_val``), since
nodes compare them in their handshake; everything here is per node.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynago.config import ConfigError
from dynago.storage.engine import DEFAULT_ENGINE, ENGINES

READ_FANOUTS = ("all", "quorum")
"""The values of ``KvConfig.read_fanout``."""


@dataclass(frozen=True, slots=True)
class KvConfig:
    """Every ``*_s`` field is in seconds, every ``*_bytes`` in bytes."""

    data_dir: str | None = None
    """Where the storage engine keeps its files. None: in memory only — a restart loses
    everything, and the node logs one warning line saying so."""

    engine: str = DEFAULT_ENGINE
    """Storage engine under ``data_dir``: ``sqlite`` (default: WAL mode, one fsync per
    commit; see dynago.storage.DEFAULT_ENGINE for the measurements) or ``lmdb`` (faster
    reads, two syncs per commit, keys with their bucket at most 511 bytes)."""

    read_fanout: str = "all"
    """Which replicas a get asks: ``all`` (default, as Riak: every replica at once, and
    read repair of each that answered behind) or ``quorum`` (R of them, this node first;
    the others on a failure or after ``speculative_read_s``; half the replica messages
    of a get at N=3, R=2, and read repair only of the replicas asked). See
    dynago.actors.kv_reads."""

    speculative_read_s: float = 0.05
    """With ``read_fanout = "quorum"``: how long a get waits for the replicas it asked
    before it asks the others too (default 50 ms)."""

    request_timeout_s: float = 5.0
    """How long a coordinator waits for the R or W replies of one request before it
    answers 503 naming how many answered (default 5 s). Lower fails faster under a
    partition; higher rides out slower replicas."""

    max_key_bytes: int = 1024
    """Longest key (UTF-8 bytes, default 1 KiB); longer ones are refused with 413."""

    max_value_bytes: int = 1 << 20
    """Largest value (default 1 MiB); larger ones are refused with 413. It must stay under
    the message cap (``Config.max_message_bytes``) with room for an envelope."""

    ring_grace_s: float = 3600.0
    """How long a failed member keeps its partitions (default 1 hour). A temporary failure
    must not move data — reads and writes go on with the other replicas — so only a member
    that left, or stayed failed this long, drops out of the ring and its partitions move."""

    hint_handoff_per_s: float = 100.0
    """Most hints a node hands back to their owners per second, all owners together
    (default 100). Higher: a returning node is caught up sooner, at the cost of more
    load on it just as it comes back; lower: gentler, longer with fewer copies."""

    hint_handoff_in_flight: int = 8
    """Most hand-backs waiting for their owner's durable acknowledgement at once
    (default 8); a bound on what a slow owner costs the node handing back."""

    hint_retry_s: float = 5.0
    """After a hand-back to an owner fails or times out, how long before that owner is
    tried again (default 5 s), from the hint it stopped at."""

    hint_check_interval_s: float = 1.0
    """How often a node holding hints looks for owners alive again (default 1 s), beside
    reacting to membership events at once."""
    handoff_chunk_keys: int = 500
    """Most objects in one handoff chunk (default 500; at most 10000). With
    ``handoff_chunk_bytes`` it sets how much one acknowledgement covers."""

    handoff_chunk_bytes: int = 256 * 1024
    """Most object bytes in one handoff chunk (default 256 KiB; a larger object travels
    alone). It must stay under the message cap with room for an envelope."""

    handoff_in_flight: int = 4
    """Handoff chunks this node has sent and not yet had acknowledged, all transfers
    together (default 4): the handoff's rate knob. It sends at most
    ``in_flight * chunk_bytes`` per round trip plus the receiver's commit; lower it to
    leave more of the network and the disks to clients, raise it on fast links."""

    handoff_max_keys_s: float = 0.0
    """Most objects per second this node sends in handoff chunks, all transfers together
    (default 0: no limit beyond ``handoff_in_flight``). Set it to keep a node that joins
    or leaves from taking the disks and the network from clients."""

    handoff_ack_timeout_s: float = 10.0
    """How long a handoff chunk waits for its acknowledgement before the transfer
    resumes from the last acknowledged chunk (default 10 s)."""

    handoff_leave_timeout_s: float = 60.0
    """How long ``dynago leave`` and SIGTERM wait for this node's data to be handed off
    before the node exits anyway (default 60 s); what was not acknowledged by then is
    logged and left to anti-entropy."""
    aae_enabled: bool = True
    """Active anti-entropy (dynago.kv.tictac, docs/reliability.md): replicas compare hash
    trees of their partitions and repair the keys that differ, read or not. On by
    default; within the budget below."""

    aae_exchange_interval_s: float = 10.0
    """Mean time between two exchanges started by this node (each of one partition with
    one other live replica), jittered ±50 % so nodes do not fall into step (default
    10 s). Lower repairs sooner; an equal partition costs one 8-byte round trip."""

    aae_max_keys_per_s: float = 100.0
    """Most keys anti-entropy repairs per second, sent and fetched together (default
    100). Bounds the store writes and reads repairs add to the foreground's."""

    aae_max_bytes_per_s: float = float(1 << 20)
    """Most object bytes per second anti-entropy sends (default 1 MiB/s)."""

    aae_pause_queue_depth: int = 64
    """An exchange is not started, and repairs are left for a later exchange, while the
    storage actor has more than this many messages queued: the foreground is busy
    (default 64)."""

    def validate(self, max_message_bytes: int) -> KvConfig:
        """Return self if usable, else raise ConfigError saying what is wrong."""
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.read_fanout not in READ_FANOUTS:
            raise ConfigError(f"read_fanout must be one of {', '.join(READ_FANOUTS)}, "
                              f"got {self.read_fanout!r}")
        if not self.speculative_read_s > 0:
            raise ConfigError(f"speculative_read_s must be greater than 0, "
                              f"got {self.speculative_read_s}")
        if self.read_fanout == "quorum" and self.speculative_read_s >= self.request_timeout_s:
            raise ConfigError(f"speculative_read_s must be less than request_timeout_s "
                              f"({self.request_timeout_s}) with read_fanout quorum, "
                              f"got {self.speculative_read_s}")
        if not self.request_timeout_s > 0:
            raise ConfigError(f"request_timeout_s must be greater than 0, "
                              f"got {self.request_timeout_s}")
        if not 1 <= self.max_key_bytes <= 65_535:
            raise ConfigError(f"max_key_bytes must be 1 to 65535, got {self.max_key_bytes}")
        room = max_message_bytes - 64 * 1024
        if not 1 <= self.max_value_bytes <= room:
            raise ConfigError(
                f"max_value_bytes must be 1 to {room} (max_message_bytes less 64 KiB for the "
                f"envelope), got {self.max_value_bytes}")
        if not self.ring_grace_s > 0:
            raise ConfigError(f"ring_grace_s must be greater than 0, got {self.ring_grace_s}")
        if not self.hint_handoff_per_s > 0:
            raise ConfigError(f"hint_handoff_per_s must be greater than 0, "
                              f"got {self.hint_handoff_per_s}")
        if not 1 <= self.hint_handoff_in_flight <= 1024:
            raise ConfigError(f"hint_handoff_in_flight must be 1 to 1024, "
                              f"got {self.hint_handoff_in_flight}")
        if not self.hint_retry_s > 0 or not self.hint_check_interval_s > 0:
            raise ConfigError(f"hint_retry_s and hint_check_interval_s must be greater than "
                              f"0, got {self.hint_retry_s} and {self.hint_check_interval_s}")
        if not 1 <= self.handoff_chunk_keys <= 10_000:
            raise ConfigError(f"handoff_chunk_keys must be 1 to 10000, "
                              f"got {self.handoff_chunk_keys}")
        if not 1 <= self.handoff_chunk_bytes <= room:
            raise ConfigError(f"handoff_chunk_bytes must be 1 to {room} (max_message_bytes "
                              f"less 64 KiB), got {self.handoff_chunk_bytes}")
        if not 1 <= self.handoff_in_flight <= 64:
            raise ConfigError(f"handoff_in_flight must be 1 to 64, got {self.handoff_in_flight}")
        if not self.handoff_max_keys_s >= 0:
            raise ConfigError(f"handoff_max_keys_s must be 0 (no limit) or more, "
                              f"got {self.handoff_max_keys_s}")
        for knob in ("handoff_ack_timeout_s", "handoff_leave_timeout_s"):
            if not getattr(self, knob) > 0:
                raise ConfigError(f"{knob} must be greater than 0, got {getattr(self, knob)}")
        for name in ("aae_exchange_interval_s", "aae_max_keys_per_s", "aae_max_bytes_per_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be greater than 0, got {getattr(self, name)}")
        if self.aae_pause_queue_depth < 1:
            raise ConfigError(f"aae_pause_queue_depth must be at least 1, "
                              f"got {self.aae_pause_queue_depth}")
        return self
