"""Member tags: small key/value metadata that travels inside a member's record.

A member's tags are part of its record (``Member.tags``), so they spread by the same
gossip and anti-entropy as everything else, and only the member itself changes them, by
raising its incarnation (``MembershipCore.set_tags``). In a record they are a tuple of
``(key, value)`` pairs sorted by key, each key once: one canonical form, so two records
with the same tags compare equal and the merge stays a pure function of the records.

Bounds (checked by ``tags_problem``; a record that breaks them is invalid):

* at most ``MAX_TAGS`` tags;
* a key is 1 to ``MAX_TAG_KEY_BYTES`` bytes of UTF-8, printable, with no whitespace and
  no ``=`` (so ``key=value`` always splits at the first ``=``);
* a value is 0 to ``MAX_TAG_VALUE_BYTES`` bytes of UTF-8, printable (spaces allowed);
* keys and values together are at most ``MAX_TAGS_BYTES`` bytes, which keeps the worst
  record small enough that a full-state chunk of ``max_members_per_sync_message``
  records still fits in one message (see Config.validate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Tags = tuple[tuple[str, str], ...]
"""Tags as a record holds them: ``(key, value)`` pairs sorted by key, keys unique."""

MAX_TAGS = 64
MAX_TAG_KEY_BYTES = 128
MAX_TAG_VALUE_BYTES = 512
MAX_TAGS_BYTES = 2048
"""Sum of the UTF-8 lengths of every key and value of one member."""

MAX_TAGS_WIRE_BYTES = MAX_TAGS_BYTES + 8 * MAX_TAGS
"""Most bytes the tags of one record take on the wire (protobuf framing included)."""


class TagError(ValueError):
    """Tags given by a user (flag, admin API, Python call) that break the bounds above."""


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def key_problem(key: object) -> str | None:
    """Why ``key`` may not be a tag key, or None if it may."""
    if not isinstance(key, str):
        return f"tag key {key!r} is not a string"
    if not key:
        return "a tag key may not be empty"
    if _utf8_len(key) > MAX_TAG_KEY_BYTES:
        return f"tag key {key[:32]!r}... is longer than {MAX_TAG_KEY_BYTES} bytes"
    if "=" in key or not key.isprintable() or any(ch.isspace() for ch in key):
        return f"tag key {key!r} has '=', whitespace or unprintable characters"
    return None


def value_problem(key: str, value: object) -> str | None:
    """Why ``value`` may not be the value of tag ``key``, or None if it may."""
    if not isinstance(value, str):
        return f"tag {key!r}: value {value!r} is not a string"
    if _utf8_len(value) > MAX_TAG_VALUE_BYTES:
        return f"tag {key!r}: value is longer than {MAX_TAG_VALUE_BYTES} bytes"
    if not value.isprintable():
        return f"tag {key!r}: value {value!r} has unprintable characters"
    return None


def tags_problem(tags: object) -> str | None:
    """Why ``tags`` may not be the tags of a record, or None if they may.

    Checks the canonical form too: a tuple of pairs, sorted by key, each key once.
    """
    if not isinstance(tags, tuple):
        return "tags must be a tuple of (key, value) pairs"
    if len(tags) > MAX_TAGS:
        return f"{len(tags)} tags, more than {MAX_TAGS}"
    total = 0
    previous: str | None = None
    for pair in tags:
        if not isinstance(pair, tuple) or len(pair) != 2:
            return f"tag {pair!r} is not a (key, value) pair"
        key, value = pair
        problem = key_problem(key) or value_problem(key, value)
        if problem:
            return problem
        if previous is not None and key <= previous:
            return f"tags are not sorted by key with each key once (at {key!r})"
        previous = key
        total += _utf8_len(key) + _utf8_len(value)
    if total > MAX_TAGS_BYTES:
        return f"tags take {total} bytes, more than {MAX_TAGS_BYTES}"
    return None


def make_tags(tags: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> Tags:
    """The canonical form of ``tags`` (a mapping or pairs). Raises TagError if they break
    a bound, or if pairs name one key twice."""
    pairs = list(tags.items()) if isinstance(tags, Mapping) else list(tags)
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TagError(f"tag {pair!r} is not a (key, value) pair")
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise TagError(f"tag key {duplicate!r} is given more than once")
    canonical = tuple(sorted(pairs, key=lambda pair: str(pair[0])))
    problem = tags_problem(canonical)
    if problem:
        raise TagError(problem)
    return canonical


def parse_tag(text: str) -> tuple[str, str]:
    """``"key=value"`` as a pair. Raises TagError if there is no ``=`` or a bound breaks."""
    key, sep, value = text.partition("=")
    if not sep:
        raise TagError(f"tag {text!r} is not KEY=VALUE")
    problem = key_problem(key) or value_problem(key, value)
    if problem:
        raise TagError(problem)
    return key, value


def parse_filter(text: str) -> tuple[str, str | None]:
    """A tag filter: ``"key=value"`` (that exact value) or ``"key"`` (has the key)."""
    if "=" in text:
        return parse_tag(text)
    problem = key_problem(text)
    if problem:
        raise TagError(problem)
    return text, None


def matches(tags: Iterable[tuple[str, str]], filters: Iterable[tuple[str, str | None]]) -> bool:
    """True if ``tags`` pass every filter (see parse_filter)."""
    held = dict(tags)
    for key, value in filters:
        if key not in held or (value is not None and held[key] != value):
            return False
    return True


def apply_patch(tags: Tags, patch: Mapping[str, object]) -> Tags:
    """``tags`` changed by a JSON merge patch (RFC 7386): a string sets that key, None
    (JSON null) removes it. Raises TagError for anything else or a broken bound."""
    held = dict(tags)
    for key, value in patch.items():
        if value is None:
            held.pop(key, None)
            continue
        problem = key_problem(key) or value_problem(key, value)
        if problem:
            raise TagError(problem)
        held[key] = str(value)
    return make_tags(held)
