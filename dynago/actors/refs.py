"""Telling actors from callbacks that may outlive them.

Transport and timer callbacks can fire after the actor they tell has stopped (a stream
closing because its actor is stopping, a redial timer due during shutdown). Such a tell
has nobody left to act on it, so it is dropped instead of raising into the transport.
"""

from __future__ import annotations

from typing import Any

import pykka


def tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    """``ref.tell(message)``, ignoring that the actor may have stopped already."""
    tell_if_alive(ref, message)


def tell_if_alive(ref: pykka.ActorRef[Any], message: Any) -> bool:
    """``ref.tell(message)``; False (nothing sent) if the actor has stopped already."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


def mailbox_depth(ref: pykka.ActorRef[Any]) -> int:
    """Messages waiting in the actor's mailbox (pykka's threading inbox is a Queue)."""
    qsize = getattr(ref.actor_inbox, "qsize", None)
    return int(qsize()) if qsize is not None else 0
