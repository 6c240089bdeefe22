"""MembershipCore.next_deadline() is cached, and the cache is kept only by inputs that
change nothing it is computed from (a Ping, Gossip or Nack that changes no record and
confirms no suspicion, arriving while nothing is overdue). The tick's pause detection
(``late = now - next_deadline()``) needs the cached value to be exact, neither earlier
nor later than a fresh computation: these tests compare the two after every input of
random runs of a small cluster, with messages delivered on time, late, repeated, lost,
and forged (records of the receiver itself, of members it does not know, with higher
incarnations, other statuses and other origins)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from swim_support import addr

from dynago.config import Config
from dynago.core import Member, MembershipCore, Send, Status
from dynago.core.messages import Ack, CoreMessage, Effect, Gossip, Nack, Ping, PingReq, StateSync

NAMES = [f"n{i}" for i in range(5)]
ADDRESSES = {name: addr(7000 + i) for i, name in enumerate(NAMES)}


def _assert_exact(core: MembershipCore) -> None:
    cached = core.next_deadline()
    assert cached == core._compute_next_deadline(), core.name


def _forged(rng: random.Random, core: MembershipCore) -> Member:
    """A record another node might send: of anyone (the receiver too), any status."""
    name = rng.choice([*NAMES, "stranger"])
    held = core.get(name)
    incarnation = held.member.incarnation if held is not None else 0
    incarnation += rng.choice((0, 0, 1, 2))
    status = rng.choice(list(Status))
    origin = rng.choice(NAMES) if status in (Status.SUSPECT, Status.FAILED) else ""
    if status is Status.FAILED and rng.random() < 0.2:
        origin = ""  # an operator's removal
    return Member(name, ADDRESSES.get(name, addr(7999)), incarnation, status, origin)


def _run_random_cluster(seed: int, steps: int, config: Config) -> None:
    rng = random.Random(seed)
    now = 0.0
    cores = {
        name: MembershipCore(name, ADDRESSES[name], config, random.Random(f"{seed}/{name}"),
                             now, seeds=[ADDRESSES[NAMES[0]]] if rng.random() < 0.3 else [])
        for name in NAMES
    }
    for core in cores.values():
        if rng.random() < 0.8:
            core.merge([Member(n, ADDRESSES[n]) for n in NAMES if n != core.name], now)
        _assert_exact(core)
    in_flight: list[tuple[str, str, CoreMessage]] = []
    seqs: dict[str, list[int]] = {name: [] for name in NAMES}

    def take(sender: str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send) and effect.to in cores:
                in_flight.append((sender, effect.to, effect.message))
                if isinstance(effect.message, Ping | PingReq):
                    seqs[sender].append(effect.message.seq)

    for _ in range(steps):
        # Time moves on by nothing, a little, or past deadlines (a node that did not run).
        now += rng.choice((0.0, 0.0, 0.001, 0.01, 0.05, 0.3, 1.0, 5.0))
        name = rng.choice(NAMES)
        core = cores[name]
        action = rng.random()
        if action < 0.45 and in_flight:
            sender, to, message = in_flight.pop(rng.randrange(len(in_flight)))
            if rng.random() < 0.1:
                in_flight.append((sender, to, message))  # delivered twice
            core = cores[to]
            take(to, core.handle(sender, message, now))
        elif action < 0.65:
            tick_at = max(now, core.next_deadline()) if rng.random() < 0.5 else now
            take(core.name, core.tick(tick_at))
            now = max(now, tick_at)
        elif action < 0.9:
            sender = rng.choice([n for n in [*NAMES, "stranger"] if n != name])
            kind = rng.randrange(7)
            message: CoreMessage
            if kind == 0:
                message = Ping(rng.randrange(1, 50), _forged(rng, core))
            elif kind == 1:
                mine = seqs[name]
                seq = rng.choice(mine) if mine and rng.random() < 0.7 else rng.randrange(1, 50)
                message = Ack(seq, _forged(rng, core))
            elif kind == 2:
                message = Gossip(tuple(_forged(rng, core) for _ in range(rng.randrange(1, 4))))
            elif kind == 3:
                mine = seqs[name]
                message = Nack(rng.choice(mine) if mine else 1)
            elif kind == 4:
                message = PingReq(rng.randrange(1, 50), _forged(rng, core))
            elif kind == 5:
                message = StateSync(tuple(_forged(rng, core) for _ in range(3)),
                                    rng.random() < 0.5, rng.random() < 0.7)
            else:
                # A gossiped suspicion of a member this node holds, from a new origin.
                target = rng.choice([n for n in NAMES if n != name])
                held = core.get(target)
                incarnation = held.member.incarnation if held is not None else 0
                message = Gossip((Member(target, ADDRESSES[target], incarnation,
                                         Status.SUSPECT, rng.choice(NAMES)),))
            take(name, core.handle(sender, message, now))
        else:
            other = rng.choice([n for n in NAMES if n != name])
            choice = rng.randrange(4)
            if choice == 0:
                take(name, core.stream_opened(other, ADDRESSES[other], now,
                                              via_seed=rng.random() < 0.3))
            elif choice == 1:
                take(name, core.peer_unreachable(other, now))
            elif choice == 2 and core.get(other) is not None:
                take(name, core.remove(other, now))
            elif choice == 3 and rng.random() < 0.1:
                take(name, core.leave(now))
        for each in cores.values():
            _assert_exact(each)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_cached_next_deadline_equals_a_fresh_computation_local(seed: int) -> None:
    _run_random_cluster(seed, 300, Config.local())


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_cached_next_deadline_equals_a_fresh_computation_lan(seed: int) -> None:
    _run_random_cluster(seed, 300, Config.lan())


def test_a_ping_that_changes_nothing_keeps_the_cache() -> None:
    """The point of the finer cache: a plain probe costs the probed node no recomputation
    of its deadline (and leaves it exact)."""
    core = MembershipCore("n0", ADDRESSES["n0"], Config.lan(), random.Random(1), 0.0)
    core.merge([Member(n, ADDRESSES[n]) for n in NAMES[1:]], 0.0)
    due = core.next_deadline()
    core.handle("n1", Ping(1, core.local_member), min(due, 0.01))
    assert core._due == due == core._compute_next_deadline()


def test_a_confirmation_that_changes_no_record_still_moves_the_deadline() -> None:
    """Lifeguard: an independent confirmation shortens the suspicion even when its record
    loses to the one held (a smaller origin). Near the end of the suspicion that makes it
    the next deadline, and the cache must follow."""
    core = MembershipCore("n0", ADDRESSES["n0"], Config.lan(), random.Random(1), 0.0)
    core.merge([Member(n, ADDRESSES[n]) for n in NAMES[1:]], 0.0)
    core.handle("n4", Gossip((Member("n2", ADDRESSES["n2"], 0, Status.SUSPECT, "n4"),)), 0.0)
    ends = core.suspicion_deadline("n2")
    assert ends is not None
    now = 0.0
    while core.next_deadline() < ends - 0.6:
        now = core.next_deadline()
        for effect in core.tick(now):  # every probe is answered: no probe confirms it
            if isinstance(effect, Send) and isinstance(effect.message, Ping):
                now += 0.001
                core.handle(effect.to, Ack(effect.message.seq, Member(
                    effect.to, ADDRESSES[effect.to])), now)
    assert core.suspicion_deadline("n2") == ends
    before = core.next_deadline()
    core.handle("n1", Gossip((Member("n2", ADDRESSES["n2"], 0, Status.SUSPECT, "n1"),)), now)
    shortened = core.suspicion_deadline("n2")
    assert shortened is not None and shortened < ends
    assert core.next_deadline() == core._compute_next_deadline() == shortened < before
