"""SWIM probing (with Lifeguard's local health): where a member becomes SUSPECT.

Rules:

* Each protocol period one member, round-robin, gets a Ping; no Ack within the probe
  timeout → PingReq to ``indirect_checks`` others, who relay the Ack or answer Nack; no
  Ack by the end of the period → the member is SUSPECT (origin: this node) and that is
  gossiped. Timeouts and the period scale with this node's local health
  (core.awareness): missed acks and helpers that did not even nack make it slower.
* Our own failed probe of a member others suspect already is an independent
  confirmation (Lifeguard), gossiped so that they count it too.
* A lost stream is only a hint: it makes this node probe that member now.
* A Ping carries the prober's record of the target, so a suspect refutes at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dynago.core.member import Member, Status
from dynago.core.messages import Ack, Effect, Nack, Ping, PingReq, Send
from dynago.core.probe import ActiveProbe
from dynago.core.rules.receive import receive

if TYPE_CHECKING:
    from dynago.core.membership import MembershipCore


def start_probe(core: MembershipCore, target: str, now: float, effects: list[Effect]) -> None:
    """Ping ``target`` directly."""
    record = core._records[target].member
    probe = core._prober.start(
        target, record.incarnation, now,
        core.awareness.scale(core.config.probe_timeout_s),
        core.awareness.scale(core.config.probe_interval_s),
    )
    core.counters.probes_sent += 1
    effects.append(Send(target, record.address, Ping(probe.seq, record)))


def peer_unreachable(core: MembershipCore, name: str, now: float) -> list[Effect]:
    """Hint: the stream to ``name`` was lost. Not a verdict: probe it now."""
    core._due = None  # whatever follows may move the next deadline
    effects: list[Effect] = []
    if not core._leaving and core._is_live_peer(name) and not core.probing(name):
        start_probe(core, name, now, effects)
    return effects


def run_probe_deadlines(core: MembershipCore, now: float, effects: list[Effect]) -> None:
    """Probes past their timeout go indirect; past their period they fail; relays past
    their deadline answer Nack."""
    prober = core._prober
    for probe in list(prober.active.values()):
        if now >= probe.ends_at:
            prober.finish(probe.seq)
            probe_failed(core, probe, now, effects)
        elif now >= probe.timeout_at and not probe.indirect:
            probe.indirect = True
            record = core._records.get(probe.target)
            if record is None:
                continue
            helpers = [n for n in core._live.sample(
                core._rng, core.config.indirect_checks + 1) if n != probe.target]
            helpers = helpers[: core.config.indirect_checks]
            probe.helpers = len(helpers)
            core.counters.indirect_probes_sent += len(helpers)
            for helper in helpers:
                effects.append(Send(helper, core._records[helper].member.address,
                                    PingReq(probe.seq, record.member)))
    for seq, relay in list(prober.relays.items()):
        if now >= relay.deadline:
            del prober.relays[seq]
            core.counters.nacks_sent += 1
            effects.append(Send(relay.origin, relay.origin_address, Nack(relay.origin_seq)))


def probe_failed(
    core: MembershipCore, probe: ActiveProbe, now: float, effects: list[Effect]
) -> None:
    """No ack, direct or indirect, by the end of the period: the target becomes SUSPECT."""
    core.counters.probes_failed += 1
    if probe.helpers == 0 or probe.nacks < probe.helpers:
        # Lifeguard: helpers that did not even nack suggest that we are the slow one.
        core.awareness.apply(+1)
    record = core._records.get(probe.target)
    if record is None or record.member.incarnation != probe.incarnation:
        return  # gone, or it refuted meanwhile
    member = record.member
    if member.status is Status.SUSPECT:
        # Lifeguard: our own failed probe is an independent confirmation of a suspicion
        # we heard from others; gossip it so that they count it too.
        suspicion = core._suspicions.get(member.name)
        if suspicion is not None and suspicion.confirm(core.name):
            mine = Member(member.name, member.address, member.incarnation,
                          Status.SUSPECT, core.name, member.tags)
            if mine.supersedes(member):
                core._apply(mine, now, effects)
            else:
                core._broadcasts.enqueue(mine)
        return
    if member.status is not Status.ALIVE:
        return
    core.counters.suspicions_raised += 1
    suspect = Member(member.name, member.address, member.incarnation, Status.SUSPECT,
                     core.name, member.tags)
    core._apply(suspect, now, effects, detail=f"our probe got no ack, direct or via "
                f"{probe.helpers} helper(s) ({probe.nacks} nacked)")


def on_ping(
    core: MembershipCore, sender: str, ping: Ping, now: float, effects: list[Effect]
) -> None:
    """Answer a Ping with an Ack carrying our record."""
    if ping.target.name == core.name:
        receive(core, ping.target, now, effects)  # a suspect refutes at once
    held = core._records.get(sender)
    address = held.member.address if held is not None else ""
    effects.append(Send(sender, address, Ack(ping.seq, core._me)))


def on_ack(core: MembershipCore, sender: str, ack: Ack, now: float, effects: list[Effect]) -> None:
    """An Ack ends our probe, or is relayed to the node we probe for."""
    core.counters.acks_received += 1
    prober = core._prober
    relay = prober.relays.pop(ack.seq, None)
    if relay is not None:
        if ack.member.name == relay.target:
            effects.append(Send(relay.origin, relay.origin_address,
                                Ack(relay.origin_seq, ack.member)))
    else:
        probe = prober.active.get(ack.seq)
        if probe is not None and ack.member.name == probe.target:
            prober.finish(ack.seq)
            core.awareness.apply(-1)
    receive(core, ack.member, now, effects, sender)


def on_ping_req(
    core: MembershipCore, sender: str, req: PingReq, now: float, effects: list[Effect]
) -> None:
    """Probe ``req.target`` for ``sender``: relay its Ack, or Nack at the deadline."""
    target = req.target
    if target.name == core.name or target.problem() is not None:
        return
    receive(core, target, now, effects, sender)  # carries a suspicion on to the target
    held = core._records.get(sender)
    origin_address = held.member.address if held is not None else ""
    timeout = core.awareness.scale(core.config.probe_timeout_s)
    seq = core._prober.relay(sender, origin_address, req.seq, target.name, now + timeout)
    record = core._records.get(target.name)
    known = record.member if record is not None else target
    effects.append(Send(target.name, known.address, Ping(seq, known)))


def on_nack(core: MembershipCore, nack: Nack) -> None:
    """A helper could not reach the target either: counted for Lifeguard (probe_failed)."""
    probe = core._prober.active.get(nack.seq)
    if probe is not None:
        probe.nacks += 1
        core.counters.nacks_received += 1
