"""``dynago node`` settings from a TOML file, DYNAGO_* variables and flags: precedence
(flags > environment > file > preset) seen through ``--print-config``, its output read
back as a config file, one clear error line for anything unusable, and a node that
takes its settings from a file and the environment."""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dynago.launch import NodeProcess, http_json, wait_until

pytestmark = pytest.mark.process

Cli = Callable[..., subprocess.CompletedProcess[str]]

FILE = """
preset = "wan"
bind = "127.0.0.1:0"
name = "file-name"
cluster = "file-cluster"
seeds = ["127.0.0.1:7001", "dns:localhost:7002"]
log_format = "json"

[membership]
probe_interval_s = 6.0
suspicion_mult = 7
"""


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    return (f"exit {result.returncode}\n--- stdout ---\n{result.stdout}"
            f"--- stderr ---\n{result.stderr}")


def _print_config(dynago_cli: Cli, args: list[str], env: dict[str, str] | None = None
                  ) -> tuple[dict[str, Any], str]:
    result = dynago_cli(["node", *args, "--print-config"], timeout_s=20, env=env)
    assert result.returncode == 0, _describe(result)
    assert result.stderr == "", _describe(result)
    return tomllib.loads(result.stdout), result.stdout


def test_config_precedence_flag_over_env_over_file_over_preset(
    dynago_cli: Cli, tmp_path: Path
) -> None:
    """Each setting comes from the highest source that sets it, and --print-config says
    which: name from the flag (file and env set it too), cluster and suspicion_mult from
    the environment (the file sets them too), probe_interval_s and the wan preset from the
    file, probe_timeout_s and gossip_fanout from the wan preset."""
    path = tmp_path / "node.toml"
    path.write_text(FILE)
    env = {"DYNAGO_NAME": "env-name", "DYNAGO_CLUSTER": "env-cluster",
           "DYNAGO_SUSPICION_MULT": "8"}

    config, text = _print_config(
        dynago_cli, ["--config", str(path), "--name", "flag-name"], env)

    assert config["name"] == "flag-name"
    assert config["cluster"] == "env-cluster"
    assert config["preset"] == "wan"
    assert config["seeds"] == ["127.0.0.1:7001", "dns:localhost:7002"]
    assert config["log_format"] == "json"
    membership = config["membership"]
    assert membership["suspicion_mult"] == 8
    assert membership["probe_interval_s"] == 6.0
    assert membership["probe_timeout_s"] == 2.0  # the wan preset's
    assert membership["gossip_fanout"] == 4  # the wan preset's
    lines = text.splitlines()
    assert 'name = "flag-name"  # flag --name' in lines
    assert 'cluster = "env-cluster"  # environment DYNAGO_CLUSTER' in lines
    assert f"probe_interval_s = 6.0  # config file {path}" in lines
    assert "probe_timeout_s = 2.0  # preset wan" in lines

    # Without the flag the environment wins; without both, the file.
    assert _print_config(dynago_cli, ["--config", str(path)], env)[0]["name"] == "env-name"
    assert _print_config(dynago_cli, ["--config", str(path)])[0]["name"] == "file-name"
    # A flag list replaces the file's list; DYNAGO_CONFIG names the file.
    replaced, _ = _print_config(dynago_cli, ["--seed", "127.0.0.1:9"],
                                {"DYNAGO_CONFIG": str(path)})
    assert replaced["seeds"] == ["127.0.0.1:9"]


def test_print_config_output_is_a_config_file_that_means_the_same(
    dynago_cli: Cli, tmp_path: Path
) -> None:
    """What --print-config prints, fed back with --config and nothing else, gives the
    same effective configuration."""
    source = tmp_path / "node.toml"
    source.write_text(FILE)
    first, text = _print_config(dynago_cli, ["--config", str(source), "--preset", "local",
                                             "--advertise", "[::1]:7009"],
                                {"DYNAGO_GOSSIP_FANOUT": "5"})
    printed = tmp_path / "printed.toml"
    printed.write_text(text)

    second, _ = _print_config(dynago_cli, ["--config", str(printed)])

    assert second == first
    assert first["advertise"] == "[::1]:7009" and first["membership"]["gossip_fanout"] == 5


