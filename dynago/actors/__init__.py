"""Actors: MembershipActor owns the member map; one PeerActor per remote node owns its stream."""

from dynago.actors.membership import MembershipActor
from dynago.actors.peer import PeerActor

__all__ = ["MembershipActor", "PeerActor"]
