"""Value converters of ``dynago node`` settings (ops.config_file): each takes what a
flag, a variable or the TOML file gave and returns the checked value, or raises
ValueError with a plain sentence (config_file names the source and the key).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dynago.core.address import parse_address
from dynago.core.tags import make_tags, parse_tag
from dynago.transport.resolve import parse_seed


def as_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {shown(value)}")
    if not value:
        raise ValueError("must not be empty")
    return value


def address_of(allow_zero: bool) -> Callable[[object], str]:
    def check(value: object) -> str:
        text = as_text(value)
        parse_address(text, allow_port_zero=allow_zero)
        return text
    return check


def http_address(value: object) -> str:
    text = as_text(value)
    if text.isascii() and text.isdigit():
        text = f"127.0.0.1:{text}"
    parse_address(text, allow_port_zero=True)
    return text


def comma_list(text: str) -> list[str]:
    """DYNAGO_SEEDS: a comma-separated list."""
    return [part.strip() for part in text.split(",") if part.strip()]


def one_item(text: str) -> list[str]:
    """DYNAGO_ON_EVENT: one command (commands may contain commas)."""
    return [text]


def seed_list(value: object) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of strings, got {shown(value)}")
    for item in value:
        parse_seed(as_text(item))
    return list(value)


def tag_list(value: object) -> list[str]:
    """Node tags as sorted ``KEY=VALUE`` strings, from a TOML table (``{role = "kv"}``),
    a list of ``KEY=VALUE`` strings (file, DYNAGO_TAGS=role=kv,zone=a) or the pairs of
    ``--tag``."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = [parse_tag(item) if isinstance(item, str) else item for item in value]
    else:
        raise ValueError(f"expected a table of tags or a list of KEY=VALUE, got {shown(value)}")
    return [f"{key}={text}" for key, text in make_tags(pairs)]


def command_list(value: object) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of commands, got {shown(value)}")
    return [as_text(item) for item in value]


def as_int(value: object) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {shown(value)}")
    return value


def as_float(value: object) -> float:
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {shown(value)}")
    else:
        number = float(value)
    if math.isnan(number):
        raise ValueError("must be a number, not nan")
    return number


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def as_bool(value: object) -> bool:
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {shown(value)}")
    return value


def choice(*choices: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        text = as_text(value).lower()
        if text not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return text
    return check


def in_range(convert: Callable[[object], Any], low: float, high: float) -> Callable[
        [object], Any]:
    def check(value: object) -> Any:
        number = convert(value)
        if not low <= number <= high:
            raise ValueError(f"{number} is outside {low:g}..{high:g}")
        return number
    return check


def shown(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]
