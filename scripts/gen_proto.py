#!/usr/bin/env python3
"""Regenerate the Python code for dynago/proto/membership.proto, or check that it is current.

    python scripts/gen_proto.py          # rewrite dynago/proto/membership_pb2.py and .pyi
    python scripts/gen_proto.py --check  # exit 1, listing stale files, if they differ

Exit codes: 0 done / up to date, 1 stale (``--check``), 2 the generator could not run.

This is the only way the generated files are made; never edit them by hand. It needs the
dev extra (``grpcio-tools`` pinned exactly, ``mypy-protobuf``).

Choices:

* No ``_pb2_grpc.py``: the transport makes raw-bytes generic stream_stream calls so that
  it decodes (and counts malformed bytes) itself, in dynago/transport/codec.py.
* Stubs come from mypy-protobuf (``--mypy_out``), not protoc's own ``--pyi_out``: its
  stubs type ``WhichOneof`` as a Literal of the oneof's field names and enum fields as
  ``MemberStatus.ValueType``, so ``mypy --strict`` checks the codec's dispatch and enum
  mapping instead of seeing plain ``str``/``int``.
* The include path is mapped to the package path (``-Idynago/proto=dynago/proto``), so the
  .proto's name inside protoc is ``dynago/proto/membership.proto``, the output lands at
  ``dynago/proto/membership_pb2.py`` and imports as ``dynago.proto.membership_pb2``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = "dynago/proto"
PROTOS = ["dynago/proto/membership.proto"]
GENERATED = ["dynago/proto/membership_pb2.py", "dynago/proto/membership_pb2.pyi"]


def _fail(reason: str) -> NoReturn:
    """Stop with exit code 2: the generator could not run (1 means "stale")."""
    print(f"gen_proto: {reason}", file=sys.stderr)
    sys.exit(2)


def _mypy_plugin() -> str:
    """Path of protoc-gen-mypy installed beside this interpreter (PATH may lack the venv)."""
    name = "protoc-gen-mypy.exe" if sys.platform == "win32" else "protoc-gen-mypy"
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        _fail(f"{name} not found; install the dev extra: pip install -e '.[dev]'")
    return found


def generate(out_dir: Path) -> None:
    """Run protoc on PROTOS, writing the generated tree under ``out_dir``."""
    if importlib.util.find_spec("grpc_tools") is None:
        _fail("grpc_tools is not installed; install the dev extra: pip install -e '.[dev]'")
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}={PROTO_DIR}",
        f"--plugin=protoc-gen-mypy={_mypy_plugin()}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        *PROTOS,
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        _fail(f"protoc failed ({result.returncode}):\n{result.stderr}")


def stale_files() -> list[str]:
    """Generated files whose committed content differs from a fresh generation."""
    with tempfile.TemporaryDirectory(prefix="gen_proto_") as tmp:
        generate(Path(tmp))
        stale = []
        for rel in GENERATED:
            fresh = Path(tmp) / rel
            committed = ROOT / rel
            if not committed.is_file() or committed.read_bytes() != fresh.read_bytes():
                stale.append(rel)
        return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary directory and exit 1 if the committed files differ",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("gen_proto: generated code is stale or missing:", file=sys.stderr)
            for rel in stale:
                print(f"  {rel}", file=sys.stderr)
            print("run: python scripts/gen_proto.py", file=sys.stderr)
            return 1
        print("gen_proto: generated code is up to date")
        return 0
    generate(ROOT)
    for rel in GENERATED:
        print(f"gen_proto: wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
