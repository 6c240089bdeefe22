"""Settings of ``dynago node`` from four sources, in this order of precedence:

1. command-line flags (``--bind ...``),
2. environment variables ``DYNAGO_<KEY>`` (``DYNAGO_BIND``, ``DYNAGO_PROBE_INTERVAL_S``),
3. the TOML file given by ``--config PATH`` (or ``DYNAGO_CONFIG``),
4. the defaults of the preset (``lan``, ``local`` or ``wan``; the preset itself is chosen
   by the same three sources, default ``lan``).

A higher source replaces a value as a whole: ``--seed`` given twice replaces the file's
``seeds`` list, it does not add to it. The file holds the node's settings as top-level
keys (the flags' names with ``_`` for ``-``, ``seeds`` for ``--seed``) and every timing
and size field of ``dynago.config.Config`` in a ``[membership]`` table; the same keys
upper-cased are the environment variables (``DYNAGO_SEEDS`` is comma-separated).
``dynago node --print-config`` prints the effective settings in this format, each with
the source it came from; that output is itself a valid config file.

Anything unusable — a file that cannot be read or is not TOML, an unknown key, a value
of the wrong type or out of range, a combination ``Config.validate`` refuses — raises
``SettingsError`` with one plain sentence naming the source and the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dynago.config import DEFAULT_CLUSTER, Config, ConfigError
from dynago.core.address import AddressError
from dynago.ops import config_kv
from dynago.ops import config_values as values
from dynago.storage.engine import DEFAULT_ENGINE, ENGINES

ENV_PREFIX = "DYNAGO_"
PRESETS: dict[str, Callable[..., Config]] = {
    "lan": Config.lan, "local": Config.local, "wan": Config.wan}
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
OTHER_ENV = frozenset({"DYNAGO_CONFIG", "DYNAGO_ADMIN_TOKEN"})
"""DYNAGO_* variables that are not node settings but are known (no warning)."""


class SettingsError(ValueError):
    """A setting from a flag, the environment or the config file is unusable."""


# ---------------------------------------------------------------- value kinds


# ---------------------------------------------------------------- the settings


@dataclass(frozen=True)
class Setting:
    """One node setting: TOML key ``key``, variable ``DYNAGO_<KEY>``, flag dest ``dest``."""

    key: str
    dest: str
    convert: Callable[[object], Any]
    default: Any
    flag: str
    from_env: Callable[[str], object]
    """Turns the variable's text into what ``convert`` takes (lists: split it)."""

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()


def _s(key: str, convert: Callable[[object], Any], default: Any = None, *,
       dest: str | None = None, flag: str | None = None,
       from_env: Callable[[str], object] = str) -> Setting:
    return Setting(key, dest or key, convert, default,
                   flag or "--" + key.replace("_", "-"), from_env)


NODE_SETTINGS: tuple[Setting, ...] = (
    _s("preset", values.choice(*PRESETS), "lan"),
    _s("bind", values.address_of(True)),
    _s("advertise", values.address_of(False)),
    _s("name", values.as_text),
    _s("seeds", values.seed_list, [], dest="seed", flag="--seed", from_env=values.comma_list),
    _s("tags", values.tag_list, [], dest="tag", flag="--tag", from_env=values.comma_list),
    _s("http", values.http_address),
    _s("cluster", values.as_text, DEFAULT_CLUSTER),
    _s("admin_token_file", values.as_text),
    _s("cluster_key_file", values.as_text),
    _s("tls_cert", values.as_text),
    _s("tls_key", values.as_text),
    _s("tls_ca", values.as_text),
    _s("tls_server_name", values.as_text, "dynago"),
    _s("enable_fault_injection", values.as_bool, False),
    _s("log_level", values.choice(*LOG_LEVELS), "info"),
    _s("log_format", values.choice(*LOG_FORMATS), "text"),
    _s("on_event", values.command_list, [], from_env=values.one_item),
    _s("on_event_concurrency", values.in_range(values.as_int, 1, 64), 4),
    _s("on_event_timeout_s", values.in_range(values.as_float, 0.001, 86400.0), 10.0,
       flag="--on-event-timeout"),
    _s("data_dir", values.as_text),
    _s("storage_engine", values.choice(*ENGINES), DEFAULT_ENGINE),
    _s("max_key_bytes", values.in_range(values.as_int, 1, 65_535), 1024),
    _s("max_value_bytes", values.in_range(values.as_int, 1, 1 << 30), 1 << 20),
    _s("kv_request_timeout_s", values.in_range(values.as_float, 0.001, 3600.0), 5.0,
       flag="--kv-request-timeout"),
)
"""Every node setting, in the order ``--print-config`` prints them."""

