"""The binary forms of causal contexts and objects (dynago.kv.version re-exports them).

Both start with a format-version byte; integers are big-endian, names and values carry
length prefixes, values are raw bytes. Decoding sees bytes from peers and from disk: it
raises ``ValueError`` (never another error) on anything truncated, trailing, out of
canonical order or over a bound, and every length is checked against what remains, so a
few bytes can never make it allocate much.

Context, format 1::

    u8 format=1 | u8 entries (≤ 64) | entries × (u8 name_len, name, u64 counter)

Object, format 1::

    u8 format=1 | u8 entries | entries as above (the clock)
    | u16 versions (≤ MAX_VERSIONS)
    | versions × (u8 clock index of the dot's replica, u64 counter, u8 flags (bit 0:
      deleted), i64 last_modified_us, u8 content_type_len, u16 meta count, u32 value_len,
      content_type, meta × (u8 name_len, name, u16 value_len, value), value)
"""

from __future__ import annotations

import struct

from dynago.kv.model import Content

Clock = tuple[tuple[str, int], ...]

FORMAT = 1
MAX_CLOCK_ENTRIES = 64
"""Most replicas a clock names."""
MAX_REPLICA_NAME_BYTES = 255
MAX_VERSIONS = 8192
"""Most versions an encoded object holds (≥ MAX_CLOCK_ENTRIES × version.MAX_SIBLINGS)."""
_MAX_COUNTER = 2**64 - 1
_FLAG_DELETED = 1

_HEAD = struct.Struct(">BB")
_NAME_LEN = struct.Struct(">B")
_COUNTER = struct.Struct(">Q")
_COUNT = struct.Struct(">H")
_VERSION = struct.Struct(">BQBqBHI")
_META_VALUE_LEN = struct.Struct(">H")

VersionParts = tuple[str, int, Content]


def check_clock(clock: Clock) -> Clock:
    """``clock`` itself if canonical: sorted by name without repeats, names of 1..255
    UTF-8 bytes, counters 1..2**64-1, at most MAX_CLOCK_ENTRIES entries.

    Raises:
        ValueError: naming what is wrong.
    """
    if not isinstance(clock, tuple):
        raise ValueError("a clock is a tuple of (replica, counter) pairs")
    if len(clock) > MAX_CLOCK_ENTRIES:
        raise ValueError(f"a clock holds at most {MAX_CLOCK_ENTRIES} entries")
    previous = ""
    for entry in clock:
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise ValueError("a clock entry is a (replica, counter) pair")
        name, counter = entry
        if not isinstance(name, str) or not 0 < len(name.encode()) <= MAX_REPLICA_NAME_BYTES:
            raise ValueError(f"replica names are 1..{MAX_REPLICA_NAME_BYTES} UTF-8 bytes")
        if name <= previous:
            raise ValueError("clock entries must be sorted by replica without repeats")
        if type(counter) is not int or not 1 <= counter <= _MAX_COUNTER:
            raise ValueError(f"clock counters are 1..{_MAX_COUNTER}")
        previous = name
    return clock


def _encode_clock(clock: Clock, out: list[bytes]) -> None:
    out.append(_HEAD.pack(FORMAT, len(clock)))
    for name, counter in clock:
        raw = name.encode()
        out.append(_NAME_LEN.pack(len(raw)))
        out.append(raw)
        out.append(_COUNTER.pack(counter))


def _decode_clock(data: bytes) -> tuple[Clock, int]:
    if len(data) < 2:
        raise ValueError("truncated: no header")
    fmt, entries = _HEAD.unpack_from(data, 0)
    if fmt != FORMAT:
        raise ValueError(f"unknown format {fmt}")
    if entries > MAX_CLOCK_ENTRIES:
        raise ValueError(f"clock of {entries} entries (at most {MAX_CLOCK_ENTRIES})")
    pos = 2
    clock: list[tuple[str, int]] = []
    previous = ""
    for _ in range(entries):
        size = data[pos]
        end = pos + 1 + size
        if size == 0 or end + 8 > len(data):
            raise ValueError("truncated or empty replica name")
        name = data[pos + 1:end].decode()
        (counter,) = _COUNTER.unpack_from(data, end)
        if name <= previous or counter == 0:
            raise ValueError("clock not canonical (unsorted, repeated or zero entry)")
        clock.append((name, counter))
        previous = name
        pos = end + 8
    return tuple(clock), pos


