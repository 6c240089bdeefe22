"""What a replica does with an object it is sent, what a coordinator writes, how far a
default quorum reaches, and how a client's context and a forwarded put's failure read.
Pure rules shared by the KV actor (dynago.actors.kv, kv_reads, kv_coordinate) and the
deterministic simulator's KV layer (dynago.sim.kv_node), so both run the same code.
"""

from __future__ import annotations

from collections.abc import Callable

from dynago.kv import version
from dynago.kv.messages import ForwardReply
from dynago.kv.model import BadRequest, Content, KvError, TooLarge, Unavailable
from dynago.kv.requests import PutFailed


def merge_into(incoming: version.Object) -> Callable[[bytes | None], bytes | None]:
    """A storage update that merges ``incoming`` into the stored object (None: no change).

    The function raises ``ValueError`` if the stored bytes do not decode (the store's
    update then writes nothing and reports the error)."""

    def merge(current: bytes | None) -> bytes | None:
        if current is None:
            return version.encode(incoming)
        stored = version.decode(current)
        merged = version.merge(stored, incoming)
        return None if merged == stored else version.encode(merged)

    return merge


def capped_quorum(asked: int | None, resolved: int, preflist: tuple[str, ...]) -> int:
    """A default quorum counts out of the copies the cluster can hold: a cluster smaller
    than N keeps ``len(preflist)`` copies, so its default R and W are capped there (a
    one-node cluster answers at R = W = 1). A quorum the client asked for is never
    lowered: more than the copies there are fails with 503."""
    if asked is None and preflist:
        return min(resolved, len(preflist))
    return resolved


def coordinated_write(context: version.Clock | None, replica: str, content: Content, *,
                      overwrite: bool, limit: int) -> Callable[[bytes | None], bytes]:
    """The coordinator's storage update for one client write: ``version.coordinate`` on
    what it holds (a new dot of ``replica``), encoded.

    The function raises ``TooLarge`` if the result would be over ``limit`` bytes (with
    its siblings) and whatever ``version.coordinate`` raises; the store then writes
    nothing."""

    def write(current: bytes | None) -> bytes:
        stored = version.decode(current) if current is not None else version.EMPTY
        updated = version.coordinate(stored, context, replica, content, overwrite=overwrite)
        data = version.encode(updated)
        if len(data) > limit:
            raise TooLarge(f"the object would be {len(data)} bytes with its siblings, "
                           f"more than {limit}: resolve its siblings first")
        return data

    return write


def client_context(data: bytes | None) -> version.Clock | None:
    """A client's causal context (None: none given).

    Raises:
        BadRequest: the bytes do not decode.
    """
    if data is None:
        return None
    try:
        return version.decode_context(data)
    except ValueError as exc:
        raise BadRequest(f"the causal context does not decode: {exc}") from None


def forward_error(reply: ForwardReply) -> KvError:
    """The error a coordinator's failed ForwardReply stands for (503: Unavailable with
    its count; 400 and 413 as themselves)."""
    if reply.status == 503:
        return Unavailable(reply.error, answered=reply.answered, needed=reply.needed)
    for cls in (BadRequest, TooLarge):
        if reply.status == cls.status:
            return cls(reply.error)
    return KvError(reply.error or f"coordinator answered {reply.status}")


def put_unavailable(outcome: PutFailed) -> Unavailable:
    """The client's error for a put that could not reach its W (or PW)."""
    return Unavailable(f"{outcome.answered} of the {outcome.needed} replica acknowledgements "
                       f"needed arrived ({outcome.reason})", answered=outcome.answered,
                       needed=outcome.needed)
