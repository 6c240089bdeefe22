"""Deterministic simulator: many real membership cores on a virtual clock.

``dynago sim`` runs N nodes' pure membership cores (dynago.core, the code the actors
call) in one process, over an in-memory network with seeded latency, loss and
partitions. No threads, no sleeps, no gRPC. See docs/performance.md.
"""
