"""Causal versions of one key: a dotted version vector set (Preguiça et al., "Dotted
Version Vectors"; Riak's dvvset), with entries per coordinating *replica*, never per
client, so a clock holds at most one entry per node that ever coordinated a write.

An ``Object`` is a version vector ``clock`` (the whole causal past it has seen) and the
``versions`` still standing, each tagged with the *dot* ``(replica, counter)`` of the
write that made it. Every dot is covered by the clock. A dot covered by the clock but not
among the versions was superseded by a write that saw it.

Laws (tests/kv/test_kv_version_laws.py checks them with Hypothesis):

1. ``merge`` is commutative, associative and idempotent, with ``EMPTY`` as identity. Per
   dot an object is in one of three states, unseen < standing < superseded, and merge
   takes the greater on both sides (the clock join is the union of what was seen).
2. ``merge(a, b)`` keeps exactly the versions of either side that the other side's clock
   does not cover, plus those both sides hold (kept once). Nothing else: no dominated
   version survives a merge.
3. A version made by ``coordinate`` survives every merge until some write whose context
   covered its dot reaches that replica: no acknowledged write is lost to a merge.
4. ``coordinate(obj, context_of(read), ...)`` supersedes exactly the versions that read
   saw; a sibling written concurrently (after the read) has a dot the context cannot
   cover, so it stays. ``context=None`` supersedes nothing; ``overwrite=True`` supersedes
   everything ``obj`` holds.
5. A tombstone (``Content.deleted``) is a version like any other: it supersedes what its
   context saw, so a stale replica's older value, covered by the tombstone's clock, can
   never come back through ``merge``.
6. ``decode(encode(o)) == o``; ``decode`` raises only ``ValueError`` on any other input.

Wall clocks decide nothing here: ``Content.last_modified_us`` only breaks ties in
``resolve_one``, Dynago's single-value view of a key with siblings.

Contexts are trusted the way Riak trusts a client's vclock: a forged context that
claims dots it never saw supersedes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dynago.kv.model import Content, Sibling, TooLarge
from dynago.kv.version_codec import (
    MAX_CLOCK_ENTRIES,
    MAX_REPLICA_NAME_BYTES,
    MAX_VERSIONS,
    check_clock,
    decode_context,
    decode_parts,
    encode_context,
    encode_parts,
)

__all__ = [
    "EMPTY",
    "MAX_CLOCK_ENTRIES",
    "MAX_REPLICA_NAME_BYTES",
    "MAX_SIBLINGS",
    "MAX_VERSIONS",
    "Clock",
    "Object",
    "Version",
    "context_of",
    "coordinate",
    "decode",
    "decode_context",
    "descends",
    "encode",
    "encode_context",
    "is_deleted",
    "join",
    "merge",
    "resolve_one",
    "siblings",
    "vtag",
]

Clock = tuple[tuple[str, int], ...]
"""A version vector: ``(replica, counter)`` sorted by replica name, every counter ≥ 1."""

MAX_SIBLINGS = 100
"""Most versions a coordinated write may leave standing (Riak's ``max_siblings``). A
write over it is refused (TooLarge) until a write with a context resolves siblings.
Since the surviving dots of one replica all stood in its last coordinated result, an
object never holds more than MAX_CLOCK_ENTRIES × MAX_SIBLINGS versions (≤ MAX_VERSIONS)."""

_VTAG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VTAG_WIDTH = 11  # 62**11 > 2**64: every 8-byte hash fits, fixed width so str order = number order


@dataclass(frozen=True, slots=True)
class Version:
    """One standing version: the dot of the write that made it and its content."""

    replica: str
    counter: int
    content: Content

    @property
    def dot(self) -> tuple[str, int]:
        return (self.replica, self.counter)


@dataclass(frozen=True, slots=True)
class Object:
    """A key's causal state: ``clock`` covers every dot ever seen (including each
    version's); ``versions`` are the standing ones, sorted by dot, pairwise concurrent.

    Raises:
        ValueError: the clock is not canonical, versions are unsorted or duplicated, or a
            version's dot is not covered by the clock.
    """

    clock: Clock
    versions: tuple[Version, ...]

    def __post_init__(self) -> None:
        check_clock(self.clock)
        seen = dict(self.clock)
        previous: tuple[str, int] | None = None
        for version in self.versions:
            dot = (version.replica, version.counter)
            if previous is not None and dot <= previous:
                raise ValueError("versions are not sorted by dot, or a dot repeats")
            if version.counter < 1 or seen.get(version.replica, 0) < version.counter:
                raise ValueError(f"version dot {dot} is not covered by the clock")
            previous = dot


def _trusted(clock: Clock, versions: tuple[Version, ...]) -> Object:
    """An Object known canonical by construction, without re-checking it: merge,
    coordinate and decode (which checks the same rules on the bytes) run on every
    replica read and write."""
    obj = object.__new__(Object)
    object.__setattr__(obj, "clock", clock)
    object.__setattr__(obj, "versions", versions)
    return obj


EMPTY = Object((), ())
"""A key never written here (or never heard of): the identity of ``merge``."""


def _get(clock: Clock, replica: str) -> int:
    for name, counter in clock:
        if name == replica:
            return counter
    return 0


def join(a: Clock, b: Clock) -> Clock:
    """The least clock that descends both (entry-wise max)."""
    if not a or a == b:
        return b
    if not b:
        return a
    merged = dict(a)
    for name, counter in b:
        if merged.get(name, 0) < counter:
            merged[name] = counter
    return tuple(sorted(merged.items()))


def descends(a: Clock, b: Clock) -> bool:
    """True when ``a`` has seen everything ``b`` has (entry-wise ``a >= b``)."""
    seen = dict(a)
    return all(seen.get(name, 0) >= counter for name, counter in b)


def context_of(obj: Object) -> Clock:
    """The causal context a read hands to the client: the object's whole clock."""
    return obj.clock


def coordinate(obj: Object, context: Clock | None, replica: str, content: Content, *,
               overwrite: bool = False, max_siblings: int = MAX_SIBLINGS) -> Object:
    """A client write coordinated by ``replica`` on its current ``obj``.

    The new version's dot is ``(replica, n)``, ``n`` one more than the greatest counter of
    ``replica`` that ``obj`` or ``context`` has seen. Versions the context covers are
    superseded; the others stay as siblings. The context is joined into the clock, so
    versions the client saw elsewhere are superseded when they meet this one.

    Args:
        obj: what the coordinator holds now (EMPTY if nothing).
        context: the clock of the client's read (``decode_context``), or None to cover
            nothing (the write becomes a sibling of everything standing).
        replica: the coordinating replica's name (non-empty, ≤ 255 UTF-8 bytes).
        content: the value; a delete is ``Content(b"", deleted=True)``.
        overwrite: supersede everything ``obj`` holds (Dynago's /kvstore), on top of
            whatever ``context`` covers.
        max_siblings: refuse a write that would leave more versions standing.

    Raises:
        ValueError: ``replica`` or ``context`` is malformed (our caller's fault).
        TooLarge: the result would hold over ``max_siblings`` versions or its clock over
            MAX_CLOCK_ENTRIES entries; ``obj`` is unchanged.
    """
    raw = replica.encode()
    if not raw or len(raw) > MAX_REPLICA_NAME_BYTES:
        raise ValueError(f"replica name must be 1..{MAX_REPLICA_NAME_BYTES} UTF-8 bytes")
    cover = () if context is None else check_clock(context)
    if overwrite:
        cover = join(obj.clock, cover)
    seen = dict(cover)
    kept = [v for v in obj.versions if seen.get(v.replica, 0) < v.counter]
    counter = max(_get(obj.clock, replica), seen.get(replica, 0)) + 1
    clock = join(join(obj.clock, cover), ((replica, counter),))
    if len(clock) > MAX_CLOCK_ENTRIES:
        raise TooLarge(f"the key's clock would exceed {MAX_CLOCK_ENTRIES} replicas")
    if len(kept) + 1 > max_siblings:
        raise TooLarge(f"the key would have over {max_siblings} siblings: write with the "
                       "context of a read to resolve them")
    kept.append(Version(replica, counter, content))
    kept.sort(key=lambda v: (v.replica, v.counter))
    return _trusted(clock, tuple(kept))


def _content_key(c: Content) -> tuple[bytes, str, tuple[tuple[str, str], ...], bool, int]:
    return (c.value, c.content_type, c.meta, c.deleted, c.last_modified_us)


def merge(a: Object, b: Object) -> Object:
    """Replica sync: everything either side knows, minus what either side superseded.

    A version survives unless the other side's clock covers its dot and the other side
    no longer holds it. A dot held by both is kept once; should two sides disagree on a
    dot's content (only after a replica lost its data and reused counters), the greater
    content wins so that the laws still hold.
    """
    if a is b or not b.clock:
        return a
    if not a.clock:
        return b
    seen_a, seen_b = dict(a.clock), dict(b.clock)
    held_b = {(v.replica, v.counter): v for v in b.versions}
    out: dict[tuple[str, int], Version] = {}
    for v in a.versions:
        dot = (v.replica, v.counter)
        other = held_b.get(dot)
        if other is not None:
            out[dot] = v if _content_key(v.content) >= _content_key(other.content) else other
        elif seen_b.get(v.replica, 0) < v.counter:
            out[dot] = v
    held_a = {(v.replica, v.counter) for v in a.versions}
    for v in b.versions:
        dot = (v.replica, v.counter)
        if dot not in held_a and seen_a.get(v.replica, 0) < v.counter:
            out[dot] = v
    clock = join(a.clock, b.clock)
    return _trusted(clock, tuple(out[dot] for dot in sorted(out)))


def vtag(version: Version) -> str:
    """A stable short id of a version, the same on every node: base-62 of a hash of the
    dot (fixed width, so comparing vtags as strings compares the hashes)."""
    digest = hashlib.blake2b(f"{version.replica}\x00{version.counter}".encode(),
                             digest_size=8).digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(_VTAG_WIDTH):
        number, digit = divmod(number, 62)
        chars.append(_VTAG_ALPHABET[digit])
    return "".join(reversed(chars))


def siblings(obj: Object, *, include_deleted: bool = False) -> tuple[Sibling, ...]:
    """The standing versions as a client sees them, in dot order; tombstones only when
    asked for."""
    return tuple(Sibling(v.content, vtag(v)) for v in obj.versions
                 if include_deleted or not v.content.deleted)


def is_deleted(obj: Object) -> bool:
    """True when no live version stands (never written, or only tombstones): not found."""
    return all(v.content.deleted for v in obj.versions)


def resolve_one(obj: Object) -> Sibling | None:
    """Dynago's /kvstore view of a key with siblings: the live sibling with the greatest
    ``last_modified_us``, ties broken by the greatest vtag; tombstones ignored; None when
    none is live. Deterministic: every node holding the same object answers the same."""
    live = siblings(obj)
    if not live:
        return None
    return max(live, key=lambda s: (s.content.last_modified_us, s.vtag))


def encode(obj: Object) -> bytes:
    """Compact binary form for storage and for carrying objects between nodes.

    Raises:
        ValueError: over a bound ``decode`` enforces (so nothing undecodable is written).
    """
    return encode_parts(obj.clock, [(v.replica, v.counter, v.content) for v in obj.versions])


def decode(data: bytes) -> Object:
    """The object ``encode`` made.

    Raises:
        ValueError: malformed, truncated, trailing bytes, not canonical or over a bound.
    """
    clock, parts = decode_parts(data)
    return _trusted(clock, tuple([Version(r, n, c) for r, n, c in parts]))
