"""The committed generated protobuf code matches what scripts/gen_proto.py makes."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_proto.py"
PROTO_FILES = ["membership.proto", "membership_pb2.py", "membership_pb2.pyi"]

needs_grpc_tools = pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None,
    reason="grpc_tools is not installed (dev extra): cannot regenerate the code to compare",
)


def _check(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_grpc_tools
def test_proto_generated_code_is_current() -> None:
    result = _check(SCRIPT)
    assert result.returncode == 0, (
        "generated protobuf code is stale; run `python scripts/gen_proto.py`\n"
        + result.stdout
        + result.stderr
    )


@needs_grpc_tools
def test_proto_check_reports_stale_file(tmp_path: Path) -> None:
    """--check fails, naming the file, when a committed file differs (on a copy of the tree)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / SCRIPT.name)
    proto_dir = tmp_path / "dynago" / "proto"
    proto_dir.mkdir(parents=True)
    for name in PROTO_FILES:
        shutil.copy(ROOT / "dynago" / "proto" / name, proto_dir / name)
    assert _check(tmp_path / "scripts" / SCRIPT.name).returncode == 0

    with (proto_dir / "membership_pb2.pyi").open("a") as stub:
        stub.write("# edited by hand\n")
    result = _check(tmp_path / "scripts" / SCRIPT.name)

    assert result.returncode == 1
    assert "dynago/proto/membership_pb2.pyi" in result.stderr
    assert "dynago/proto/membership_pb2.py\n" not in result.stderr
