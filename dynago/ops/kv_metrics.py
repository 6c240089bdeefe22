"""The key-value store's Prometheus families, from one ``KvServiceSnapshot``.

Served in ``GET /metrics`` beside the node's (dynago.ops.metrics) when the node runs the
KV store. Counters end in ``_total``; no other family ends in ``_sum``, ``_count`` or
``_bucket`` (``promtool check metrics`` rejects those):

* ``dynago_kv_requests_total{op,outcome}`` — client requests coordinated here, by
  operation (get, put, delete) and outcome (ok, not_found, unavailable, bad_request,
  too_large, error); every pair is present, zero included.
* ``dynago_kv_request_duration_seconds{op}`` — a histogram of their latencies (buckets
  ``dynago.kv.stats.LATENCY_BUCKETS_S``).
* ``dynago_kv_requests_in_flight`` — requests still waiting for replicas.
* ``dynago_kv_reads_with_siblings_total``, ``dynago_kv_forwarded_requests_total``,
  ``dynago_kv_coordinated_for_others_total``, ``dynago_kv_replica_messages_dropped_total``,
  ``dynago_kv_internal_errors_total``; hinted handoff: ``dynago_kv_hints_held`` (gauge),
  ``dynago_kv_hints_stored_total``, ``dynago_kv_hints_handed_back_total``,
  ``dynago_kv_hints_redirected_total``,
  ``dynago_kv_hint_handback_failures_total``, ``dynago_kv_hint_messages_dropped_total``;
  anti-entropy: ``dynago_kv_aae_lag_seconds`` (gauge), ``dynago_kv_aae_exchanges_total``,
  ``dynago_kv_aae_segments_differing_total``, ``dynago_kv_aae_keys_sent_total``,
  ``dynago_kv_aae_keys_received_total``, ``dynago_kv_aae_tombstones_reaped_total``,
  ``dynago_kv_aae_messages_dropped_total``, ``dynago_kv_aae_keys`` and
  ``dynago_kv_aae_tombstones`` (gauges); ``dynago_kv_speculative_reads_total``.
* The store: ``dynago_kv_store_keys``, ``dynago_kv_store_size_bytes`` (gauges),
  ``dynago_kv_store_writes_total``, ``dynago_kv_store_commits_total``,
  ``dynago_kv_store_fsyncs_total``, ``dynago_kv_store_errors_total``.
* The ring: ``dynago_kv_ring_partitions``, ``dynago_kv_ring_members``,
  ``dynago_kv_ring_partitions_owned`` (gauges; this node's view).

* Ownership handoff: dynago.ops.kv_handoff_metrics.

A part whose actor did not answer in time is left out of that scrape, not shown as zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from dynago.actors.kv_service import KvServiceSnapshot

KV_COUNTERS: dict[str, tuple[str, str]] = {
    "kv_reads_with_siblings": ("dynago_kv_reads_with_siblings",
                               "Reads coordinated here that answered more than one sibling."),
    "kv_forwarded": ("dynago_kv_forwarded_requests",
                     "Writes forwarded to a node of the key's preference list to coordinate."),
    "kv_coordinated_for_others": ("dynago_kv_coordinated_for_others",
                                  "Writes this node coordinated for another node."),
    "kv_replica_messages_dropped": ("dynago_kv_replica_messages_dropped",
                                    "Replica messages from peers dropped: malformed or "
                                    "unexpected."),
    "kv_hints_stored": ("dynago_kv_hints_stored",
                        "Hints committed here as a fallback for an unhealthy primary "
                        "(rewrites included)."),
    "kv_hints_handed_back": ("dynago_kv_hints_handed_back",
                             "Hints handed back to their owner and deleted here."),
    "kv_hints_redirected": ("dynago_kv_hints_redirected",
                            "Hints of an owner out of the ring, delivered to the key's "
                            "current owners and deleted here."),
    "kv_hint_handback_failures": ("dynago_kv_hint_handback_failures",
                                  "Hand-backs refused, unsent or unacknowledged in time "
                                  "(retried later)."),
    "kv_hint_messages_dropped": ("dynago_kv_hint_messages_dropped",
                                 "Hint messages from peers dropped: malformed."),
    "kv_handoff_proxied_reads": ("dynago_kv_handoff_proxied_reads",
                                 "Replica reads also asked of nodes still handing the "
                                 "partition here."),
    "kv_aae_exchanges": ("dynago_kv_aae_exchanges",
                         "Anti-entropy exchanges this node started that completed."),
    "kv_aae_segments_differing": ("dynago_kv_aae_segments_differing",
                                  "Tree segments found differing in those exchanges."),
    "kv_aae_keys_sent": ("dynago_kv_aae_keys_sent",
                         "Objects anti-entropy sent to other replicas (ReplicaPut)."),
    "kv_aae_keys_received": ("dynago_kv_aae_keys_received",
                             "Objects anti-entropy asked other replicas for (AaePush)."),
    "kv_aae_tombstones_reaped": ("dynago_kv_aae_tombstones_reaped",
                                 "Tombstones every replica confirmed, reaped to markers."),
    "kv_aae_messages_dropped": ("dynago_kv_aae_messages_dropped",
                                "Anti-entropy messages dropped: malformed or unexpected."),
    "kv_speculative_reads": ("dynago_kv_speculative_reads",
                             "Gets (read_fanout quorum) that waited speculative_read_s "
                             "and asked the replicas they had held back."),
    "kv_internal_errors": ("dynago_kv_internal_errors",
                           "Messages the KV actor failed to handle (a bug: see the log)."),
}


def kv_families(snapshot: KvServiceSnapshot) -> Iterator[Metric]:
    """The families of the module docstring, from ``snapshot``."""
    kv = snapshot.kv
    if kv is not None:
        requests = CounterMetricFamily("dynago_kv_requests",
                                       "KV client requests coordinated here, by operation "
                                       "and outcome.", labels=["op", "outcome"])
        for (op, outcome), n in sorted(kv.requests.items()):
            requests.add_metric([op, outcome], n)
        yield requests
        latency = HistogramMetricFamily("dynago_kv_request_duration_seconds",
                                        "Latency of KV client requests, by operation.",
                                        labels=["op"])
        for op, hist in sorted(kv.latency.items()):
            latency.add_metric([op], [(_le(bound), n) for bound, n in hist.buckets],
                               sum_value=hist.sum)
        yield latency
        yield GaugeMetricFamily("dynago_kv_requests_in_flight",
                                "KV requests waiting for replicas now.", value=kv.in_flight)
        for key, (name, text) in KV_COUNTERS.items():
            yield CounterMetricFamily(name, text, value=kv.counters.get(key, 0))
        if "kv_hints_held" in kv.counters:
            yield GaugeMetricFamily("dynago_kv_hints_held",
                                    "Hints this node holds for other nodes now.",
                                    value=kv.counters["kv_hints_held"])
        if "kv_aae_lag_s" in kv.counters:
            yield GaugeMetricFamily("dynago_kv_aae_lag_seconds",
                                    "Most seconds since a partition this node replicates "
                                    "was last compared with a replica.",
                                    value=kv.counters["kv_aae_lag_s"])
        for key, name, text in (
                ("kv_aae_keys", "dynago_kv_aae_keys",
                 "Objects in this node's anti-entropy trees (its index on disk)."),
                ("kv_aae_tombstones", "dynago_kv_aae_tombstones",
                 "Tombstones held here waiting for every replica to confirm them.")):
            if key in kv.counters:
                yield GaugeMetricFamily(name, text, value=kv.counters[key])
    store = snapshot.store
    if store is not None:
        yield GaugeMetricFamily("dynago_kv_store_keys",
                                "Client objects in this node's store (node-local records "
                                "such as hints and the anti-entropy index not counted).",
                                value=store.objects)
        yield GaugeMetricFamily("dynago_kv_store_size_bytes",
                                "Size of this node's store (the engine's figure).",
                                value=store.size_bytes)
        for name, text, n in (
                ("dynago_kv_store_writes", "Writes the store acknowledged as durable.",
                 store.writes),
                ("dynago_kv_store_commits", "Batches the store committed.", store.commits),
                ("dynago_kv_store_fsyncs", "Commits that synced to disk (0 in memory).",
                 store.fsyncs),
                ("dynago_kv_store_errors", "Store errors: failed updates, commits, reads.",
                 store.errors)):
            yield CounterMetricFamily(name, text, value=n)
    if snapshot.ring_partitions:
        yield GaugeMetricFamily("dynago_kv_ring_partitions", "Partitions of the ring.",
                                value=snapshot.ring_partitions)
        yield GaugeMetricFamily("dynago_kv_ring_members",
                                "Members of the ring, as this node sees it.",
                                value=snapshot.ring_members)
        yield GaugeMetricFamily("dynago_kv_ring_partitions_owned",
                                "Partitions this node owns in its view of the ring.",
                                value=snapshot.partitions_owned)
    if snapshot.handoff is not None:
        from dynago.ops.kv_handoff_metrics import handoff_families

        yield from handoff_families(snapshot.handoff)


def _le(bound: float) -> str:
    """A bucket's ``le`` label as Prometheus writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if bound == float("inf") else repr(bound)
