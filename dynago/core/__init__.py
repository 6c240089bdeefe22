"""The pure membership core: every membership rule, and nothing else.

It imports no pykka, grpc, ``time`` or global ``random``: callers pass the current time
(``now``, seconds on the caller's monotonic clock) and a seeded ``random.Random``. The
core returns effects (messages to send, events to publish) and the caller carries them
out. The same code runs inside the MembershipActor and inside tests and simulators.
"""

from dynago.core.address import AddressError, format_address, parse_address
from dynago.core.member import Member, MemberRecord, Status, merge_member, merge_views
from dynago.core.membership import MembershipCore
from dynago.core.messages import (
    CoreMessage,
    Effect,
    EventKind,
    Gossip,
    MemberEvent,
    Publish,
    Send,
    StateSync,
)

__all__ = [
    "AddressError",
    "CoreMessage",
    "Effect",
    "EventKind",
    "Gossip",
    "Member",
    "MemberEvent",
    "MemberRecord",
    "MembershipCore",
    "Publish",
    "Send",
    "StateSync",
    "Status",
    "format_address",
    "merge_member",
    "merge_views",
    "parse_address",
]
