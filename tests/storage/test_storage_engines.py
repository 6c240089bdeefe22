"""The Engine contract, for every engine alike: get / commit / delete, ordered key
listing by prefix with ``after`` and ``limit`` paging, malformed writes refused whole,
and for the durable engines: data kept across close and reopen, and data dirs that
cannot be used (unwritable, in use, another engine's, not dynago's) refused with a
StorageError that says why."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynago.storage import (
    Engine,
    LmdbEngine,
    MemoryEngine,
    SqliteEngine,
    StorageError,
    open_engine,
)
from dynago.storage.datadir import MARKER
from dynago.storage.engine import prefix_end

DURABLE: dict[str, Callable[[Path], Engine]] = {"lmdb": LmdbEngine, "sqlite": SqliteEngine}


@pytest.fixture(params=["lmdb", "sqlite", "memory"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    kind = request.param
    made: Engine = MemoryEngine() if kind == "memory" else DURABLE[kind](tmp_path / "data")
    yield made
    made.close()


@pytest.fixture(params=sorted(DURABLE))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --------------------------------------------------------------------------- the contract


def test_engine_get_of_missing_key_is_none(engine: Engine) -> None:
    assert engine.get(b"nothing") is None
    assert engine.count() == 0


def test_engine_commit_stores_and_later_write_of_a_key_wins(engine: Engine) -> None:
    engine.commit([(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    assert engine.get(b"a") == b"3"
    assert engine.get(b"b") == b"2"
    assert engine.count() == 2


def test_engine_count_from_a_key_skips_the_node_local_ones(engine: Engine) -> None:
    engine.commit([(b"\x00h\x00hint", b"1"), (b"\x00a\x00i" + bytes(20), b"2"),
                   (b"\x01", b"3"), (b"b\x00k", b"4"), (b"\xff", b"5")])
    assert engine.count() == 5
    assert engine.count(b"\x01") == 3
    assert engine.count(b"c") == 1
    assert engine.count(b"\xff\xff") == 0


def test_engine_none_deletes_and_deleting_a_missing_key_is_no_error(engine: Engine) -> None:
    engine.commit([(b"a", b"1"), (b"b", b"2")])
    engine.commit([(b"a", None), (b"never-there", None)])
    assert engine.get(b"a") is None
    assert engine.get(b"b") == b"2"
    assert engine.count() == 1


def test_engine_values_are_opaque_bytes_kept_exactly(engine: Engine) -> None:
    values = {b"empty": b"", b"binary": bytes(range(256)), b"big": os.urandom(1 << 20)}
    engine.commit(list(values.items()))
    for key, value in values.items():
        assert engine.get(key) == value


def test_engine_keys_are_in_byte_order_within_the_prefix(engine: Engine) -> None:
    keys = [b"b\x00z", b"b\x00a", b"b\x00\xff", b"b\x00", b"a\x00x", b"c", b"b\x01", b"b"]
    engine.commit([(key, b"v") for key in keys])
    assert engine.keys(b"b\x00") == [b"b\x00", b"b\x00a", b"b\x00z", b"b\x00\xff"]
    assert engine.keys(b"") == sorted(keys)
    assert engine.keys(b"nope") == []


def test_engine_keys_after_and_limit_page_through_a_prefix(engine: Engine) -> None:
    keys = [b"p/%03d" % i for i in range(25)]
    engine.commit([(key, b"v") for key in keys] + [(b"q/000", b"v"), (b"o/999", b"v")])
    pages: list[list[bytes]] = []
    after: bytes | None = None
    for _ in range(10):  # 25 keys in pages of 10: three pages, then an empty one
        page = engine.keys(b"p/", after=after, limit=10)
        if not page:
            break
        pages.append(page)
        after = page[-1]
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [key for page in pages for key in page] == keys
    # ``after`` before the prefix's range, or between keys, is no error.
    assert engine.keys(b"p/", after=b"a", limit=2) == keys[:2]
    assert engine.keys(b"p/", after=b"p/0105", limit=1) == [b"p/011"]


def test_engine_items_page_through_a_prefix_with_their_values(engine: Engine) -> None:
    data = {b"i/%03d" % i: b"value %d" % i for i in range(12)}
    engine.commit([*data.items(), (b"i0", b"outside"), (b"h/999", b"outside")])
    pages: list[list[tuple[bytes, bytes]]] = []
    after: bytes | None = None
    for _ in range(10):
        page = engine.items(b"i/", after=after, limit=5)
        if not page:
            break
        pages.append(page)
        after = page[-1][0]
    assert [len(page) for page in pages] == [5, 5, 2]
    assert [item for page in pages for item in page] == sorted(data.items())
    assert engine.items(b"i/", after=b"i/0105", limit=1) == [(b"i/011", b"value 11")]
    assert engine.items(b"nope") == []


def test_engine_keys_with_0xff_prefix_has_no_upper_bound_error(engine: Engine) -> None:
    engine.commit([(b"\xff\xff", b"v"), (b"\xff\xff\x00", b"v"), (b"\xfe", b"v")])
    assert engine.keys(b"\xff\xff") == [b"\xff\xff", b"\xff\xff\x00"]


def test_engine_malformed_batch_is_refused_whole(engine: Engine) -> None:
    engine.commit([(b"kept", b"1")])
    for bad in ([(b"ok", b"2"), (b"", b"x")],
                [(b"ok", b"2"), (b"k" * (engine.max_key_bytes + 1), b"x")],
                [(b"ok", b"2"), (b"k", "text")]):  # type: ignore[list-item]
        with pytest.raises(ValueError):
            engine.commit(bad)
    assert engine.get(b"ok") is None
    assert engine.keys(b"") == [b"kept"]


def test_engine_longest_key_is_accepted(engine: Engine) -> None:
    key = b"k" * engine.max_key_bytes
    engine.commit([(key, b"v")])
    assert engine.get(key) == b"v"


def test_engine_size_grows_with_data(engine: Engine) -> None:
    before = engine.size_bytes()
    engine.commit([(b"key-%05d" % i, os.urandom(1000)) for i in range(2000)])
    assert engine.size_bytes() >= before + 2000 * 1000


def test_prefix_end_is_the_first_string_past_the_prefix() -> None:
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None


# --------------------------------------------------------------------------- durable engines


def test_engine_reopen_after_close_keeps_committed_data(kind: str, tmp_path: Path) -> None:
    first = open_engine(kind, str(tmp_path))
    first.commit([(b"k%04d" % i, b"v%d" % i) for i in range(500)])
    first.commit([(b"k0000", None)])
    first.close()
    first.close()  # closing twice is allowed
    again = open_engine(kind, str(tmp_path))
    try:
        assert again.count() == 499
        assert again.get(b"k0000") is None
        assert again.get(b"k0499") == b"v499"
        assert again.keys(b"k", limit=2) == [b"k0001", b"k0002"]
    finally:
        again.close()


def test_engine_lmdb_grows_its_map_when_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.setattr("dynago.storage.lmdb_engine.INITIAL_MAP_SIZE", 1 << 20)
    engine = LmdbEngine(tmp_path)
    try:
        for batch in range(8):  # 8 MiB of values through a 1 MiB map
            engine.commit([(b"%d-%d" % (batch, i), os.urandom(1024)) for i in range(1024)])
        assert engine.count() == 8 * 1024
    finally:
        engine.close()


def test_engine_dir_that_cannot_be_made_is_a_storage_error(kind: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(StorageError, match="cannot open data dir"):
        open_engine(kind, str(blocker / "data"))


def test_engine_dir_in_use_by_another_engine_is_refused(kind: str, tmp_path: Path) -> None:
    first = open_engine(kind, str(tmp_path))
    try:
        with pytest.raises(StorageError, match="in use"):
            open_engine(kind, str(tmp_path))
    finally:
        first.close()
    open_engine(kind, str(tmp_path)).close()  # free again once closed


def test_engine_refuses_a_dir_written_by_the_other_engine(kind: str, tmp_path: Path) -> None:
    other = "sqlite" if kind == "lmdb" else "lmdb"
    written = open_engine(other, str(tmp_path))
    written.commit([(b"k", b"v")])
    written.close()
    with pytest.raises(StorageError, match=f"written by the {other} storage engine"):
        open_engine(kind, str(tmp_path))
    # Nothing of the refused engine was left behind: the other engine still opens it.
    reopened = open_engine(other, str(tmp_path))
    try:
        assert reopened.get(b"k") == b"v"
    finally:
        reopened.close()


def test_engine_refuses_a_non_empty_dir_without_marker(kind: str, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone else's")
    with pytest.raises(StorageError, match="not a dynago data dir"):
        open_engine(kind, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "dynago.lock") == ["notes.txt"]


def test_engine_refuses_a_newer_format_version(kind: str, tmp_path: Path) -> None:
    open_engine(kind, str(tmp_path)).close()
    marker = tmp_path / MARKER
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({**data, "version": data["version"] + 1}))
    with pytest.raises(StorageError, match="format version"):
        open_engine(kind, str(tmp_path))


def test_open_engine_without_data_dir_is_memory_and_unknown_kind_is_refused() -> None:
    engine = open_engine("lmdb", None)
    assert engine.kind == "memory" and not engine.durable
    with pytest.raises(ValueError, match="unknown storage engine"):
        open_engine("rocksdb", None)


# --------------------------------------------------------------------------- SQLite's layout


def test_sqlite_keeps_kib_values_near_their_size_on_disk(tmp_path: Path) -> None:
    """Values of 1 KiB stay in their B-tree pages: the store takes well under twice the raw
    bytes (a WITHOUT ROWID table spilled each to an overflow page: 4.5 times)."""
    engine = SqliteEngine(tmp_path / "data")
    value = bytes(range(256)) * 4
    keys = [b"bench\x00k%07d" % i for i in range(2000)]
    for start in range(0, len(keys), 100):
        engine.commit([(k, value) for k in keys[start:start + 100]])
    engine.close()
    raw = sum(len(k) + len(value) for k in keys)
    db = sqlite3.connect(tmp_path / "data" / "kv.sqlite3")
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, page_size = (db.execute(f"PRAGMA {p}").fetchone()[0]
                            for p in ("page_count", "page_size"))
    finally:
        db.close()
    assert pages * page_size < 2 * raw


def test_sqlite_store_made_with_a_without_rowid_table_still_works(tmp_path: Path) -> None:
    """Stores made by earlier versions keep their WITHOUT ROWID table, and every engine
    operation works on it."""
    SqliteEngine(tmp_path / "data").close()
    db = sqlite3.connect(tmp_path / "data" / "kv.sqlite3", isolation_level=None)
    db.execute("DROP TABLE kv")
    db.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO kv VALUES (?, ?)", (b"old", b"kept"))
    db.close()
    engine = SqliteEngine(tmp_path / "data")
    try:
        assert engine.get(b"old") == b"kept"
        engine.commit([(b"new", b"1"), (b"old", b"2")])
        engine.commit([(b"new", None)])
        assert engine.get(b"old") == b"2" and engine.get(b"new") is None
        assert engine.keys(b"") == [b"old"] and engine.count() == 1
    finally:
        engine.close()
    db = sqlite3.connect(tmp_path / "data" / "kv.sqlite3")
    try:
        schema = db.execute("SELECT sql FROM sqlite_master WHERE name = 'kv'").fetchone()[0]
    finally:
        db.close()
    assert "WITHOUT ROWID" in schema.upper()


_short_keys = st.binary(min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(_short_keys, st.none() | st.just(b"v")), max_size=8),
                max_size=10),
       st.binary(max_size=2), st.none() | _short_keys, st.integers(1, 5))
def test_memory_engine_listings_match_a_sorted_model(
        batches: list[list[tuple[bytes, bytes | None]]], prefix: bytes, after: bytes | None,
        limit: int) -> None:
    engine = MemoryEngine()
    model: dict[bytes, bytes] = {}
    for batch in batches:
        engine.commit(batch)
        for key, value in batch:
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        expected = [k for k in sorted(model)
                    if k.startswith(prefix) and (after is None or k > after)][:limit]
        assert engine.keys(prefix, after=after, limit=limit) == expected
        assert engine.items(prefix, after=after, limit=limit) == [(k, model[k]) for k in expected]
        assert engine.count(prefix) == sum(k >= prefix for k in model)