MEMBERSHIP_TABLE = "membership"
_CONVERTERS: dict[str, Callable[[object], Any]] = {
    "int": values.as_int, "float": values.as_float, "str": values.as_text}
MEMBERSHIP_FIELDS: dict[str, Callable[[object], Any]] = {
    f.name: _CONVERTERS[str(f.type)] for f in dataclasses.fields(Config) if f.name != "cluster"}
"""Config fields settable in ``[membership]`` (``cluster`` is a top-level node setting)."""


@dataclass
class Resolved:
    """The effective settings of a node."""

    args: argparse.Namespace
    """A copy of the parsed flags with every node setting filled in (flag dests)."""
    config: Config
    sources: dict[str, str]
    """Where each value came from: ``flag --x``, ``environment DYNAGO_X``,
    ``file PATH``, ``preset NAME`` or ``default``; keyed by TOML key (membership fields
    as ``membership.FIELD``)."""
    warnings: list[str]
    """Things worth a log line once logging is set up (unknown DYNAGO_* variables)."""
    kv: dict[str, Any] = dataclasses.field(default_factory=dict)
    """KvConfig fields set in ``[kv]`` or ``DYNAGO_KV_*`` (ops.config_kv)."""


def _convert(setting_key: str, convert: Callable[[object], Any], value: object,
             source: str) -> Any:
    try:
        return convert(value)
    except (ValueError, AddressError) as error:
        raise SettingsError(f"{source}: {setting_key}: {error}") from None


