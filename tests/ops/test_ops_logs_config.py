"""The JSON log formatter, and settings resolution (dynago.ops.config_file) called
directly: precedence per key, list values, environment parsing, the wan preset."""

from __future__ import annotations

import argparse
import io
import json
import logging
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynago.cli import build_parser
from dynago.config import Config
from dynago.ops import config_file, logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """logs.configure replaces the root logger's handlers: put pytest's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_formatter_writes_fields_extra_and_exception(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("debug", "json", stream)
    try:
        log = logging.getLogger("dynago.test")
        log.info("member %s is now %s", "b", "alive",
                 extra={"member": "b", "status": "alive", "incarnation": 2})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("it broke")
    finally:
        logging.getLogger().handlers.clear()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "member b is now alive"
    assert (first["level"], first["logger"]) == ("INFO", "dynago.test")
    assert (first["member"], first["status"], first["incarnation"]) == ("b", "alive", 2)
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exception"]


def test_text_format_is_the_readable_default(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "text", stream)
    logging.getLogger("dynago.test").info("hello %s", "there")
    line = stream.getvalue().strip()
    assert line.endswith(" INFO dynago.test: hello there")


def _args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["node", *flags])


def test_resolve_precedence_per_key(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('bind = "127.0.0.1:1"\nhttp = "8001"\nseeds = ["127.0.0.1:7001"]\n'
                    'on_event = ["a.sh", "b.sh"]\n[membership]\ngossip_fanout = 5\n')
    resolved = config_file.resolve(
        _args("--config", str(path), "--bind", "127.0.0.1:2"),
        {"DYNAGO_BIND": "127.0.0.1:3", "DYNAGO_SEEDS": "127.0.0.1:8001, dns:svc:8002",
         "DYNAGO_GOSSIP_FANOUT": "6", "DYNAGO_ENABLE_FAULT_INJECTION": "yes",
         "DYNAGO_ON_EVENT": "notify.sh --a,b"})
    args = resolved.args
    assert args.bind == "127.0.0.1:2"                      # flag over env and file
    assert args.seed == ["127.0.0.1:8001", "dns:svc:8002"]  # env over file, split
    assert args.http == "127.0.0.1:8001"                    # file; a bare port is loopback
    assert args.on_event == ["notify.sh --a,b"]             # one command from the env
    assert args.enable_fault_injection is True
    assert resolved.config.gossip_fanout == 6
    assert resolved.config == Config.lan(gossip_fanout=6)
    assert resolved.sources["membership.gossip_fanout"] == "environment DYNAGO_GOSSIP_FANOUT"
    assert resolved.warnings == []


def test_unknown_dynago_variables_are_warned_about_not_fatal() -> None:
    resolved = config_file.resolve(_args("--bind", "127.0.0.1:0"),
                                   {"DYNAGO_PROBE_INTERVAL": "1", "DYNAGO_ADMIN_TOKEN": "x"})
    assert len(resolved.warnings) == 1 and "DYNAGO_PROBE_INTERVAL" in resolved.warnings[0]


def test_wan_preset_is_valid_and_more_patient_than_lan() -> None:
    wan, lan = Config.wan().validate(), Config.lan()
    assert wan.probe_interval_s > lan.probe_interval_s
    assert wan.probe_timeout_s > lan.probe_timeout_s
    assert wan.suspicion_mult > lan.suspicion_mult
    resolved = config_file.resolve(_args("--bind", "127.0.0.1:0", "--preset", "wan"), {})
    assert resolved.config == wan


def test_render_reads_back_as_the_same_settings() -> None:
    resolved = config_file.resolve(
        _args("--bind", "[::1]:0", "--seed", "dns:svc:1", "--on-event", 'echo "x"'),
        {"DYNAGO_PROBE_TIMEOUT_S": "0.1"})
    document = tomllib.loads(config_file.render(resolved))
    assert document["bind"] == "[::1]:0" and document["seeds"] == ["dns:svc:1"]
    assert document["on_event"] == ['echo "x"']
    assert document["membership"]["probe_timeout_s"] == 0.1
    assert "advertise" not in document


@pytest.mark.parametrize(("environ", "needle"), [
    ({"DYNAGO_ON_EVENT_CONCURRENCY": "0"}, "on_event_concurrency: 0 is outside 1..64"),
    ({"DYNAGO_ADVERTISE": "127.0.0.1:0"}, "advertise: '127.0.0.1:0': port 0 is outside"),
    ({"DYNAGO_SEEDS": "dns:svc"}, "seeds: DNS seed 'dns:svc'"),
    ({"DYNAGO_LOG_FORMAT": "xml"}, "log_format: 'xml' is not one of text, json"),
])
def test_bad_environment_values_name_the_variable(environ: dict[str, str],
                                                  needle: str) -> None:
    with pytest.raises(config_file.SettingsError) as error:
        config_file.resolve(_args("--bind", "127.0.0.1:0"), environ)
    assert needle in str(error.value)
    assert str(error.value).startswith(f"environment {next(iter(environ))}:")