@pytest.mark.parametrize(
    ("content", "env", "needle"),
    [
        (None, {}, "cannot read config file"),
        ("bind = ", {}, "is not valid TOML"),
        ('bind = "127.0.0.1:0"\nbindd = "x"\n', {}, "unknown key 'bindd'"),
        ('bind = "127.0.0.1:0"\n[membership]\nprobe_intervall_s = 1.0\n', {},
         "unknown key 'probe_intervall_s' in [membership]"),
        ('bind = "127.0.0.1:0"\n[membership]\nsuspicion_mult = "many"\n', {},
         "membership.suspicion_mult: 'many' is not a whole number"),
        ('bind = "nonsense"\n', {}, "bind: 'nonsense' has no port"),
        ('bind = "127.0.0.1:0"\nseeds = "127.0.0.1:7001"\n', {},
         "seeds: expected a list of strings"),
        ('bind = "127.0.0.1:0"\npreset = "moon"\n', {}, "preset: 'moon' is not one of"),
        ('bind = "127.0.0.1:0"\n[membership]\nprobe_timeout_s = 1.0\n', {},
         "configuration: probe_interval_s must be at least"),
        ('bind = "127.0.0.1:0"\n', {"DYNAGO_PROBE_INTERVAL_S": "fast"},
         "environment DYNAGO_PROBE_INTERVAL_S: membership.probe_interval_s: 'fast' is not"),
        ('bind = "127.0.0.1:0"\n', {"DYNAGO_ENABLE_FAULT_INJECTION": "maybe"},
         "enable_fault_injection: expected true or false"),
        ("", {}, "no address to bind"),
    ],
    ids=["missing-file", "not-toml", "unknown-key", "unknown-membership-key", "bad-int",
         "bad-address", "seeds-not-a-list", "bad-preset", "bad-combination", "bad-env-float",
         "bad-env-bool", "no-bind"],
)
def test_config_bad_input_exits_2_with_one_line(
    dynago_cli: Cli, tmp_path: Path, content: str | None, env: dict[str, str], needle: str
) -> None:
    """An unreadable file, invalid TOML, an unknown key, a value of the wrong type or
    out of range, or a combination Config refuses: exit 2, one line on stderr naming the
    source and the key, nothing on stdout, no node started."""
    path = tmp_path / "node.toml"
    if content is not None:
        path.write_text(content)

    result = dynago_cli(["node", "--config", str(path)], timeout_s=20, env=env)

    assert result.returncode == 2, _describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynago: error:"), _describe(result)
    assert needle in lines[0], _describe(result)
    assert result.stdout == "", _describe(result)


def test_node_runs_with_settings_from_file_and_environment(tmp_path: Path) -> None:
    """A node given only --config (bind, admin API, preset) and DYNAGO_NAME starts with
    those settings: its ready line and admin API show the name from the environment and
    the cluster from the file."""
    path = tmp_path / "node.toml"
    path.write_text('bind = "127.0.0.1:0"\nhttp = "127.0.0.1:0"\npreset = "local"\n'
                    'cluster = "from-file"\nname = "file-name"\n')
    node = NodeProcess(["--config", str(path)], env={"DYNAGO_NAME": "env-name"},
                       stderr_path=str(tmp_path / "node.stderr.log"))
    try:
        node.wait_ready()
        assert node.name == "env-name"
        members = wait_until(lambda: http_json(node.http, "/v1/members"), timeout_s=10,
                             what="the node's /v1/members")
        assert [m["name"] for m in members] == ["env-name"]
        node.terminate()
        log = (tmp_path / "node.stderr.log").read_text()
        assert "cluster 'from-file'" in log, log
    finally:
        node.close()
