"""The membership rules, one file per question; ``core.membership.MembershipCore`` holds
the state they read and the one transition (``_apply``) they all go through.

* receive.py — a record arrives: is it valid, admitted, about us (refute), stale, a win?
* gossip.py — which changes go out in a gossip round, to whom, for how long.
* sync.py — push-pull: joining through seeds, full-list exchanges, anti-entropy.
* probe.py — SWIM probing: pings, indirect probes, acks, nacks; who becomes SUSPECT.
* lifeguard.py — suspicion timers: confirmations, and where a SUSPECT becomes FAILED.
* healing.py — failed members told of their fate, reconnect attempts, tombstone reaping.
* schedule.py — what ``tick`` runs when, the pause rule and the next-deadline cache.
* inbound.py — a peer's message: which rule takes it.
* local.py — what the local user hands in: add, merge, remove, leave, tags.

Each module's functions take the core as their first argument; the surface methods of
MembershipCore are these functions themselves (bound as methods, no extra call). They
read and write the core's underscored state: it is private to the core package, not to
one file.
"""
