"""The ``[kv]`` table of the config file: the key-value store's per-node repair and
ring knobs (``dynago.kv.config.KvConfig`` fields), as ``[membership]`` is for Config.

Each field is set, highest first, by the variable ``DYNAGO_KV_<FIELD>``, by ``[kv]
<field>`` in the config file, or left at KvConfig's default. The fields that are node
settings of their own (``data_dir``, ``storage_engine``, ``max_key_bytes``,
``max_value_bytes``, ``kv_request_timeout_s``: flags too) are not in the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from dynago.config import ConfigError
from dynago.kv.config import KvConfig
from dynago.ops import config_values as values

KV_TABLE = "kv"
KV_ENV_PREFIX = "DYNAGO_KV_"

_TOP_LEVEL = frozenset({"data_dir", "engine", "request_timeout_s", "max_key_bytes",
                        "max_value_bytes"})
_CONVERTERS: dict[str, Callable[[object], Any]] = {
    "int": values.as_int, "float": values.as_float, "bool": values.as_bool,
    "str": values.as_text}

KV_FIELDS: dict[str, Callable[[object], Any]] = {
    f.name: _CONVERTERS[str(f.type)] for f in dataclasses.fields(KvConfig)
    if f.name not in _TOP_LEVEL}
"""KvConfig fields settable in ``[kv]`` (and as ``DYNAGO_KV_<FIELD>``)."""

KV_ENV = frozenset(KV_ENV_PREFIX + name.upper() for name in KV_FIELDS)
"""Every variable this module reads."""


def unknown_keys(table: object, file_label: str) -> str | None:
    """Why the file's ``[kv]`` ``table`` is unusable, or None if it is fine."""
    if not isinstance(table, dict):
        return f"{file_label}: {KV_TABLE} must be a table ([{KV_TABLE}])"
    for key in table:
        if key not in KV_FIELDS:
            return f"{file_label}: unknown key {key!r} in [{KV_TABLE}]"
    return None


def resolve_kv(table: Mapping[str, Any], environ: Mapping[str, str], file_label: str,
               convert: Callable[[str, Callable[[object], Any], object, str], Any],
               sources: dict[str, str]) -> dict[str, Any]:
    """The KvConfig fields set by the environment or, below it, the file's ``[kv]``
    ``table``; records each field's source in ``sources`` as ``kv.FIELD``. ``convert`` is
    the caller's converter (it raises the caller's error naming the source)."""
    chosen: dict[str, Any] = {}
    for name, converter in KV_FIELDS.items():
        key, variable = f"{KV_TABLE}.{name}", KV_ENV_PREFIX + name.upper()
        if variable in environ:
            source = f"environment {variable}"
            chosen[name] = convert(key, converter, environ[variable], source)
        elif name in table:
            source = file_label
            chosen[name] = convert(key, converter, table[name], source)
        else:
            source = "default"
        sources[key] = source
    return chosen


def check(kv: Mapping[str, Any], max_message_bytes: int) -> str | None:
    """What is wrong with these ``[kv]`` values (KvConfig.validate's sentence), or None."""
    try:
        KvConfig(**kv).validate(max_message_bytes)
    except ConfigError as error:
        return str(error)
    return None


def render_kv(kv: Mapping[str, Any], sources: Mapping[str, str],
              toml_value: Callable[[Any], str]) -> list[str]:
    """The ``[kv]`` table's lines for ``--print-config``: every field, with its source."""
    defaults = KvConfig()
    lines = ["", f"[{KV_TABLE}]"]
    for name in KV_FIELDS:
        value = kv.get(name, getattr(defaults, name))
        lines.append(f"{name} = {toml_value(value)}  # {sources[f'{KV_TABLE}.{name}']}")
    return lines
