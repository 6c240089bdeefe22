"""The anti-entropy index on disk (dynago.kv.aae_index), checked with Hypothesis on a real
(memory) engine: committed the way the StorageActor commits (objects and derived records
in one transaction), the records always hold exactly the stored objects, and the trees
built from the records, from the commits' changes, or from the objects agree; a rebuild
interleaved with commits ends with the same index, whatever stale records it found."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from dynago.kv import aae_index, version
from dynago.kv.aae_index import AaeIndexer, RebuildCursor
from dynago.kv.model import Content, ObjectKey
from dynago.kv.ring import partition_of
from dynago.kv.tictac import PartitionTree, TicTacTree, object_hash, segment_of
from dynago.storage import MemoryEngine
from dynago.storage.engine import Write

PARTITIONS = 16
LAWS = settings(max_examples=100, deadline=None)

names = st.sampled_from([ObjectKey(b, f"k{i}").storage_key()
                         for b in ("b", "users", "é") for i in range(12)])
node_local = st.sampled_from([b"\x00h\x00n1\x00b\x00k1", b"\x00o\x00progress", b"\x00"])


def _stored(value: bytes, deleted: bool) -> bytes:
    return version.encode(version.coordinate(version.EMPTY, None, "n1",
                                             Content(value, deleted=deleted)))


writes = st.tuples(names | node_local,
                   st.none() | st.builds(_stored, st.binary(max_size=8), st.booleans()))
batches = st.lists(st.lists(writes, min_size=1, max_size=6), max_size=12)


def commit(engine: MemoryEngine, indexer: AaeIndexer, batch: Sequence[Write],
           tree: dict[int, PartitionTree] | None = None) -> None:
    """What StorageActor._commit_batch does: each key once, its final value, plus the
    derived records, in one commit; then the changes reach the trees."""
    final = list(dict(batch).items())
    derived, changes = indexer.derive(final, engine.get)
    engine.commit(final + derived)
    for change in changes if tree is not None else ():
        tree.setdefault(change.partition, PartitionTree()).update(
            change.key, change.old, change.new, change.segment)


def objects_of(engine: MemoryEngine) -> dict[bytes, bytes]:
    return {k: v for k, v in engine.items(b"", limit=10**6) if not k.startswith(b"\x00")}


def records_of(engine: MemoryEngine) -> list[aae_index.Record]:
    return [aae_index.decode(k, v)
            for k, v in engine.items(aae_index.RECORD_PREFIX, limit=10**6)]


def assert_index_matches(engine: MemoryEngine) -> None:
    objects = objects_of(engine)
    records = records_of(engine)
    assert sorted(r.key for r in records) == sorted(objects)
    for record in records:
        value = objects[record.key]
        assert record.obj_hash == object_hash(value)
        assert record.partition == partition_of(ObjectKey.from_storage_key(record.key),
                                                PARTITIONS)
        assert record.segment == segment_of(record.key)
        assert record.tombstone == all(v.content.deleted
                                       for v in version.decode(value).versions)


def trees_of_objects(engine: MemoryEngine) -> dict[int, TicTacTree]:
    out: dict[int, list[tuple[bytes, int]]] = {}
    for key, value in objects_of(engine).items():
        partition = partition_of(ObjectKey.from_storage_key(key), PARTITIONS)
        out.setdefault(partition, []).append((key, object_hash(value)))
    return {p: TicTacTree.of(items) for p, items in out.items()}


def rebuild(engine: MemoryEngine, indexer: AaeIndexer,
            between: list[list[Write]] | None = None) -> int:
    """Run every step of a rebuild, committing a batch of ``between`` after each."""
    cursor: RebuildCursor | None = None
    steps = 0
    while True:
        step, cursor = indexer.rebuild_step(cursor, engine.items)
        engine.commit(step)
        steps += 1
        if cursor is None:
            return steps
        assert engine.get(aae_index.MARKER) is None  # complete only at the very end
        if between:
            commit(engine, indexer, between.pop(0))


@LAWS
@given(batches)
def test_aae_index_records_are_exactly_the_stored_objects(batches: list[list[Write]]) -> None:
    engine, indexer = MemoryEngine(), AaeIndexer(PARTITIONS)
    trees: dict[int, PartitionTree] = {}
    for batch in batches:
        commit(engine, indexer, batch, trees)
        assert_index_matches(engine)
    # The trees kept from the changes equal the trees of the objects, and those of a scan.
    expected = trees_of_objects(engine)
    kept = {p: t.tree for p, t in trees.items() if len(t)}
    scanned: dict[int, PartitionTree] = {}
    for record in records_of(engine):
        scanned.setdefault(record.partition, PartitionTree()).update(
            record.key, None, record.obj_hash, record.segment)
    assert kept == expected
    assert {p: t.tree for p, t in scanned.items()} == expected
    assert sum(len(t) for t in trees.values()) == len(objects_of(engine))


@LAWS
@given(batches, batches, st.binary(min_size=1, max_size=30))
def test_aae_index_rebuild_amid_commits_ends_exact(
        before: list[list[Write]], during: list[list[Write]], junk: bytes) -> None:
    engine, indexer = MemoryEngine(), AaeIndexer(PARTITIONS)
    for batch in before:  # an old store: objects, no index
        engine.commit(list(dict(batch).items()))
    # Stale records (another ring size's, or of objects since deleted) and junk.
    other = AaeIndexer(PARTITIONS * 2)
    stale = [(aae_index.record_key(3, 7, b"b\x00gone"),
              aae_index.encode_value(1, False, b"b\x00gone")),
             (aae_index.RECORD_PREFIX + junk, junk),
             (aae_index.MARKER, other.marker)]
    engine.commit(stale + other.derive(list(objects_of(engine).items()), engine.get)[0])
    assert not indexer.is_current(engine.get(aae_index.MARKER))
    rebuild(engine, indexer, list(during))
    assert indexer.is_current(engine.get(aae_index.MARKER))
    assert_index_matches(engine)


def test_aae_index_rebuild_pages_through_a_big_store() -> None:
    engine, indexer = MemoryEngine(), AaeIndexer(PARTITIONS)
    count = 2 * aae_index.REBUILD_PAGE + 5
    engine.commit([(ObjectKey("b", f"k{i:05}").storage_key(), _stored(b"v", False))
                   for i in range(count)])
    steps = rebuild(engine, indexer)
    assert steps > 3  # paged, not one transaction of the whole store
    assert len(records_of(engine)) == count
    assert_index_matches(engine)


def test_aae_index_record_keys_fit_every_engine_whatever_the_key() -> None:
    indexer = AaeIndexer(PARTITIONS)
    long_key = ObjectKey("b", "k" * 1024).storage_key()
    derived, changes = indexer.derive([(long_key, _stored(b"v", False))], lambda _k: None)
    (record_key, record_value), = derived
    assert len(record_key) == aae_index.RECORD_KEY_BYTES < 511  # LMDB's limit
    assert aae_index.decode(record_key, record_value or b"").key == long_key
    assert changes[0].old is None and changes[0].new is not None
    # Node-local keys and keys naming no object get no record.
    assert indexer.derive([(b"\x00h\x00x", b"v"), (b"no separator", b"v")],
                          lambda _k: None) == ([], [])


def test_aae_index_malformed_records_are_refused() -> None:
    good_key = aae_index.record_key(1, 2, b"b\x00k")
    good = aae_index.encode_value(5, True, b"b\x00k")
    assert aae_index.decode(good_key, good).tombstone
    for raw_key, raw_value in ((good_key[:-1], good), (b"x" + good_key[1:], good),
                               (good_key, good[:9]), (good_key, good[:8] + b"\x02k"),
                               (aae_index.segment_prefix(1, 0xFFFF) + bytes(16), good)):
        try:
            aae_index.decode(raw_key, raw_value)
        except ValueError:
            continue
        raise AssertionError(f"accepted {raw_key!r} {raw_value!r}")
