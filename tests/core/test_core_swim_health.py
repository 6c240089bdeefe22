"""Lifeguard local health, reconnect and tombstones in MembershipCore.

Rules are cited from Lifeguard (Dadgar, Phillips, Currey, 2018) by section, and from the
headers of dynago/core/membership.py and core/awareness.py.

Every core here is ticked on an unbroken tick grid from the time it was made: a gap
between ticks means "this node did not run" and moves its deadlines (membership.py).
"""

from __future__ import annotations

import pytest
from swim_driver import (  # tests/core is on sys.path under pytest
    A_ADDR,
    EPS,
    LAN,
    LOCAL,
    TICK,
    Driver,
    addr,
    held,
    make_core,
    peers,
    ticks,
    with_peers,
)

from dynago.config import Config
from dynago.core import (
    EventKind,
    Gossip,
    Member,
    MembershipCore,
    Publish,
    Send,
    Status,
)
from dynago.core.messages import DialSeed, Nack, PingReq, StateSync

# ====================================================================== local health


def _failed_probe(
    nacking: int, *, helpers: int = 3
) -> tuple[MembershipCore, int]:
    """a (with 5 peers) probes one that never answers; ``nacking`` of the helpers nack
    before the period ends. Returns the core and its score when the probe ended."""
    core, members = with_peers(5)
    driver = Driver(core, members)
    _, ping = driver.next_ping(answer=False)
    target = ping.to
    del driver.responders[target]
    assert core.awareness.score == 0
    start = driver.now
    out = driver.run_until(start + LOCAL.probe_timeout_s + 1.5 * TICK)
    reqs = [s for _, s in out if isinstance(s, Send) and isinstance(s.message, PingReq)]
    assert len(reqs) == helpers
    for req in reqs[:nacking]:
        core.handle(req.to, Nack(req.message.seq), driver.now)  # type: ignore[union-attr]
    # (answer=False: the next probe, started in the same tick, must not lower the score.)
    out = driver.run_until(start + LOCAL.probe_interval_s + 1.5 * TICK, answer=False)
    assert any(isinstance(e, Publish) and e.event.kind is EventKind.SUSPECTED for _, e in out)
    assert core.counters.nacks_received == nacking
    return core, core.awareness.score


def test_awareness_failed_probe_without_nacks_raises_score() -> None:
    """Lifeguard §IV-A: a failed probe whose helpers sent no nack suggests that this node
    is the slow one: the local health score goes up by one."""
    _, score = _failed_probe(0)
    assert score == 1


def test_awareness_failed_probe_with_some_nacks_missing_raises_score() -> None:
    """Lifeguard §IV-A: a missed nack (fewer nacks than helpers) raises the score."""
    _, score = _failed_probe(2)
    assert score == 1


def test_awareness_failed_probe_all_helpers_nacked_keeps_score() -> None:
    """Lifeguard §IV-A: when every helper nacked, the helpers are fine and so is this
    node's view of them: the target is the problem, the score does not change."""
    _, score = _failed_probe(3)
    assert score == 0


def test_awareness_failed_probe_without_helpers_raises_score() -> None:
    """Lifeguard §IV-A: with nobody to ask, any failed probe counts against this node."""
    core = make_core()
    driver = Driver(core, {})
    core.merge([Member("b", addr(7002))], 0.0)
    driver.next_ping()
    driver.run_until(driver.now + LOCAL.probe_interval_s + TICK)
    assert held(core, "b").status is Status.SUSPECT
    assert core.awareness.score == 1


def test_awareness_refuting_suspicion_raises_score() -> None:
    """Lifeguard §IV-A: having to refute a suspicion of itself raises the score (being
    suspected hints that this node is slow); so does refuting a failure; outbidding a
    plain ALIVE record of itself (a previous life) does not."""
    core = make_core()
    core.handle("b", Gossip((Member("a", A_ADDR, 0, Status.SUSPECT, "b"),)), 0.0)
    assert core.awareness.score == 1
    core.handle("b", Gossip((Member("a", A_ADDR, 1, Status.FAILED, "b"),)), 0.0)
    assert core.awareness.score == 2
    core.handle("b", Gossip((Member("a", A_ADDR, 5, Status.ALIVE),)), 0.0)
    assert core.local_member.incarnation == 6
    assert core.awareness.score == 2


def _raise_score(core: MembershipCore, times: int, now: float) -> None:
    for _ in range(times):
        me = core.local_member
        core.handle("x", Gossip((Member("a", A_ADDR, me.incarnation, Status.SUSPECT, "x"),)),
                    now)