def encode_context(clock: Clock) -> bytes:
    """Opaque bytes of a causal context (give them to the client).

    Raises:
        ValueError: ``clock`` is not canonical.
    """
    out: list[bytes] = []
    _encode_clock(check_clock(clock), out)
    return b"".join(out)


def decode_context(data: bytes) -> Clock:
    """The context ``encode_context`` made.

    Raises:
        ValueError: malformed, truncated, trailing bytes or over a bound.
    """
    try:
        clock, pos = _decode_clock(bytes(data))
    except (IndexError, struct.error) as error:
        raise ValueError("truncated context") from error
    if pos != len(data):
        raise ValueError("trailing bytes after the context")
    return clock


def encode_parts(clock: Clock, versions: list[VersionParts]) -> bytes:
    """An object's bytes from its clock and its versions' (replica, counter, content).

    Raises:
        ValueError: a field over its bound (names 255 bytes, meta values 65535 bytes,
            value 4 GiB, more than MAX_VERSIONS versions).
    """
    if len(versions) > MAX_VERSIONS:
        raise ValueError(f"more than {MAX_VERSIONS} versions")
    out: list[bytes] = []
    _encode_clock(clock, out)
    out.append(_COUNT.pack(len(versions)))
    index = {name: i for i, (name, _) in enumerate(clock)}
    try:
        for replica, counter, content in versions:
            content_type = content.content_type.encode()
            out.append(_VERSION.pack(
                index[replica], counter, _FLAG_DELETED if content.deleted else 0,
                content.last_modified_us, len(content_type), len(content.meta),
                len(content.value)))
            out.append(content_type)
            for name, value in content.meta:
                raw_name, raw_value = name.encode(), value.encode()
                out.append(_NAME_LEN.pack(len(raw_name)))
                out.append(raw_name)
                out.append(_META_VALUE_LEN.pack(len(raw_value)))
                out.append(raw_value)
            out.append(content.value)
    except struct.error as error:
        raise ValueError(f"a field is over its bound: {error}") from error
    return b"".join(out)


def decode_parts(data: bytes) -> tuple[Clock, list[VersionParts]]:
    """The clock and versions ``encode_parts`` wrote, checked canonical: versions sorted
    by dot without repeats, each dot covered by the clock.

    Raises:
        ValueError: malformed, truncated, trailing bytes or over a bound.
    """
    data = bytes(data)  # a memoryview or bytearray would make the values views
    try:
        clock, pos = _decode_clock(data)
        (count,) = _COUNT.unpack_from(data, pos)
        pos += 2
        if count > MAX_VERSIONS:
            raise ValueError(f"{count} versions (at most {MAX_VERSIONS})")
        versions: list[VersionParts] = []
        end = len(data)
        previous = (-1, 0)
        for _ in range(count):
            index, counter, flags, modified, ct_len, metas, value_len = \
                _VERSION.unpack_from(data, pos)
            pos += _VERSION.size
            if index >= len(clock) or flags & ~_FLAG_DELETED:
                raise ValueError("bad replica index or unknown flags")
            # The clock is sorted by name, so index order is replica order.
            if (index, counter) <= previous or not 0 < counter <= clock[index][1]:
                raise ValueError("versions unsorted, repeated or not covered by the clock")
            previous = (index, counter)
            if pos + ct_len > end:
                raise ValueError("truncated content type")
            content_type = data[pos:pos + ct_len].decode()
            pos += ct_len
            meta: list[tuple[str, str]] = []
            for _ in range(metas):
                size = data[pos]
                name = data[pos + 1:pos + 1 + size].decode()
                pos += 1 + size
                (size,) = _META_VALUE_LEN.unpack_from(data, pos)
                pos += 2
                if pos + size > end:
                    raise ValueError("truncated metadata")
                meta.append((name, data[pos:pos + size].decode()))
                pos += size
            if pos + value_len > end:
                raise ValueError("truncated value")
            value = data[pos:pos + value_len]
            pos += value_len
            versions.append((clock[index][0], counter, Content(
                value, content_type, tuple(meta), bool(flags), modified)))
    except (IndexError, struct.error) as error:
        raise ValueError("truncated object") from error
    if pos != len(data):
        raise ValueError("trailing bytes after the object")
    return clock, versions
