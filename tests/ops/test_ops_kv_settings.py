"""The key-value store's node settings: flags, the config file and DYNAGO_* variables,
and a refusal in plain words when they do not fit."""

from __future__ import annotations

from pathlib import Path

from cluster_support import run_dynago  # tests/ is on sys.path under pytest


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