def test_awareness_acked_probe_lowers_score() -> None:
    """Lifeguard §IV-A: a successful probe (an ack) lowers the score by one, not below 0."""
    core, members = with_peers(3)
    driver = Driver(core, members)
    driver.run_until(0.05)
    _raise_score(core, 2, driver.now)
    assert core.awareness.score == 2
    driver.next_ping()
    assert core.awareness.score == 1
    driver.next_ping()
    assert core.awareness.score == 0
    driver.next_ping()
    assert core.awareness.score == 0


@pytest.mark.parametrize("score", [1, 3])
def test_awareness_probe_period_stretches_by_score_plus_one(score: int) -> None:
    """Lifeguard §IV-A: with score s the protocol period is probe_interval·(s+1). Every
    probe is acked, which lowers the score by one each time, so the gaps between Pings go
    (s+1)·P, s·P, …, P and stay at P (each within one tick of its value)."""
    core, members = with_peers(3)
    driver = Driver(core, members)
    first, _ = driver.next_ping()  # scheduled the next one at score 0
    _raise_score(core, score, first)
    times = [first] + [driver.next_ping()[0] for _ in range(score + 3)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    period = LOCAL.probe_interval_s
    expected = [period] + [period * m for m in range(score + 1, 0, -1)] + [period]
    assert len(gaps) == len(expected)
    for gap, want in zip(gaps, expected, strict=True):
        assert want - EPS <= gap <= want + TICK + EPS, (gaps, expected)


def test_awareness_probe_timeout_stretches_by_score_plus_one() -> None:
    """Lifeguard §IV-A: the probe timeout is stretched like the period: with score s the
    PingReqs go out probe_timeout·(s+1) after the Ping, not earlier."""
    score = 3
    core, members = with_peers(5)
    driver = Driver(core, members)
    driver.run_until(0.05)
    _raise_score(core, score, driver.now)
    driver.responders.clear()
    start, _ = driver.next_ping()
    out = driver.run_until(start + (score + 1) * LOCAL.probe_interval_s)
    reqs = [now for now, s in out if isinstance(s, Send) and isinstance(s.message, PingReq)]
    assert reqs, "PingReqs were sent"
    want = start + (score + 1) * LOCAL.probe_timeout_s
    assert want - EPS <= reqs[0] <= want + TICK + EPS


def test_awareness_score_capped_below_max_multiplier() -> None:
    """Lifeguard §IV-A: the score never exceeds awareness_max_multiplier − 1, so the
    period stretches at most awareness_max_multiplier times."""
    config = Config.local(awareness_max_multiplier=4)
    core = make_core(config=config)
    core.merge([Member("b", addr(7002))], 0.0)
    _raise_score(core, 20, 0.0)
    assert core.awareness.score == config.awareness_max_multiplier - 1
    driver = Driver(core, {"b": Member("b", addr(7002))})
    first, _ = driver.next_ping()  # acked: score 2, but the next Ping is 4 periods later
    second, _ = driver.next_ping()
    cap = config.awareness_max_multiplier * config.probe_interval_s
    assert cap - EPS <= second - first <= cap + TICK + EPS


@pytest.mark.parametrize("config", [LOCAL, LAN], ids=["local", "lan"])
def test_awareness_nacks_of_healthy_helpers_arrive_in_time(config: Config) -> None:
    """Lifeguard §IV-A (nack): a helper that cannot reach the target answers Nack, and a
    probe whose helpers all nacked does not count against the prober — which requires the
    Nack to reach the prober before its protocol period ends. Three nodes a, h, t; t is
    dead; messages arrive at once (zero latency); each instant a ticks, then h. When a's
    probe of t fails, h's Nack must have been counted.

    (The helper waits probe_timeout_s after the PingReq, which itself goes out
    probe_timeout_s after the Ping: with Config.local(), 2 · 0.1 s == probe_interval_s, so
    the Nack is due in the very tick in which the prober gives up.)"""
    a = make_core("a", 7001, config=config, seed=3)
    h = make_core("h", 7002, config=config, seed=4)
    t_rec = Member("t", addr(7003))
    a.merge([Member("h", addr(7002)), t_rec], 0.0)
    h.merge([Member("a", A_ADDR), t_rec], 0.0)
    cores = {"a": a, "h": h}
    for now in ticks(0.0, 10.0, config.tick_interval_s):
        for name in ("a", "h"):
            queue = [(name, e) for e in cores[name].tick(now)]
            while queue:
                source, effect = queue.pop(0)
                if isinstance(effect, Send) and effect.to in cores:
                    queue.extend((effect.to, e)
                                 for e in cores[effect.to].handle(source, effect.message, now))
        if a.counters.probes_failed:
            break
    assert a.counters.probes_failed == 1
    assert a.counters.indirect_probes_sent == 1
    assert a.counters.nacks_received == 1, (
        f"h sent {h.counters.nacks_sent} Nack(s) but a counted "
        f"{a.counters.nacks_received} before its probe of t ended"
    )


# ====================================================================== reconnect, tombstones


def test_reconnect_one_failed_member_per_interval() -> None:
    """membership.py (every reconnect_interval_s the node tries one failed member with a
    push-pull): exactly one StateSync asking for a reply goes to a FAILED member per
    interval, to each of them in turn over time."""
    core, members = with_peers(2)
    dead = {f"f{i}": Member(f"f{i}", addr(9000 + i), 0, Status.FAILED, "x") for i in range(3)}
    core.merge(dead.values(), 0.0)
    driver = Driver(core, members)
    intervals = 12
    out = driver.run_until(intervals * LOCAL.reconnect_interval_s + TICK / 2)
    tries = [(now, s) for now, s in out if isinstance(s, Send) and s.to in dead]
    assert all(isinstance(s.message, StateSync) and s.message.reply_wanted and s.message.last
               for _, s in tries)
    assert all(s.address == dead[s.to].address for _, s in tries)
    times = [now for now, _ in tries]
    assert intervals - 1 <= len(times) <= intervals
    assert len(set(times)) == len(times), "one failed member per interval"
    assert {s.to for _, s in tries} == set(dead)


def test_reconnect_never_tries_left_members() -> None:
    """membership.py: only failed members are tried again; a member that left said so
    itself and gets no push-pull."""
    core, members = with_peers(2)
    left = {f"l{i}": Member(f"l{i}", addr(9000 + i), 0, Status.LEFT) for i in range(3)}
    core.merge(left.values(), 0.0)
    out = Driver(core, members).run_until(10.0)
    assert [s for _, s in out if isinstance(s, Send) and s.to in left] == []


def _joined_with_seeds(seeds: list[str]) -> tuple[MembershipCore, Driver]:
    core = make_core(seeds=seeds)
    b = Member("b", addr(7002))
    core.stream_opened("b", b.address, 0.0, via_seed=True)
    core.handle("b", StateSync((b,), reply_wanted=False, last=True), 0.0)
    assert core.synced
    return core, Driver(core, {"b": b})


def test_reconnect_dials_seed_that_is_not_a_live_member() -> None:
    """membership.py (every reconnect_interval_s … a seed that is not a live member): after
    joining, a seed address that no live member has is dialled once per interval; the
    seed address of a live member never is."""
    lost = addr(9999)
    core, driver = _joined_with_seeds([addr(7002), lost])
    out = driver.run_until(10 * LOCAL.reconnect_interval_s + TICK / 2)
    dials = [(now, e) for now, e in out if isinstance(e, DialSeed)]
    assert {e.address for _, e in dials} == {lost}
    assert 9 <= len(dials) <= 10


def test_reconnect_dials_seed_of_failed_member() -> None:
    """membership.py: a seed whose member is FAILED is not a live member: it is dialled."""
    core, driver = _joined_with_seeds([addr(7002), addr(7003)])
    core.merge([Member("c", addr(7003), 0, Status.FAILED, "x")], 0.0)
    out = driver.run_until(3 * LOCAL.reconnect_interval_s + TICK / 2)
    assert {e.address for _, e in out if isinstance(e, DialSeed)} == {addr(7003)}


def test_reconnect_no_seed_dials_when_all_seeds_live() -> None:
    """membership.py: when every seed is the address of a live member (or this node)
    nothing is dialled."""
    core, driver = _joined_with_seeds([addr(7002), A_ADDR])
    out = driver.run_until(5.0)
    assert [e for _, e in out if isinstance(e, DialSeed)] == []


def test_tombstones_reaped_after_retention_live_records_kept() -> None:
    """membership.py (failed and left records are reaped after tombstone_retention_s):
    FAILED and LEFT records last changed at t are gone from records() by t + retention
    (+ one reconnect interval) and counted; live records, however old, stay; a tombstone
    that changed later is kept until its own retention ends."""
    config = Config.local(tombstone_retention_s=20.0)
    core = make_core(config=config)
    live = peers(2)
    core.merge(live.values(), 0.0)
    core.merge([Member("f", addr(9001), 0, Status.FAILED, "x"),
                Member("l", addr(9002), 0, Status.LEFT)], 0.0)
    driver = Driver(core, live)
    driver.run_until(10.0)
    core.merge([Member("g", addr(9003), 0, Status.FAILED, "x")], driver.now)
    driver.run_until(20.0 - TICK)
    assert {r.member.name for r in core.records()} == {"a", *live, "f", "l", "g"}
    driver.run_until(20.0 + config.reconnect_interval_s + TICK)
    assert {r.member.name for r in core.records()} == {"a", *live, "g"}
    assert core.counters.tombstones_reaped == 2
    driver.run_until(30.0 + config.reconnect_interval_s + TICK)
    assert {r.member.name for r in core.records()} == {"a", *live}
    assert core.counters.tombstones_reaped == 3
    assert all(held(core, n) == m for n, m in live.items())
