"""Property tests against hostile input, in-process (Hypothesis; bounded budget).

* ``codec.decode`` on arbitrary Envelopes (built with the generated protobuf classes:
  any field values, unset oneofs, member statuses 0..100, up to a few records over
  MAX_MEMBERS_PER_MESSAGE), on mutations of their bytes and on arbitrary bytes, returns
  a wire message or raises DecodeError, nothing else; what it returns encodes again and
  decodes to itself.
* ``MembershipCore.handle`` on arbitrary (valid and invalid) member records in every kind
  of message, from any sender, interleaved with ticks, stream openings and lost streams,
  never raises and keeps its invariants: its own record present and ALIVE, every held
  record valid (``Member.problem() is None``), at most ``max_members`` records; and for
  input that can travel on the wire, every message it sends can be encoded.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dynago.config import Config
from dynago.core.member import MAX_INCARNATION, Member, Status
from dynago.core.membership import MembershipCore
from dynago.core.messages import Ack, Gossip, Nack, Ping, PingReq, Send, StateSync
from dynago.core.tags import MAX_TAGS
from dynago.kv.messages import KV_MESSAGE_TYPES
from dynago.proto import membership_pb2 as pb
from dynago.transport import codec
from dynago.transport.codec import MAX_MEMBERS_PER_MESSAGE, DecodeError

LIMIT = Config().max_message_bytes

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

UINT32 = (1 << 32) - 1
UINT64 = (1 << 64) - 1

any_text = st.text(max_size=40)
"""Any Unicode text protobuf can carry (Hypothesis leaves out surrogates)."""

uint32s = st.one_of(st.integers(0, 3), st.integers(0, UINT32))
uint64s = st.one_of(st.integers(0, 3), st.just(UINT64), st.just(UINT64 - 1),
                    st.integers(0, UINT64))


# ---------------------------------------------------------------------- envelopes


@st.composite
def pb_members(draw: Any) -> dict[str, Any]:
    """Keyword arguments of one pb.Member: mostly plausible, any field may be unset or
    arbitrary, statuses anywhere in 0..100."""
    fields = {
        "name": st.one_of(st.sampled_from(["a", "b", "c"]), any_text),
        "address": st.one_of(st.just("127.0.0.1:7001"), any_text),
        "incarnation": uint64s,
        "status": st.one_of(st.integers(1, 4), st.integers(0, 100)),
        "origin": st.one_of(st.just(""), any_text),
        "tags": st.one_of(
            st.lists(st.tuples(st.sampled_from(["role", "zone", ""]), any_text), max_size=4),
            st.lists(st.tuples(any_text, any_text), max_size=4),
            st.integers(MAX_TAGS - 1, MAX_TAGS + 2).map(
                lambda n: [(f"k{i:03d}", "v") for i in range(n)]),
        ),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    if draw(st.booleans()):
        chosen = sorted(fields)
    return {name: draw(fields[name]) for name in chosen}


def _fill_member(target: pb.Member, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if name == "tags":
            target.tags.SetInParent()  # an empty TagSet too: no tags
            for key, text in value:
                target.tags.entries.add(key=key, value=text)
        else:
            setattr(target, name, value)


@st.composite
def envelopes(draw: Any) -> pb.Envelope:
    """An Envelope of any kind (or none) with arbitrary field values."""
    envelope = pb.Envelope()
    kind = draw(st.sampled_from([None, "hello", "refusal", "auth", "gossip", "state_sync",
                                 "ping", "ack", "ping_req", "nack"]))
    if kind == "hello":
        hello = envelope.hello
        hello.SetInParent()
        for name, strategy in (("name", any_text), ("address", any_text),
                               ("cluster", any_text), ("protocol_version", uint32s),
                               ("min_protocol_version", uint32s),
                               ("nonce", st.binary(max_size=32)),
                               ("proof", st.binary(max_size=40))):
            if draw(st.booleans()):
                setattr(hello, name, draw(strategy))
    elif kind == "refusal":
        envelope.refusal.SetInParent()
        envelope.refusal.reason = draw(any_text)
    elif kind == "auth":
        envelope.auth.SetInParent()
        envelope.auth.proof = draw(st.binary(max_size=40))
    elif kind in ("gossip", "state_sync"):
        container = envelope.gossip.updates if kind == "gossip" else envelope.state_sync.members
        if kind == "gossip":
            envelope.gossip.SetInParent()
        else:
            envelope.state_sync.SetInParent()
            envelope.state_sync.reply_wanted = draw(st.booleans())
            envelope.state_sync.last = draw(st.booleans())
        for values in draw(st.lists(pb_members(), max_size=8)):
            _fill_member(container.add(), values)
        if draw(st.integers(0, 20)) == 0:  # now and then: around the per-message cap
            extra = draw(st.integers(MAX_MEMBERS_PER_MESSAGE - 2, MAX_MEMBERS_PER_MESSAGE + 2))
            for i in range(max(0, extra - len(container))):
                container.add(name=f"m{i}", address="127.0.0.1:1", status=pb.MEMBER_STATUS_ALIVE)
    elif kind in ("ping", "ack", "ping_req"):
        message = getattr(envelope, kind)
        message.SetInParent()
        if draw(st.booleans()):
            message.seq = draw(uint64s)
        if draw(st.booleans()):
            member = message.member if kind == "ack" else message.target
            member.SetInParent()
            _fill_member(member, draw(pb_members()))
    elif kind == "nack":
        envelope.nack.SetInParent()
        if draw(st.booleans()):
            envelope.nack.seq = draw(uint64s)
    return envelope


WIRE_TYPES = (codec.Hello, codec.Refusal, codec.Auth, Gossip, StateSync, Ping, Ack, PingReq,
              Nack, *KV_MESSAGE_TYPES)


def _check_decoded(data: bytes) -> None:
    """decode(data) is a wire message that round-trips, or a DecodeError."""
    try:
        message = codec.decode(data, LIMIT)
    except DecodeError:
        event("DecodeError")
        return
    event(f"decoded {type(message).__name__}")
    assert isinstance(message, WIRE_TYPES), type(message)
    members: tuple[Member, ...] = ()
    if isinstance(message, Gossip):
        members = message.updates
    elif isinstance(message, StateSync):
        members = message.members
    elif isinstance(message, Ping | PingReq):
        members = (message.target,)
    elif isinstance(message, Ack):
        members = (message.member,)
    elif isinstance(message, codec.Hello):
        assert message.name and message.cluster
    assert len(members) <= MAX_MEMBERS_PER_MESSAGE
    for member in members:
        assert isinstance(member.status, Status)
        assert 0 <= member.incarnation <= MAX_INCARNATION
        assert len(member.tags) <= MAX_TAGS
    assert codec.decode(codec.encode(message), LIMIT) == message


@FUZZ
@given(envelopes())
def test_fuzz_codec_decode_arbitrary_envelopes(envelope: pb.Envelope) -> None:
    _check_decoded(envelope.SerializeToString())


@FUZZ
@given(envelopes(), st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert"]),
                                       st.integers(0, 1 << 16), st.binary(min_size=1,
                                                                          max_size=4)),
                             min_size=1, max_size=4))
def test_fuzz_codec_decode_mutated_envelopes(
    envelope: pb.Envelope, mutations: list[tuple[str, int, bytes]]
) -> None:
    data = bytearray(envelope.SerializeToString())
    for operation, position, chunk in mutations:
        at = position % (len(data) + 1)
        if operation == "flip" and data:
            data[at % len(data)] ^= chunk[0] or 0xFF
        elif operation == "cut":
            del data[at : at + len(chunk)]
        else:
            data[at:at] = chunk
    _check_decoded(bytes(data))


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_codec_decode_arbitrary_bytes(data: bytes) -> None:
    _check_decoded(data)


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(0, 63))
def test_fuzz_codec_decode_respects_byte_limit(data: bytes, limit: int) -> None:
    """Over the limit is a DecodeError whatever the bytes."""
    if len(data) > limit:
        try:
            codec.decode(data, limit)
        except DecodeError as error:
            assert "exceeds the limit" in str(error)
        else:
            raise AssertionError("an oversized message was decoded")


# ---------------------------------------------------------------------- the core

ME = "me"
ME_ADDRESS = "127.0.0.1:7000"
PEERS = ["a", "b", "c", "d", "e", "f"]
NAMES = st.one_of(
    st.sampled_from([ME, *PEERS]),
    st.sampled_from(["", " ", "a b", "tab\t", "x" * 256, "\x00", "é"]),
    any_text,
)
ADDRESSES = st.one_of(
    st.sampled_from(["127.0.0.1:7001", "127.0.0.1:7002", "[::1]:7003", "node:1", ME_ADDRESS]),
    st.sampled_from(["", "no-port", "127.0.0.1:0", "127.0.0.1:65536", "[::1:1", "a b:1"]),
    any_text,
)
INCARNATIONS = st.one_of(st.integers(0, 3), st.just(MAX_INCARNATION),
                         st.just(MAX_INCARNATION - 1), st.integers(-2, MAX_INCARNATION + 2))
STATUSES = st.one_of(st.sampled_from(Status), st.sampled_from(Status), st.integers(-1, 100))

TAG_SETS = st.one_of(
    st.just(()),
    st.dictionaries(st.sampled_from(["role", "zone", "rack"]), st.sampled_from(["a", "b", ""]),
                    max_size=3).map(lambda tags: tuple(sorted(tags.items()))),
)
"""Valid tags (canonical: sorted by key, each key once)."""
ANY_TAGS = st.one_of(
    TAG_SETS,
    st.lists(st.tuples(any_text, any_text), max_size=4).map(tuple),  # unsorted, bad keys
    st.just((("zone", "a"), ("role", "kv"))),  # not sorted
    st.just((("role", "a"), ("role", "b"))),  # a key twice
    st.just(tuple((f"k{i:03d}", "v") for i in range(MAX_TAGS + 1))),  # too many
    st.just((("big", "x" * 513),)),  # value too long
)

any_members = st.builds(Member, name=NAMES, address=ADDRESSES, incarnation=INCARNATIONS,
                        status=STATUSES, origin=st.one_of(st.just(""), NAMES), tags=ANY_TAGS)


@st.composite
def plausible_members(draw: Any) -> Member:
    """A record that passes Member.problem(): known names and addresses, incarnations
    low or at the maximum, an origin only where one belongs."""
    status = draw(st.sampled_from(Status))
    origin = ""
    if status in (Status.SUSPECT, Status.FAILED):
        origin = draw(st.sampled_from(["", ME, *PEERS]))
    return Member(draw(st.sampled_from([ME, *PEERS])),
                  draw(st.sampled_from(["127.0.0.1:7001", "127.0.0.1:7002", ME_ADDRESS])),
                  draw(st.one_of(st.integers(0, 3), st.just(MAX_INCARNATION - 1),
                                 st.just(MAX_INCARNATION))),
                  status, origin, draw(TAG_SETS))


members = st.one_of(plausible_members(), plausible_members(), plausible_members(),
                    any_members)
member_tuples = st.lists(members, max_size=6).map(tuple)
seqs = st.one_of(st.integers(0, 12), st.integers(0, UINT64))

core_messages = st.one_of(
    st.builds(Gossip, updates=member_tuples),
    st.builds(StateSync, members=member_tuples, reply_wanted=st.booleans(),
              last=st.booleans()),
    st.builds(Ping, seq=seqs, target=members),
    st.builds(Ack, seq=seqs, member=members),
    st.builds(PingReq, seq=seqs, target=members),
    st.builds(Nack, seq=seqs),
)

steps = st.one_of(
    st.tuples(st.just("handle"), st.one_of(st.sampled_from([ME, *PEERS]), NAMES),
              core_messages),
    st.tuples(st.just("tick"), st.sampled_from([0.0, 0.05, 0.1, 0.3, 1.0, 5.0, 120.0])),
    st.tuples(st.just("opened"), NAMES, ADDRESSES, st.booleans()),
    st.tuples(st.just("unreachable"), NAMES),
    st.tuples(st.just("set_tags"), ANY_TAGS),
)


def _carried(message: Any) -> tuple[Member, ...]:
    if isinstance(message, Gossip):
        return message.updates
    if isinstance(message, StateSync):
        return message.members
    if isinstance(message, Ping | PingReq):
        return (message.target,)
    if isinstance(message, Ack):
        return (message.member,)
    return ()


def _can_travel(message: Any) -> bool:
    """Whether the wire could deliver ``message`` (decode never yields anything else)."""
    return all(isinstance(m.status, Status) and 0 <= m.incarnation <= MAX_INCARNATION
               for m in _carried(message))


def _check_invariants(core: MembershipCore, config: Config) -> None:
    me = core.get(ME)
    assert me is not None, "the core lost its own record"
    assert me.member.status is Status.ALIVE, me
    records = core.records()
    assert len(records) <= config.max_members, len(records)
    for record in records:
        assert record.member.problem() is None, record.member


@FUZZ
@given(
    st.integers(1, 8),
    st.integers(1, 3),
    st.sampled_from([0.5, 10.0, 1000.0]),
    st.lists(st.sampled_from(["127.0.0.1:7001", "127.0.0.1:7002"]), max_size=2),
    st.lists(steps, min_size=1, max_size=60),
    st.randoms(use_true_random=False),
)
def test_fuzz_core_handle_never_raises_and_keeps_invariants(
    max_members: int, burst: int, rate: float, seeds: list[str],
    script: list[tuple[Any, ...]], rng: random.Random,
) -> None:
    config = Config.local(max_members=max_members, new_members_burst=burst,
                          new_members_per_peer_per_s=rate).validate()
    now = 0.0
    core = MembershipCore(ME, ME_ADDRESS, config, random.Random(rng.getrandbits(32)), now,
                          seeds=seeds)
    _check_invariants(core, config)
    for step in script:
        wire = True
        if step[0] == "handle":
            _, sender, message = step
            wire = _can_travel(message)
            effects = core.handle(sender, message, now)
        elif step[0] == "tick":
            now += step[1]
            effects = core.tick(now)
        elif step[0] == "opened":
            _, peer, address, via_seed = step
            effects = core.stream_opened(peer, address, now, via_seed=via_seed)
        elif step[0] == "set_tags":
            before = core.local_member
            try:
                effects = core.set_tags(step[1], now)
            except ValueError:
                assert core.local_member == before, "a refused tag change changed the record"
                effects = []
        else:
            effects = core.peer_unreachable(step[1], now)
        _check_invariants(core, config)
        if wire:
            for effect in effects:
                if isinstance(effect, Send):
                    codec.encode(effect.message)  # raises if it could not travel
    counters = core.counters
    event(f"map full: {len(core.records()) == max_members}")
    for name in ("members_refused_cap", "members_refused_rate", "unrefutable", "refutations",
                 "invalid_records", "suspicions_raised", "failures_declared"):
        if getattr(counters, name):
            event(name)
