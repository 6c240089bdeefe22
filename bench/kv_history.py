"""The history checker of bench.kv_check: it lives in dynago.kv.history (pure), so that
the simulator's KV scenarios judge their runs by the same rules; re-exported here."""

from __future__ import annotations

from dynago.kv.history import (
    FAIL,
    INFO,
    OK,
    FinalRead,
    Op,
    Verdict,
    check_deletes,
    check_rewrite,
    check_set,
    check_unique,
    elements_of,
    get_outcome,
    op_counts,
    put_outcome,
    stale_reads,
)

__all__ = ["FAIL", "INFO", "OK", "FinalRead", "Op", "Verdict", "check_deletes",
           "check_rewrite", "check_set", "check_unique", "elements_of", "get_outcome",
           "op_counts", "put_outcome", "recovered", "stale_reads"]


def recovered(verdict: Verdict) -> int:
    """Indeterminate writes found in the final state (Jepsen's "recovered")."""
    return len(verdict.recovered)
