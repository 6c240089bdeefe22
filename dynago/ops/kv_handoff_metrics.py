"""Ownership handoff's Prometheus families (dynago.actors.kv_handoff), from the
``HandoffSnapshot`` of one ``KvServiceSnapshot``; served in ``/metrics`` with the KV's:

* ``dynago_kv_handoffs_pending`` — transfers (partition, target) not yet acknowledged
  whole; ``dynago_kv_handoffs_inbound`` — (partition, sender) still coming in (gauges).
* ``dynago_kv_handoff_partitions_total`` — partitions handed off (all targets done);
  ``dynago_kv_handoff_{keys,bytes}_{sent,acked,received}_total``,
  ``dynago_kv_handoff_retries_total`` (resumes from the last acknowledged chunk),
  ``dynago_kv_handoff_malformed_total`` (chunks dropped),
  ``dynago_kv_handoff_writes_forwarded_total``, ``dynago_kv_handoff_keys_dropped_total``
  (copies deleted once handed off).
* ``dynago_kv_handoff_transfer_keys_acked{partition,target}`` — per-transfer progress.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from dynago.actors.kv_handoff_messages import HandoffSnapshot

HANDOFF_COUNTERS: dict[str, tuple[str, str]] = {
    "kv_handoff_partitions_done": ("dynago_kv_handoff_partitions",
                                   "Partitions this node handed off to every new owner."),
    "kv_handoff_keys_sent": ("dynago_kv_handoff_keys_sent",
                             "Objects sent in handoff chunks (resent ones included)."),
    "kv_handoff_bytes_sent": ("dynago_kv_handoff_bytes_sent", "Object bytes sent in handoff."),
    "kv_handoff_keys_acked": ("dynago_kv_handoff_keys_acked",
                              "Objects the new owners acknowledged as durable."),
    "kv_handoff_bytes_acked": ("dynago_kv_handoff_bytes_acked",
                               "Object bytes the new owners acknowledged."),
    "kv_handoff_keys_received": ("dynago_kv_handoff_keys_received",
                                 "Objects received in handoff chunks and merged here."),
    "kv_handoff_bytes_received": ("dynago_kv_handoff_bytes_received",
                                  "Object bytes received in handoff chunks."),
    "kv_handoff_retries": ("dynago_kv_handoff_retries",
                           "Transfers resumed from their last acknowledged chunk."),
    "kv_handoff_malformed": ("dynago_kv_handoff_malformed",
                             "Handoff chunks from peers dropped as malformed."),
    "kv_handoff_writes_forwarded": ("dynago_kv_handoff_writes_forwarded",
                                    "Writes forwarded to a new owner during a handoff."),
    "kv_handoff_keys_dropped": ("dynago_kv_handoff_keys_dropped",
                                "Copies deleted here once handed off."),
}


def handoff_families(snapshot: HandoffSnapshot) -> Iterator[Metric]:
    """The families of the module docstring."""
    counters = snapshot.counters
    yield GaugeMetricFamily("dynago_kv_handoffs_pending",
                            "Handoff transfers not yet acknowledged whole.",
                            value=counters.get("kv_handoffs_pending", 0))
    yield GaugeMetricFamily("dynago_kv_handoffs_inbound",
                            "Partitions (per sender) still being handed to this node.",
                            value=counters.get("kv_handoffs_inbound", 0))
    for key, (name, text) in HANDOFF_COUNTERS.items():
        yield CounterMetricFamily(name, text, value=counters.get(key, 0))
    progress = GaugeMetricFamily("dynago_kv_handoff_transfer_keys_acked",
                                 "Objects acknowledged so far, per pending transfer.",
                                 labels=["partition", "target"])
    for t in snapshot.transfers:
        progress.add_metric([str(t.partition), t.target], t.keys_acked)
    yield progress
