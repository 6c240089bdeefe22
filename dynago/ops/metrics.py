"""Prometheus metrics of one node (``GET /metrics`` on the admin API).

The node already counts everything (``Node.stats()``: the membership core's counters,
the transport's, the event handlers'); a prometheus_client collector turns one reading
of them into metric families at each scrape, so nothing is counted twice and every
node in a process has its own registry. Families (counters end in ``_total``):

* ``dynago_members{status}`` — members this node holds, by status (alive, suspect,
  failed, left), itself included.
* SWIM and Lifeguard: ``dynago_probes_total``, ``dynago_indirect_probes_total``,
  ``dynago_acks_received_total``, ``dynago_nacks_received_total``,
  ``dynago_nacks_sent_total``, ``dynago_probes_failed_total``,
  ``dynago_suspicions_raised_total``, ``dynago_suspicions_refuted_total``,
  ``dynago_failures_declared_total``, ``dynago_local_health_score``.
* Traffic: ``dynago_messages_total{direction,kind}`` and
  ``dynago_message_bytes_total{direction,kind}``, ``dynago_stream_reconnects_total``,
  ``dynago_streams_opened_total``, refusals, malformed and dropped messages.
* Actors: ``dynago_membership_mailbox_depth``, ``dynago_peer_mailbox_depth_max``,
  ``dynago_peer_mailbox_messages``, ``dynago_peer_actors``.
* Event handlers: ``dynago_event_handler_runs_total{outcome}``, queue and running gauges.
* Services' own (``Node.service_metric_families``): the KV store's ``dynago_kv_*``
  (dynago.ops.kv_metrics).
* The process: prometheus_client's ``process_*`` (CPU, resident memory, open files).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from dynago.actors.refs import mailbox_depth
from dynago.core.member import Status

if TYPE_CHECKING:
    from dynago.nodeview import NodeView

CONTENT_TYPE = CONTENT_TYPE_LATEST

COUNTERS: dict[str, tuple[str, str]] = {
    "probes_sent": ("dynago_probes", "Direct probes (SWIM pings) this node started."),
    "indirect_probes_sent": (
        "dynago_indirect_probes",
        "Indirect probe requests sent because a direct probe got no ack in time."),
    "acks_received": ("dynago_acks_received", "Acks received for probes of this node."),
    "nacks_received": ("dynago_nacks_received",
                       "Nacks received: a helper could not reach the target (Lifeguard)."),
    "nacks_sent": ("dynago_nacks_sent", "Nacks this node sent as a helper."),
    "probes_failed": ("dynago_probes_failed",
                      "Probes that ended with no ack: the target became suspect."),
    "suspicions_raised": ("dynago_suspicions_raised", "Members this node suspected."),
    "refutations": ("dynago_suspicions_refuted",
                    "Suspicions (or failures) of this node that it refuted by raising its "
                    "incarnation."),
    "failures_declared": ("dynago_failures_declared",
                          "Suspects whose suspicion timeout ran out on this node."),
    "gossip_messages_sent": ("dynago_gossip_messages_sent", "Gossip messages sent."),
    "sync_exchanges_started": ("dynago_sync_exchanges_started",
                               "Full-state (push-pull) exchanges this node started."),
    "invalid_records": ("dynago_invalid_records",
                        "Member records from peers dropped because they broke the rules."),
    "tombstones_reaped": ("dynago_tombstones_reaped",
                          "Failed and left members forgotten after their retention."),
    "handler_errors": ("dynago_actor_handler_errors",
                       "Messages the membership actor failed to handle."),
    "seed_dial_failures": ("dynago_seed_dial_failures", "Dials of a seed that failed."),
    "transport_streams_opened": ("dynago_streams_opened",
                                 "Handshaken node-to-node streams opened, either way."),
    "transport_stream_reconnects": (
        "dynago_stream_reconnects",
        "Streams opened again to a node after every earlier stream to it had closed."),
    "transport_streams_refused": (
        "dynago_streams_refused",
        "Streams this node refused (other cluster, protocol version, key)."),
    "transport_refused_by_peers": ("dynago_streams_refused_by_peers",
                                   "Dials of this node that the peer refused."),
    "transport_dials_failed": ("dynago_dials_failed", "Dials that produced no stream."),
    "transport_malformed_messages": ("dynago_malformed_messages",
                                     "Malformed messages from peers (their stream closed)."),
}

GAUGES: dict[str, tuple[str, str]] = {
    "local_health_score": ("dynago_local_health_score",
                           "Lifeguard local health: 0 is healthy; higher stretches this "
                           "node's probe interval and timeout."),
    "peer_actors": ("dynago_peer_actors", "Peer actors (one per remote node in contact)."),
    "peer_mailbox_depth_max": ("dynago_peer_mailbox_depth_max",
                               "Deepest mailbox of the peer actors."),
    "peer_mailbox_depth_sum": ("dynago_peer_mailbox_messages",
                               "Messages waiting in all peer actors' mailboxes."),
    "event_handler_pending": ("dynago_event_handler_pending",
                              "Events queued for the event handlers."),
    "event_handler_running": ("dynago_event_handler_running",
                              "Event handlers running now."),
}

LABELLED_COUNTERS: dict[str, tuple[str, str, str, str]] = {
    "members_refused_cap": ("dynago_members_refused", "reason", "cap",
                            "New members dropped: the map was full, or their sender "
                            "exceeded its allowance (rate)."),
    "members_refused_rate": ("dynago_members_refused", "reason", "rate", ""),
    "transport_oversized_dropped": ("dynago_messages_dropped", "reason", "oversized",
                                    "Messages not sent: too large, or the stream's "
                                    "outbound buffer was full."),
    "transport_outbound_dropped": ("dynago_messages_dropped", "reason", "buffer_full", ""),
    "event_handler_runs_ok": ("dynago_event_handler_runs", "outcome", "ok",
                              "Event handler runs by outcome."),
    "event_handler_runs_failed": ("dynago_event_handler_runs", "outcome", "failed", ""),
    "event_handler_timeouts": ("dynago_event_handler_runs", "outcome", "timeout", ""),
    "event_handler_start_errors": ("dynago_event_handler_runs", "outcome",
                                   "start_error", ""),
    "event_handler_events_dropped": ("dynago_event_handler_events_dropped", "", "",
                                     "Events the handlers never saw (queue full or "
                                     "stopping)."),
}


class NodeCollector(Collector):
    """Reads ``node`` at each scrape."""

    def __init__(self, node: NodeView) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node = self._node
        # The services' counters reach /metrics through their own families below: asking
        # their actors here as well would take every KV snapshot twice per scrape.
        stats = node.stats(services=False)
        members = GaugeMetricFamily("dynago_members",
                                    "Members this node holds, by status (itself included).",
                                    labels=["status"])
        counts = dict.fromkeys((status.label for status in Status), 0)
        for view in node.members():
            counts[view.status] = counts.get(view.status, 0) + 1
        for label, count in counts.items():
            members.add_metric([label], count)
        yield members

        for key, (name, text) in COUNTERS.items():
            if key in stats:
                yield CounterMetricFamily(name, text, value=stats[key])
        for key, (name, text) in GAUGES.items():
            if key in stats:
                yield GaugeMetricFamily(name, text, value=stats[key])
        yield from _labelled(stats)

        if node.membership is not None:
            yield GaugeMetricFamily("dynago_membership_mailbox_depth",
                                    "Messages waiting in the membership actor's mailbox.",
                                    value=mailbox_depth(node.membership))
        yield from _traffic(getattr(node.transport, "counters", None))
        # Optional on a NodeView (test doubles need not have it): the KV store's families.
        service_families = getattr(node, "service_metric_families", None)
        if callable(service_families):
            yield from service_families()


def _labelled(stats: dict[str, int]) -> Iterator[Metric]:
    families: dict[str, CounterMetricFamily] = {}
    for key, (name, label, value, text) in LABELLED_COUNTERS.items():
        if key not in stats:
            continue
        family = families.get(name)
        if family is None:
            family = CounterMetricFamily(name, text, labels=[label] if label else None)
            families[name] = family
        family.add_metric([value] if label else [], stats[key])
    yield from families.values()


def _traffic(counters: object) -> Iterator[Metric]:
    """Messages and bytes by direction and kind, from the transport's counters."""
    tables = {
        ("in", "messages"): getattr(counters, "by_kind_in", None),
        ("out", "messages"): getattr(counters, "by_kind_out", None),
        ("in", "bytes"): getattr(counters, "bytes_by_kind_in", None),
        ("out", "bytes"): getattr(counters, "bytes_by_kind_out", None),
    }
    messages = CounterMetricFamily("dynago_messages",
                                   "Node-to-node messages by direction and kind.",
                                   labels=["direction", "kind"])
    volume = CounterMetricFamily("dynago_message_bytes",
                                 "Bytes of node-to-node messages by direction and kind.",
                                 labels=["direction", "kind"])
    for (direction, what), table in tables.items():
        if not isinstance(table, dict):
            continue
        family = messages if what == "messages" else volume
        for kind, count in sorted(dict(table).items()):  # a copy: the loop thread writes
            family.add_metric([direction, kind], count)
    yield messages
    yield volume


def render(node: NodeView) -> bytes:
    """One scrape of ``node`` in the Prometheus text format. Raises what ``node.stats()``
    raises when the membership actor does not answer."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    ProcessCollector(registry=registry)
    return generate_latest(registry)