def load_file(path: str) -> dict[str, Any]:
    """The TOML document at ``path``; SettingsError if unreadable or not TOML."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path} is not UTF-8 text") from None


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> Resolved:
    """Merge flags (``args``), ``environ`` and the config file over the preset defaults.

    Raises SettingsError with one plain sentence when anything is unusable.
    """
    path = getattr(args, "config", None) or environ.get("DYNAGO_CONFIG") or None
    document = load_file(path) if path else {}
    file_label = f"config file {path}"
    known = {s.key for s in NODE_SETTINGS} | {MEMBERSHIP_TABLE, config_kv.KV_TABLE}
    for key in document:
        if key not in known:
            raise SettingsError(f"{file_label}: unknown key {key!r}")
    table = document.get(MEMBERSHIP_TABLE, {})
    if not isinstance(table, dict):
        raise SettingsError(f"{file_label}: {MEMBERSHIP_TABLE} must be a table "
                            f"([{MEMBERSHIP_TABLE}])")
    for key in table:
        if key not in MEMBERSHIP_FIELDS:
            raise SettingsError(f"{file_label}: unknown key {key!r} in [{MEMBERSHIP_TABLE}]")
    kv_table = document.get(config_kv.KV_TABLE, {})
    problem = config_kv.unknown_keys(kv_table, file_label)
    if problem is not None:
        raise SettingsError(problem)

    warnings = []
    membership_env = {ENV_PREFIX + name.upper(): name for name in MEMBERSHIP_FIELDS}
    node_env = {s.env for s in NODE_SETTINGS}
    for variable in sorted(environ):
        if (variable.startswith(ENV_PREFIX) and variable not in node_env
                and variable not in membership_env and variable not in OTHER_ENV
                and variable not in config_kv.KV_ENV):
            warnings.append(f"environment variable {variable} is not a dynago setting; "
                            "ignored")

    values = argparse.Namespace(**vars(args))
    sources: dict[str, str] = {}
    for setting in NODE_SETTINGS:
        flag_value = getattr(args, setting.dest, None)
        if flag_value is not None:
            source = f"flag {setting.flag}"
            value = _convert(setting.key, setting.convert, flag_value, source)
        elif setting.env in environ:
            source = f"environment {setting.env}"
            value = _convert(setting.key, setting.convert,
                             setting.from_env(environ[setting.env]), source)
        elif setting.key in document:
            value = _convert(setting.key, setting.convert, document[setting.key], file_label)
            source = file_label
        else:
            value, source = setting.default, "default"
        setattr(values, setting.dest, value)
        sources[setting.key] = source

    preset_name = values.preset
    base = PRESETS[preset_name](cluster=values.cluster)
    overrides: dict[str, Any] = {}
    for name, convert in MEMBERSHIP_FIELDS.items():
        key = f"{MEMBERSHIP_TABLE}.{name}"
        variable = ENV_PREFIX + name.upper()
        if variable in environ:
            source = f"environment {variable}"
            overrides[name] = _convert(key, convert, environ[variable], source)
        elif name in table:
            overrides[name] = _convert(key, convert, table[name], file_label)
            source = file_label
        else:
            source = f"preset {preset_name}"
        sources[key] = source
    try:
        config = dataclasses.replace(base, **overrides).validate()
    except ConfigError as error:
        raise SettingsError(f"configuration: {error}") from None
    kv = config_kv.resolve_kv(kv_table, environ, file_label, _convert, sources)
    problem = config_kv.check(kv, config.max_message_bytes)
    if problem is not None:
        raise SettingsError(f"configuration: {problem}")
    if values.bind is None:
        raise SettingsError("no address to bind: give --bind HOST:PORT, set DYNAGO_BIND, "
                            "or put bind = \"HOST:PORT\" in the config file")
    return Resolved(values, config, sources, warnings, kv)


# ---------------------------------------------------------------- --print-config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def render(resolved: Resolved) -> str:
    """The effective settings as a TOML config file, each value with its source."""
    lines = [
        "# dynago node: effective configuration",
        "# precedence: flags > DYNAGO_* environment > config file > preset defaults",
        "",
    ]
    for setting in NODE_SETTINGS:
        value = getattr(resolved.args, setting.dest)
        source = resolved.sources[setting.key]
        if value is None:
            lines.append(f"# {setting.key} is not set")
        else:
            lines.append(f"{setting.key} = {_toml_value(value)}  # {source}")
    lines += ["", f"[{MEMBERSHIP_TABLE}]"]
    for name in MEMBERSHIP_FIELDS:
        value = getattr(resolved.config, name)
        source = resolved.sources[f"{MEMBERSHIP_TABLE}.{name}"]
        lines.append(f"{name} = {_toml_value(value)}  # {source}")
    lines += config_kv.render_kv(resolved.kv, resolved.sources, _toml_value)
    return "\n".join(lines) + "\n"


def add_arguments(node: argparse.ArgumentParser) -> None:
    """The flags of ``dynago node`` that this module and the ops modules add."""
    node.add_argument("--config", metavar="PATH",
                      help="TOML config file (or DYNAGO_CONFIG); flags and DYNAGO_* "
                           "variables override it")
    node.add_argument("--print-config", action="store_true",
                      help="print the effective configuration as TOML and exit")
    node.add_argument("--advertise", metavar="HOST:PORT",
                      help="address other nodes are told to reach this node at, when the "
                           "bound address is not reachable (containers, NAT)")
    node.add_argument("--log-format", choices=LOG_FORMATS,
                      help="text (default, for people) or json (one object per line)")
    node.add_argument("--data-dir", metavar="PATH",
                      help="directory of the key-value store's data (default: kept in "
                           "memory only, lost when the node stops)")
    node.add_argument("--storage-engine", choices=ENGINES,
                      help="storage engine under --data-dir (default sqlite)")
    node.add_argument("--max-key-bytes", type=int, metavar="N",
                      help="longest key the store takes (default 1024)")
    node.add_argument("--max-value-bytes", type=int, metavar="N",
                      help="largest value the store takes (default 1 MiB; below the "
                           "message cap less 64 KiB)")
    node.add_argument("--kv-request-timeout", type=float, metavar="SECONDS",
                      dest="kv_request_timeout_s",
                      help="how long a request waits for its R or W replicas (default 5)")
    node.add_argument("--on-event", action="append", metavar="CMD",
                      help="run CMD (a shell command) for every membership event, the event "
                           "in DYNAGO_* environment variables and as JSON on stdin "
                           "(repeatable)")
    node.add_argument("--on-event-concurrency", type=int, metavar="N",
                      help="most event handlers running at once (default 4)")
    node.add_argument("--on-event-timeout", type=float, metavar="SECONDS",
                      dest="on_event_timeout_s",
                      help="a handler still running after this is killed (default 10)")
