"""Reading cached vectors: the direct page reader (vlexplore.pages) against pyarrow, in every layout.

The reference is always pyarrow's own decoding of the same file, compared bit for bit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlexplore import cache, pages
from vlexplore.cache import ShardStore


def _vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _reference(store: ShardStore, keys: list[str], column: str) -> np.ndarray:
    """The pyarrow decoding of ``column`` for ``keys`` (the oldest shard holding a key wins)."""
    rows: dict[str, np.ndarray] = {}
    for path in store.shard_paths():
        table = pq.read_table(path)
        flat = table.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vec = flat.reshape(table.num_rows, -1)
        for k, v in zip(table.column("key").to_pylist(), vec):
            rows.setdefault(k, v)
    return np.stack([rows[k] for k in keys if k in rows]).astype(np.float32)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@pytest.fixture
def store(cache_dir) -> ShardStore:
    return ShardStore(cache_dir / "ns")


@pytest.fixture
def arrow_reads(monkeypatch) -> list[int]:
    """Row groups read by pyarrow (not by the direct reader)."""
    read: list[int] = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(
        pq.ParquetFile, "read_row_group", lambda self, g, **kw: read.append(g) or real(self, g, **kw)
    )
    return read


@pytest.mark.parametrize("d", [1, 3, 512, 1500])
def test_any_order_subset_and_repeats_over_several_shards_match_pyarrow(store, monkeypatch, arrow_reads, d):
    monkeypatch.setattr(cache, "ROW_GROUP_ROWS", 7)
    rng = np.random.default_rng(d)
    keys = [f"k{i:03d}" for i in range(60)]
    vecs = _vectors(60, d, seed=d)
    vecs[5, 0], vecs[6, -1], vecs[7, 0] = -0.0, np.nan, np.inf  # bits, not just values, must survive
    for lo, hi in ((0, 25), (25, 26), (26, 60)):
        store.append(keys[lo:hi], {"vec": vecs[lo:hi]})
    store.append(keys[10:20], {"vec": vecs[10:20] + 1})  # newer copies of stored keys: never returned
    for want in (
        keys,  # in stored order: whole row groups land in place
        keys[::-1],
        [keys[i] for i in rng.permutation(60)],
        ["k003", "k001", "nope", "k003", "k059", "k025", "k001"],  # repeats, a subset of a group, a miss
        keys[7:14],  # exactly one row group
        keys[8:13],  # inside one row group
    ):
        found, values = store.lookup(want, ["vec"])
        assert found.tolist() == [k in keys for k in want]
        hits = [k for k in want if k in keys]
        assert values["vec"].shape == (len(hits), d)
        np.testing.assert_array_equal(_bits(values["vec"]), _bits(vecs[[keys.index(k) for k in hits]]))
        np.testing.assert_array_equal(_bits(values["vec"]), _bits(_reference(store, want, "vec")))
    assert arrow_reads == []


def test_chunks_of_several_pages_and_a_string_column(store, arrow_reads):
    keys = [f"k{i:05d}" for i in range(3000)]
    vecs = _vectors(3000, 768)  # 2048 rows x 3 KiB per row group: several 1 MiB data pages each
    store.append(keys, {"vec": vecs, "name": [k.upper() for k in keys]})
    (path,) = store.shard_paths()
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(1)
    assert chunk.total_compressed_size > 2 * 2**20
    order = np.random.default_rng(1).permutation(3000)
    want = [keys[i] for i in order]
    found, values = store.lookup(want, ["name", "vec"])
    assert found.all()
    np.testing.assert_array_equal(_bits(values["vec"]), _bits(vecs[order]))
    assert values["name"] == [w.upper() for w in want]
    assert arrow_reads == [0, 1]  # the strings only


def _write_shard(store: ShardStore, name: str, table: pa.Table, **kw) -> None:
    store.directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, store.directory / name, **kw)


def _table(keys: list[str], vecs: np.ndarray, column: str = "vec") -> pa.Table:
    flat = pa.array(vecs.ravel(), type=pa.float32())
    return pa.table({"key": keys, column: pa.FixedSizeListArray.from_arrays(flat, vecs.shape[1])})


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "snappy"},
        {"compression": "none", "use_dictionary": True},
        {"compression": "none", "use_dictionary": False, "data_page_version": "2.0"},
        {"compression": "zstd", "write_statistics": True, "row_group_size": 5},
        {"compression": "none", "use_dictionary": False, "write_page_checksum": True},
    ],
)
def test_shards_the_direct_reader_does_not_handle_are_read_by_pyarrow(store, options):
    keys = [f"k{i:02d}" for i in range(40)]
    vecs = _vectors(40, 6)
    _write_shard(store, "00000000000000000001-a.parquet", _table(keys[:20], vecs[:20]), **options)
    store.append(keys[20:], {"vec": vecs[20:]})  # today's layout, beside it
    want = keys[::-1]
    found, values = store.lookup(want, ["vec"])
    assert found.all()
    np.testing.assert_array_equal(_bits(values["vec"]), _bits(vecs[::-1]))


def test_null_vectors_fall_back_to_pyarrow_as_before(store, arrow_reads):
    vecs = _vectors(4, 3)
    flat = pa.array(vecs.ravel(), type=pa.float32())
    mask = pa.array([False, True, False, False])
    column = pa.FixedSizeListArray.from_arrays(flat, 3, mask=mask)
    table = pa.table({"key": ["a", "b", "c", "d"], "vec": column})
    _write_shard(store, "00000000000000000001-a.parquet", table, compression="none", use_dictionary=False)
    found, values = store.lookup(["a", "c", "d"], ["vec"])  # rows of a group that holds a null
    assert found.all()
    assert arrow_reads == [0]
    np.testing.assert_array_equal(values["vec"], vecs[[0, 2, 3]])


def test_a_null_float_inside_a_vector_is_read_by_pyarrow(store, arrow_reads):
    vecs = _vectors(3, 4)
    flat = pa.array(vecs.ravel(), type=pa.float32(), mask=np.arange(12) == 5)
    table = pa.table({"key": ["a", "b", "c"], "vec": pa.FixedSizeListArray.from_arrays(flat, 4)})
    _write_shard(store, "00000000000000000001-a.parquet", table, compression="none", use_dictionary=False)
    found, values = store.lookup(["c", "a"], ["vec"])
    assert found.all()
    assert arrow_reads == [0]
    np.testing.assert_array_equal(values["vec"], vecs[[2, 0]])


def test_identical_vector_columns_share_one_array_only_while_their_bits_agree(store, monkeypatch):
    monkeypatch.setattr(cache, "ROW_GROUP_ROWS", 8)
    keys = [f"k{i:02d}" for i in range(30)]
    a = _vectors(30, 5)
    store.append(keys[:20], {"image": a[:20], "joint": a[:20]})
    found, values = store.lookup(keys[:20][::-1], ["image", "joint"])
    assert values["image"] is values["joint"]  # CLIP: one array, half the memory
    np.testing.assert_array_equal(values["image"], a[:20][::-1])

    b = a.copy()
    b[27, 2] = -b[27, 2]  # the second shard differs in one float of one row
    b[29, 0] = 0.0
    a[29, 0] = -0.0  # and in the sign of a zero (equal as numbers, not as bits)
    store.append(keys[20:], {"image": a[20:], "joint": b[20:]})
    for want in (keys, keys[::-1], ["k29", "k03", "k27", "k03"], ["k29"], ["k27", "k28"]):
        found, values = store.lookup(want, ["image", "joint"])
        assert found.all()
        rows = [keys.index(k) for k in want]
        np.testing.assert_array_equal(_bits(values["image"]), _bits(a[rows]))
        np.testing.assert_array_equal(_bits(values["joint"]), _bits(b[rows]))
        assert values["image"] is not values["joint"]
    _, values = store.lookup(["k21", "k00", "k22"], ["joint", "image"])  # equal rows: shared again
    assert values["image"] is values["joint"]
    np.testing.assert_array_equal(values["joint"], a[[21, 0, 22]])


def test_a_column_read_by_pyarrow_gets_its_own_array(store, monkeypatch):
    keys = [f"k{i}" for i in range(6)]
    a = _vectors(6, 4)
    store.append(keys[:3], {"image": a[:3], "joint": a[:3]})
    store.append(keys[3:], {"image": a[3:], "joint": a[3:] * 2})
    real = pages.read_chunk
    calls = []

    def only_first(fh, chunk, *args):  # the first chunk read directly, the others "unsupported"
        calls.append(chunk.path_in_schema)
        if len(calls) > 1:
            raise pages.Unsupported("test")
        return real(fh, chunk, *args)

    monkeypatch.setattr(pages, "read_chunk", only_first)
    _, values = store.lookup(keys, ["image", "joint"])
    np.testing.assert_array_equal(values["image"], a)
    np.testing.assert_array_equal(values["joint"], np.concatenate([a[:3], a[3:] * 2]))
    assert values["image"] is not values["joint"]


def _vector_chunk(path) -> tuple[int, int]:
    md = pq.ParquetFile(path).metadata
    chunk = md.row_group(0).column(1)
    return chunk.data_page_offset, chunk.total_compressed_size


def test_damage_anywhere_in_a_vector_chunk_is_never_hidden(store):
    """Each corrupted byte: the shard is set aside, or the values are what pyarrow reads, or the clean ones."""
    keys = [f"k{i:03d}" for i in range(100)]
    vecs = _vectors(100, 16)
    store.append(keys, {"vec": vecs})
    (path,) = store.shard_paths()
    clean = path.read_bytes()
    start, size = _vector_chunk(path)
    rng = np.random.default_rng(0)
    positions = list(range(start, start + 64)) + rng.integers(start, start + size, 150).tolist()
    set_aside = 0
    for at in positions:
        raw = bytearray(clean)
        raw[at] ^= 1 << int(rng.integers(8))
        for p in store.directory.iterdir():
            p.unlink()
        path.write_bytes(bytes(raw))
        try:
            ref = pq.read_table(path).column("vec").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            ref = ref.reshape(100, 16)
        except (OSError, pa.ArrowException, ValueError):
            ref = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found, values = store.lookup(keys, ["vec"])
        if not found.any():
            assert any("is damaged" in str(w.message) for w in caught)
            set_aside += 1
            continue
        assert found.all()
        got = _bits(values["vec"])
        assert (ref is not None and np.array_equal(got, _bits(ref))) or np.array_equal(got, _bits(vecs)), at
    assert set_aside  # damaged headers are found


def test_a_shard_truncated_inside_its_vectors_is_set_aside(store):
    keys = [f"k{i}" for i in range(50)]
    store.append(keys, {"vec": _vectors(50, 8)})
    (path,) = store.shard_paths()
    start, size = _vector_chunk(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: start + size // 2] + raw[-8:])  # the footer survives, half the floats do not
    with pytest.warns(UserWarning, match="is damaged"):
        found, _ = store.lookup(keys, ["vec"])
    assert not found.any()


def test_a_compaction_while_a_shard_is_read_does_not_disturb_the_lookup(store, monkeypatch):
    keys = [f"k{i}" for i in range(40)]
    vecs = _vectors(40, 4)
    for lo in range(0, 40, 10):
        store.append(keys[lo : lo + 10], {"vec": vecs[lo : lo + 10]})
    real = pages.read_chunk
    compacted = []

    def compact_first(fh, chunk, *args):
        if not compacted:
            compacted.append(ShardStore(store.directory).compact())
        return real(fh, chunk, *args)

    monkeypatch.setattr(pages, "read_chunk", compact_first)
    found, values = store.lookup(keys[::-1], ["vec"])
    assert compacted[0] is not None
    assert found.all()
    np.testing.assert_array_equal(values["vec"], vecs[::-1])
    assert len(store.shard_paths()) == 1
