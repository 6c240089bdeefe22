"""bench.profile_summary: a py-spy collapsed-stack profile is split into waiting samples
and busy ones, by the category of the deepest matching frame and by thread."""

from __future__ import annotations

from bench.profile_summary import parse, render, summarise

ROOT = "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982)"
HTTP = f"{ROOT};HttpServer._run (dynago/http/server.py:152)"
GRPC = f"{ROOT};GrpcTransport._run_loop (dynago/transport/grpc_transport.py:88)"
ACTOR = f"{ROOT};Actor._actor_loop (pykka/_actor.py:244)"
PROFILE = [
    f"{HTTP};handler (dynago/http/kv_riak.py:280) 30\n",
    f"{GRPC};GrpcStream._write_loop (dynago/transport/grpc_stream.py:321) 20\n",
    # A decode called from the stream counts as decoding, the deepest match.
    f"{GRPC};GrpcStream._read_loop (dynago/transport/grpc_stream.py:280);"
    "decode (dynago/transport/codec.py:223) 10\n",
    f"{ACTOR};StorageActor._commit_batch (dynago/actors/storage.py:229);"
    "SqliteEngine.commit (dynago/storage/sqlite_engine.py:83) 40\n",
    f"{ACTOR};Condition.wait (threading.py:327) 100\n",
    f"{HTTP};EpollSelector.select (selectors.py:468) 50\n",
    "not a profile line\n",
]


def test_profile_summary_sets_waits_apart_and_attributes_the_deepest_frame() -> None:
    summary = summarise(parse(PROFILE))
    assert (summary["samples"], summary["waiting"], summary["busy"]) == (250, 150, 100)
    categories = {row["name"]: row["percent_of_busy"] for row in summary["categories"]}
    assert categories == {"storage commit (SQLite, fsync)": 40.0,
                          "HTTP (aiohttp, dynago.http)": 30.0,
                          "gRPC stream (dynago.transport, grpc)": 20.0,
                          "encode/decode (codec, protobuf, json, base64)": 10.0}
    threads = {row["name"]: row["samples"] for row in summary["threads"]}
    assert threads == {"pykka actors": 40, "HTTP server loop": 30, "gRPC loop": 30}
    assert summary["top_leaves"][0]["name"].startswith("SqliteEngine.commit")
    text = render(summary)
    assert "250 samples: 100 busy, 150 waiting" in text
    assert " 40.0  storage commit (SQLite, fsync)" in text
