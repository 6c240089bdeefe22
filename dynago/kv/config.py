"""Settings of a node's key-value store. The ring's partitions and replica count are
cluster-wide and live in ``dynago.config.Config`` (``ring_partitions``, ``n_val``), since
nodes compare them in their handshake; everything here is per node.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynago.config import ConfigError
from dynago.storage.engine import DEFAULT_ENGINE, ENGINES


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
    """An exchange is not started, and a repair waits, while the storage actor has more
    than this many messages queued: the foreground is busy (default 64)."""

    def validate(self, max_message_bytes: int) -> KvConfig:
        """Return self if usable, else raise ConfigError saying what is wrong."""
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
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
        for name in ("aae_exchange_interval_s", "aae_max_keys_per_s", "aae_max_bytes_per_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be greater than 0, got {getattr(self, name)}")
        if self.aae_pause_queue_depth < 1:
            raise ConfigError(f"aae_pause_queue_depth must be at least 1, "
                              f"got {self.aae_pause_queue_depth}")
        return self
