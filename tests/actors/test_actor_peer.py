"""The real PeerActor with in-memory streams and a stand-in membership actor.

The PeerActor reports to a ``Recorder`` (it only ever ``tell``s its membership actor),
dials through a FakeTransport, and its redial timers run on a ManualScheduler. Streams
from the transport reach it as ``Attach``, as the MembershipActor would hand them on.
Fixtures: conftest.py.
"""

from __future__ import annotations

import concurrent.futures
import logging

import pytest

from dynago.actors.messages import Deliver, Flush, PeerConnectivity, PeerMessage
from dynago.config import Config
from dynago.core import Gossip, Member

A = "127.0.0.1:7001"
B = "127.0.0.1:7002"
TIMEOUT_S = 5.0


def gossip(i: int) -> Gossip:
    """A distinct message per ``i``, so order and identity can be checked."""
    return Gossip((Member(f"m{i}", f"127.0.0.1:{8000 + i}"),))


# --------------------------------------------------------------------------- sending


def test_messages_wait_for_the_stream_and_then_go_out_in_order(
    start_peer, transport, recorder, eventually
):
    peer = start_peer()  # node "me"'s actor for node "a"

    for i in range(3):
        peer.tell(Deliver(gossip(i)))

    eventually(lambda: transport.dials == [(A, "a")])
    assert peer.proxy().dials.get(timeout=TIMEOUT_S) == 1  # one dial for all three

    remote = transport.connect(0, "a", A)

    eventually(lambda: remote.received == [gossip(0), gossip(1), gossip(2)])
    assert recorder.of_type(PeerConnectivity) == [PeerConnectivity("a", True)]

    peer.tell(Deliver(gossip(3)))  # the stream is up: straight out

    eventually(lambda: remote.received == [gossip(0), gossip(1), gossip(2), gossip(3)])
    assert transport.dials == [(A, "a")]


def test_the_buffer_keeps_the_newest_messages_and_counts_the_dropped(
    start_peer, transport, eventually
):
    peer = start_peer(peer_config=Config.local(outbound_buffer_size=4))

    for i in range(10):
        peer.tell(Deliver(gossip(i)))
    eventually(lambda: transport.dials)
    remote = transport.connect(0, "a", A)

    eventually(lambda: remote.received == [gossip(i) for i in range(6, 10)])
    assert peer.proxy().dropped.get(timeout=TIMEOUT_S) == 6


# --------------------------------------------------------------------------- receiving


def test_what_the_stream_delivers_is_forwarded_to_membership_in_order(
    start_peer, transport, recorder, eventually
):
    start_peer()
    remote = transport.accept("a", A)  # node a dialled us

    for i in range(5):
        remote.send(gossip(i))

    expected = [PeerMessage("a", A, gossip(i)) for i in range(5)]
    eventually(lambda: recorder.of_type(PeerMessage) == expected)


# --------------------------------------------------------------------------- redialling


def test_a_closed_stream_is_reported_and_redialled_after_a_backoff(
    start_peer, transport, recorder, scheduler, config, eventually
):
    start_peer()
    remote = transport.accept("a", A)
    eventually(lambda: PeerConnectivity("a", True) in recorder.messages)

    remote.close()

    eventually(lambda: PeerConnectivity("a", False) in recorder.messages)
    (delay,) = eventually(lambda: scheduler.delays)  # the redial timer
    initial = config.reconnect_initial_backoff_s
    assert initial / 2 <= delay <= initial
    assert transport.dials == []  # not before the delay is over

    scheduler.advance(config.reconnect_max_backoff_s)

    eventually(lambda: transport.dials == [(A, "a")])


def test_each_failed_dial_backs_off_longer_up_to_the_cap(
    start_peer, transport, scheduler, config, eventually
):
    initial, cap = config.reconnect_initial_backoff_s, config.reconnect_max_backoff_s
    failures = 8  # with Config.local(): 0.1, 0.2, 0.4, 0.8, then capped at 1.0
    peer = start_peer()
    peer.tell(Deliver(gossip(0)))  # something to send: the first dial

    for n in range(failures):
        eventually(lambda n=n: len(transport.dials) == n + 1)
        transport.fail(n)
        delay = eventually(lambda n=n: scheduler.delays[n : n + 1])[0]
        ceiling = min(cap, initial * 2**n)
        assert ceiling / 2 <= delay <= ceiling, f"delay {n}"
        assert len(transport.dials) == n + 1  # nothing redials before the delay is over
        scheduler.advance(cap)
        # A node never reached is not redialled on a timer alone: the next message dials.
        assert peer.proxy().dials.get(timeout=TIMEOUT_S) == n + 1
        peer.tell(Deliver(gossip(n + 1)))

    eventually(lambda: len(transport.dials) == failures + 1)
    delays = scheduler.delays
    assert max(delays) <= cap
    # Below the cap each delay's range starts where the previous one's ends: they grow.
    uncapped = [d for n, d in enumerate(delays) if initial * 2 ** (n + 1) <= cap]
    assert uncapped == sorted(uncapped) and len(uncapped) >= 3
    assert peer.proxy().dials.get(timeout=TIMEOUT_S) == failures + 1


