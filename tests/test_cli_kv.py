"""``dynago kv`` (dynago.cli_kv) in-process through ``dynago.cli.main`` against the KV
routes on a real aiohttp server on 127.0.0.1:0 over the FakeFrontend: output and exit
codes."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterator

import pytest
from kv_fake import FakeFrontend, KvServer

from dynago.cli import main
from dynago.kv.model import ObjectKey, Quorum

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def server() -> Iterator[KvServer]:
    started = KvServer(FakeFrontend()).start()
    yield started
    started.stop()


@pytest.fixture
def kv(server: KvServer, capsys: pytest.CaptureFixture[str],
       monkeypatch: pytest.MonkeyPatch) -> Run:
    def run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            code = main(["kv", *argv, "--http", server.address])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_cli_kv_put_get_delete(kv: Run, server: KvServer) -> None:
    assert kv("put", "k", "hello") == (0, "", "")
    assert kv("get", "k") == (0, "hello\n", "")
    assert kv("delete", "k") == (0, "", "")
    code, out, err = kv("get", "k")
    assert (code, out) == (1, "") and err.count("\n") == 1 and "not found" in err
    assert kv("delete", "k")[0] == 1


def test_cli_kv_put_reads_stdin(kv: Run, server: KvServer) -> None:
    assert kv("put", "k", "-", "--bucket", "b", stdin=b"from\nstdin")[0] == 0
    assert server.frontend.live(ObjectKey("b", "k"))[0].content.value == b"from\nstdin"


def test_cli_kv_siblings_one_a_line_with_vtags(kv: Run) -> None:
    kv("put", "k", "one")
    kv("put", "k", "two")
    assert kv("get", "k") == (0, "v1\tone\nv2\ttwo\n", "")


def test_cli_kv_json_and_quorum(kv: Run, server: KvServer) -> None:
    code, out, _ = kv("put", "k", "v", "--w", "all", "--json")
    assert code == 0 and json.loads(out)["context"]
    code, out, _ = kv("get", "k", "--r", "2", "--json")
    assert code == 0 and json.loads(out)["siblings"][0]["value"] == "v"
    assert server.frontend.calls[-1][2] == Quorum(r=2)


def test_cli_kv_ls(kv: Run) -> None:
    for key in ("b", "a"):
        kv("put", key, "v", "--bucket", "x")
    assert kv("ls", "--bucket", "x") == (0, "a\nb\n", "")
    assert json.loads(kv("ls", "--bucket", "x", "--json")[1])["keys"] == ["a", "b"]


@pytest.mark.parametrize("argv", [
    ("get",), ("put", "k"), ("get", "k", "extra"), ("ls", "k"), ("get", "k", "--r", "0"),
    ("get", "k", "--r", "many"), ("put", "k", "v", "--r", "1"), ("delete", "k", "--r", "1"),
    ("frob", "k"),
])
def test_cli_kv_bad_input_exits_2_with_one_line(kv: Run, server: KvServer,
                                                argv: tuple[str, ...]) -> None:
    code, out, err = kv(*argv)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert not [c for c in server.frontend.calls if c[0] == "put"]


def test_cli_kv_node_refusal_exits_1(kv: Run) -> None:
    code, _, err = kv("put", "k", "v", "--w", "5")
    assert code == 1 and "n_val" in err and err.count("\n") == 1


def test_cli_kv_unreachable_node_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["kv", "get", "k", "--http", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dynago: error: cannot reach") and err.count("\n") == 1
