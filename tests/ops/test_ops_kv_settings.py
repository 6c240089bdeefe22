"""The key-value store's node settings: flags, the config file and DYNAGO_* variables,
and a refusal in plain words when they do not fit."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from cluster_support import run_dynago  # tests/ is on sys.path under pytest

from dynago.cli import build_parser
from dynago.cli_node import kv_service
from dynago.kv.config import KvConfig
from dynago.ops import config_file


def test_kv_settings_print_with_their_sources(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('storage_engine = "lmdb"\n[membership]\nn_val = 2\n')
    done = run_dynago(["node", "--bind", "127.0.0.1:0", "--config", str(config),
                       "--data-dir", str(tmp_path / "d"), "--print-config"],
                      env={"DYNAGO_MAX_VALUE_BYTES": "4096"})
    assert done.returncode == 0, done.stderr
    lines = {line.split(" = ")[0]: line for line in done.stdout.splitlines() if " = " in line}
    assert "flag --data-dir" in lines["data_dir"]
    assert lines["storage_engine"].startswith('storage_engine = "lmdb"')
    assert "environment DYNAGO_MAX_VALUE_BYTES" in lines["max_value_bytes"]
    assert lines["n_val"].startswith("n_val = 2")


def test_kv_settings_that_do_not_fit_stop_the_node_with_one_line(tmp_path: Path) -> None:
    for args, words in (
        (["--max-value-bytes", str(64 << 20)], "max_value_bytes must be 1 to"),
        (["--storage-engine", "rocks"], "invalid choice"),
    ):
        done = run_dynago(["node", "--bind", "127.0.0.1:0", *args], timeout_s=20)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert words in done.stderr


def test_kv_data_dir_in_use_by_another_engine_is_refused(tmp_path: Path) -> None:
    """A data dir written by SQLite is not opened as LMDB: one line, exit 2."""
    from dynago.storage import open_engine

    data = tmp_path / "d"
    open_engine("sqlite", str(data)).close()
    done = run_dynago(["node", "--bind", "127.0.0.1:0", "--data-dir", str(data),
                       "--storage-engine", "lmdb"], timeout_s=20)
    assert done.returncode == 2, done.stderr
    assert "sqlite" in done.stderr.lower() and len(done.stderr.strip().splitlines()) == 1


def _resolve(tmp_path: Path, toml: str, environ: dict[str, str]) -> config_file.Resolved:
    path = tmp_path / "node.toml"
    path.write_text(toml)
    args = build_parser().parse_args(["node", "--bind", "127.0.0.1:0", "--config", str(path)])
    return config_file.resolve(args, environ)


def test_kv_table_sets_the_repair_knobs_env_over_file(tmp_path: Path) -> None:
    resolved = _resolve(tmp_path, "[kv]\naae_enabled = false\nhint_handoff_per_s = 20\n"
                        "handoff_leave_timeout_s = 5\n",
                        {"DYNAGO_KV_HINT_HANDOFF_PER_S": "50", "DYNAGO_KV_RING_GRACE_S": "60"})
    assert resolved.warnings == []  # DYNAGO_KV_* are settings, not unknown variables
    assert resolved.sources["kv.hint_handoff_per_s"] == "environment DYNAGO_KV_HINT_HANDOFF_PER_S"
    assert resolved.sources["kv.aae_max_keys_per_s"] == "default"
    service = kv_service(resolved.args, resolved.config, resolved.kv)
    assert service.kv_config.aae_enabled is False
    assert service.kv_config.hint_handoff_per_s == 50.0
    assert service.kv_config.handoff_leave_timeout_s == 5.0
    assert service.kv_config.ring_grace_s == 60.0
    assert service.kv_config.aae_max_keys_per_s == KvConfig().aae_max_keys_per_s
    # --print-config shows the table with its sources, and reads back the same.
    document = tomllib.loads(config_file.render(resolved))
    assert document["kv"]["aae_enabled"] is False and document["kv"]["hint_handoff_per_s"] == 50
    assert "data_dir" not in document["kv"]  # a node setting of its own, not in [kv]


@pytest.mark.parametrize(("toml", "environ", "needle"), [
    ("[kv]\naae_interval = 3\n", {}, "unknown key 'aae_interval' in [kv]"),
    ("[kv]\ndata_dir = \"/x\"\n", {}, "unknown key 'data_dir' in [kv]"),
    ("kv = 3\n", {}, "kv must be a table"),
    ("", {"DYNAGO_KV_HANDOFF_IN_FLIGHT": "many"}, "DYNAGO_KV_HANDOFF_IN_FLIGHT: kv.handoff"),
    ("[kv]\nhint_handoff_per_s = 0\n", {}, "hint_handoff_per_s must be greater than 0"),
])
def test_kv_table_bad_values_are_refused_in_one_sentence(
        tmp_path: Path, toml: str, environ: dict[str, str], needle: str) -> None:
    with pytest.raises(config_file.SettingsError) as error:
        _resolve(tmp_path, toml, environ)
    assert needle in str(error.value)