def test_backoff_delay_stays_within_half_and_all_of_its_capped_value(start_peer, config):
    peer = start_peer().proxy()
    initial, cap = config.reconnect_initial_backoff_s, config.reconnect_max_backoff_s

    for n in [0, 1, 2, 3, 4, 10, 40, 1000]:
        ceiling = min(cap, initial * 2**n)
        for _ in range(20):
            assert ceiling / 2 <= peer.backoff_delay(n).get(timeout=TIMEOUT_S) <= ceiling


# --------------------------------------------------------------------------- one stream per pair


def _open_outbound(peer, transport, peer_name, peer_address, eventually):
    """Make the peer actor dial (it has something to send) and let the dial succeed."""
    peer.tell(Deliver(gossip(0)))
    eventually(lambda: transport.dials)
    return transport.connect(transport.dial_index(peer_name), peer_name, peer_address)


@pytest.mark.parametrize("first", ["outbound", "inbound"])
@pytest.mark.parametrize(
    ("local", "peer_name", "winner"),
    [
        ("b", "a", "inbound"),  # a < b: the stream a dialled wins, on both nodes
        ("a", "b", "outbound"),  # the same rule seen from a: its own dial wins
    ],
    ids=["local-b", "local-a"],
)
def test_of_two_streams_dialled_by_each_side_the_smaller_name_s_wins(
    start_peer, transport, recorder, eventually, local, peer_name, winner, first
):
    addresses = {"a": A, "b": B}
    peer_address = addresses[peer_name]
    peer = start_peer(
        local=local, local_address=addresses[local], peer=peer_name, peer_address=peer_address
    )

    # Both nodes dialled at once: whichever stream is attached first, the same one stays.
    streams = {}
    if first == "outbound":
        streams["outbound"] = _open_outbound(peer, transport, peer_name, peer_address, eventually)
        eventually(lambda: recorder.of_type(PeerConnectivity))
        streams["inbound"] = transport.accept(peer_name, peer_address)
    else:
        peer.tell(Deliver(gossip(0)))  # our dial starts ...
        eventually(lambda: transport.dials)
        streams["inbound"] = transport.accept(peer_name, peer_address)  # ... theirs lands first
        eventually(lambda: recorder.of_type(PeerConnectivity))
        streams["outbound"] = transport.connect(0, peer_name, peer_address)
    loser = streams["inbound" if winner == "outbound" else "outbound"]
    kept = streams[winner]

    eventually(lambda: loser.closed)
    peer.tell(Deliver(gossip(99)))
    eventually(lambda: gossip(99) in kept.received)
    assert not kept.closed
    # Closing a duplicate is not losing the peer.
    assert PeerConnectivity(peer_name, False) not in recorder.messages


@pytest.mark.parametrize("side", ["outbound", "inbound"])
def test_of_two_streams_dialled_by_the_same_side_the_newer_wins(
    start_peer, transport, recorder, eventually, side
):
    peer = start_peer()  # "me" -> "a"
    if side == "inbound":
        older = transport.accept("a", A)
        eventually(lambda: recorder.of_type(PeerConnectivity))
        newer = transport.accept("a", A)  # a dialled again (e.g. as a seed, then as a peer)
    else:
        older = _open_outbound(peer, transport, "a", A, eventually)
        eventually(lambda: recorder.of_type(PeerConnectivity))
        # The MembershipActor's own dial to a seed address that turns out to be node a.
        transport.dial(A, None, lambda reason: None)
        newer = transport.connect(transport.dial_index(None), "a", A)

    eventually(lambda: older.closed)
    peer.tell(Deliver(gossip(99)))
    eventually(lambda: gossip(99) in newer.received)
    assert not newer.closed
    assert gossip(99) not in older.received


# --------------------------------------------------------------------------- flush, robustness


@pytest.mark.parametrize("connected", [False, True], ids=["no-stream", "stream"])
def test_flush_returns_a_done_concurrent_future(start_peer, transport, connected):
    peer = start_peer()
    if connected:
        transport.accept("a", A)

    future = peer.ask(Flush(), timeout=TIMEOUT_S)

    assert isinstance(future, concurrent.futures.Future)
    assert future.done() and future.result() is None


def test_an_unknown_message_is_logged_and_the_actor_keeps_working(
    start_peer, transport, caplog, eventually
):
    peer = start_peer()
    remote = transport.accept("a", A)

    peer.tell("not a PeerActor message")

    eventually(lambda: any("failed to handle" in r.getMessage() for r in caplog.records))
    assert peer.is_alive()
    assert isinstance(peer.ask(Flush(), timeout=TIMEOUT_S), concurrent.futures.Future)
    peer.tell(Deliver(gossip(1)))
    eventually(lambda: remote.received == [gossip(1)])


def test_stopping_the_peer_actor_closes_the_stream_for_the_remote_node_too(
    start_peer, transport, recorder, caplog, eventually
):
    peer = start_peer()
    remote = transport.accept("a", A)
    eventually(lambda: recorder.of_type(PeerConnectivity))

    assert peer.stop(timeout=TIMEOUT_S) is True

    assert remote.near.closed
    assert remote.closed_reason == "closed by peer"  # the remote node's end saw the close
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
