"""SimCluster directly: pauses, and the cross-worker message encoding."""

from __future__ import annotations

import pickle

from dynago.config import Config
from dynago.core import EventKind, Member, MemberEvent, Status
from dynago.core.messages import Ack, Gossip, Nack, Ping, PingReq, StateSync
from dynago.core.suspicion import suspicion_bounds
from dynago.sim.cluster import SimCluster, node_name
from dynago.sim.crossing import Crossing


def test_node_paused_past_its_suspicion_timeout_is_failed_then_back() -> None:
    """A paused node neither ticks nor reads; once resumed it reads what waited, learns it
    was declared failed, refutes, and is alive everywhere again — and while paused it
    accused nobody for the time it slept."""
    config = Config.lan()
    seen: list[tuple[float, str, MemberEvent]] = []
    sim = SimCluster(config, 7, observer=lambda now, node, event: seen.append((now, node, event)))
    names = sim.converged(20)
    sleeper = names[3]
    _minimum, maximum = suspicion_bounds(config.suspicion_mult,
                                         config.suspicion_max_timeout_mult,
                                         config.probe_interval_s, 20)
    sim.run_until(2.0)
    sim.pause(sleeper)
    sim.run_until(2.0 + maximum + 5.0)
    failed_by = {node for _, node, e in seen
                 if e.kind is EventKind.FAILED and e.member.name == sleeper}
    assert failed_by == set(names) - {sleeper}
    resumed_at = sim.now
    sim.resume(sleeper)
    sim.run_until(resumed_at + 10.0)
    for name in names:
        held = sim.nodes[name].core.get(sleeper)
        assert held is not None and held.member.status is Status.ALIVE, name
    # The sleeper raised no suspicion of anyone after it woke up.
    assert not [e for now, node, e in seen if node == sleeper and now >= resumed_at
                and e.kind is EventKind.SUSPECTED and e.member.origin == sleeper]


def test_messages_cross_workers_unchanged() -> None:
    a = Member("a", "10.0.0.1:7946", 3, Status.SUSPECT, "b")
    b = Member("b", "10.0.0.2:7946", tags=(("role", "kv"), ("zone", "a")))
    gossip = Gossip((a, b))
    posted = [
        (1.0, 1, "x", "y", Ping(5, a)), (1.0, 1, "x", "y", Ack(6, b)),
        (1.0, 1, "x", "y", PingReq(7, a)), (1.0, 1, "x", "y", Nack(8)),
        (2.0, 1, "x", "y", gossip), (2.0, 1, "z", "y", gossip),
        (3.0, 1, "x", "y", StateSync((a, b), True, False)), (4.0, 2, "x", node_name(1), True),
        (4.0, 2, "z", node_name(1), False),
    ]
    zero, one = Crossing(2, 0), Crossing(2, 1)
    restored = one.decode(pickle.loads(pickle.dumps(zero.encode(posted, 1))), 0)
    assert restored == posted
    # One message sent to two nodes of the other worker is still one object there, and a
    # record is one object there however often it crosses.
    assert restored[4][4] is restored[5][4]
    a_there = restored[0][4].target
    assert restored[2][4].target is a_there and restored[4][4].updates[0] is a_there
    again = one.decode(pickle.loads(pickle.dumps(zero.encode([posted[0]], 1))), 0)
    assert again[0][4].target is a_there


def test_records_cross_whole_once_and_come_back_as_the_original() -> None:
    """crossing.py: a record crosses whole only the first time; later, and on its way
    back, only its number crosses, and the worker that sent it first gets its own object
    back. Preregistered records (a converged start) never cross whole."""
    start = [Member(node_name(i), f"10.0.0.{i}:7946") for i in range(3)]
    zero, one = Crossing(2, 0), Crossing(2, 1)
    zero.preregister(start)
    one_start = [Member(m.name, m.address) for m in start]  # equal, not the same
    one.preregister(one_start)
    fresh = Member("c", "10.0.0.9:7946", 1, Status.SUSPECT, node_name(0))
    first = zero.encode([(1.0, 1, "x", "y", Gossip((start[1], fresh, fresh)))], 1)
    assert [number for number, _ in first[0]] == [6]  # whole once, under zero's number
    there = one.decode(first, 0)
    again = zero.encode([(1.0, 1, "x", "y", Gossip((start[1], fresh)))], 1)
    assert again == ([], [(1.0, 1, "x", "y", (4, (2, 6)))])  # numbers only
    fresh_there = there[0][4].updates[1]
    assert fresh_there == fresh and fresh_there is not fresh
    assert there[0][4].updates[0] is one_start[1] and there[0][4].updates[2] is fresh_there
    back = zero.decode(one.encode([(2.0, 1, "y", "x", Ack(4, fresh_there))], 0), 1)
    assert back[0][4].member is fresh
    assert back[0][4] == Ack(4, fresh)
    # Both ends number new records at once without clashing.
    other = Member("d", "10.0.0.8:7946")
    from_one = one.encode([(3.0, 1, "y", "x", Ping(9, other))], 0)
    from_zero = zero.encode([(3.0, 1, "x", "y", Ping(9, Member("e", "10.0.0.7:7946")))], 1)
    assert from_one[0][0][0] != from_zero[0][0][0]
    assert zero.decode(from_one, 1)[0][4].target == other
    assert one.decode(from_zero, 0)[0][4].target.name == "e"


def test_byte_counts_are_the_codecs_exact_sizes() -> None:
    """The simulator's byte counts (cached and summed per record) equal the length of
    what the gRPC transport's codec encodes, for every kind of message."""
    import random

    from dynago.sim.report import message_sizer
    from dynago.transport import codec

    size = message_sizer()
    rng = random.Random(3)

    def record() -> Member:
        status = rng.choice(list(Status))
        origin = "node-7" if status in (Status.SUSPECT, Status.FAILED) else ""
        tags = tuple(sorted({f"k{i}": "v" * rng.randrange(300)
                             for i in range(rng.randrange(4))}.items()))
        return Member(f"node-{rng.randrange(10**6)}", f"10.0.0.{rng.randrange(255)}:7946",
                      rng.randrange(2 ** rng.randrange(1, 64)), status, origin, tags)

    for _ in range(500):
        members = tuple(record() for _ in range(rng.randrange(70)))
        seq = rng.getrandbits(rng.randrange(1, 64))
        one = record()
        for message in (Gossip(members), StateSync(members, rng.random() < 0.5,
                                                   rng.random() < 0.5),
                        Ping(seq, one), Ack(seq, one), PingReq(seq, one), Nack(seq)):
            assert size(message) == len(codec.encode(message)), message
