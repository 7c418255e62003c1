"""The Parquet shard store: round trips, atomicity, damaged shards, first-wins, speed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vlexplore import cache
from vlexplore.cache import ShardStore, store_for
from vlexplore.errors import CacheError, ConfigError


def _vectors(n: int, d: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture
def store(cache_dir) -> ShardStore:
    return ShardStore(cache_dir / "ns")


def test_lookup_returns_what_append_wrote_in_key_order(store):
    v = _vectors(3)
    store.append(["a", "b", "c"], {"vec": v, "text": ["x", "y", "z"]})
    found, values = store.lookup(["c", "nope", "a"], ["vec", "text"])
    assert found.tolist() == [True, False, True]
    assert values["vec"].dtype == np.float32
    assert values["vec"].shape == (2, 4)
    np.testing.assert_array_equal(values["vec"], v[[2, 0]])
    assert values["text"] == ["z", "x"]


def test_lookup_in_a_missing_directory_finds_nothing_and_creates_nothing(store):
    found, values = store.lookup(["a", "b"], ["vec"])
    assert found.tolist() == [False, False]
    assert len(values["vec"]) == 0
    assert not store.directory.exists()


def test_lookup_gathers_rows_from_several_shards(store):
    v = _vectors(4)
    store.append(["a", "b"], {"vec": v[:2]})
    store.append(["c", "d"], {"vec": v[2:]})
    found, values = store.lookup(["d", "a", "c", "b"], ["vec"])
    assert found.all()
    np.testing.assert_array_equal(values["vec"], v[[3, 0, 2, 1]])


def test_repeated_keys_in_a_request_are_all_answered(store):
    v = _vectors(1)
    store.append(["a"], {"vec": v})
    found, values = store.lookup(["a", "a"], ["vec"])
    assert found.tolist() == [True, True]
    np.testing.assert_array_equal(values["vec"], np.vstack([v, v]))


def test_a_key_stored_twice_comes_from_the_oldest_shard(store):
    store.append(["a"], {"text": ["old"]})
    store.append(["a"], {"text": ["new"]})
    assert store.lookup(["a"], ["text"])[1]["text"] == ["old"]


def test_shards_without_a_requested_column_are_not_used(store):
    store.append(["a"], {"text": ["only text"]})
    store.append(["b"], {"vec": _vectors(1)})
    found, values = store.lookup(["a", "b"], ["vec"])
    assert found.tolist() == [False, True]
    assert values["vec"].shape == (1, 4)


def test_lookup_reads_only_the_key_column_of_shards_without_hits(store, monkeypatch):
    store.append(["a"], {"vec": _vectors(1)})
    store.append(["b"], {"vec": _vectors(1)})
    read = []
    real = cache._iter_rows
    monkeypatch.setattr(
        cache, "_iter_rows", lambda path, cols, rows: read.append(path) or real(path, cols, rows)
    )
    store.lookup(["b"], ["vec"])
    assert read == [store.shard_paths()[1]]


def test_a_partial_tmp_file_is_never_read(store):
    store.append(["a"], {"vec": _vectors(1)})
    (store.directory / ".crashed-writer.tmp").write_bytes(b"PAR1\0\0 half a shard")
    (store.directory / "0000-crashed.parquet.tmp").write_bytes(b"PAR1\0\0 half a shard")
    with np.testing.assert_no_warnings():
        found, _ = store.lookup(["a"], ["vec"])
    assert found.all()
    assert len(store.shard_paths()) == 1


def test_a_corrupt_shard_is_ignored_with_a_warning(store):
    store.append(["a"], {"vec": _vectors(1)})
    (store.directory / "00000000000000000000-stray.parquet").write_bytes(b"not parquet at all")
    with pytest.warns(UserWarning, match="stray.parquet"):
        found, values = store.lookup(["a"], ["vec"])
    assert found.all()
    assert values["vec"].shape == (1, 4)


def test_append_leaves_one_uniquely_named_shard_per_call_and_no_temp_files(store):
    store.append(["a"], {"vec": _vectors(1)})
    store.append(["a"], {"vec": _vectors(1)})
    names = [p.name for p in store.shard_paths()]
    assert len(set(names)) == 2
    assert all(n.endswith(".parquet") for n in names)
    assert sorted(p.name for p in store.directory.iterdir()) == sorted(names)


def test_append_of_nothing_writes_nothing(store):
    assert store.append([], {"vec": np.zeros((0, 4), np.float32)}) is None
    assert store.shard_paths() == []


@pytest.mark.parametrize(
    "columns",
    [
        {"vec": _vectors(3)},
        {"text": ["x"]},
        {"vec": np.zeros(2, np.float32)},
        {"key": ["x", "y"]},
        {"n": [1, 2]},
    ],
    ids=["too-many-rows", "too-few-strings", "1-d", "reserved-name", "not-strings"],
)
def test_append_rejects_bad_columns(store, columns):
    with pytest.raises(ConfigError):
        store.append(["a", "b"], columns)


def test_a_failed_write_leaves_no_shard_and_no_temp_file(store, monkeypatch):
    import pyarrow.parquet as pq

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    store.append(["a"], {"vec": _vectors(1)})
    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(CacheError, match="No space left"):
        store.append(["b"], {"vec": _vectors(1)})
    assert len(list(store.directory.iterdir())) == 1


def test_concurrent_writers_lose_nothing(store):
    def write(i: int) -> None:
        store.append([f"k{i}-{j}" for j in range(10)], {"vec": _vectors(10, seed=i)})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found, _ = store.lookup([f"k{i}-{j}" for i in range(6) for j in range(10)], ["vec"])
    assert found.all()


def test_compact_merges_shards_and_keeps_the_oldest_rows(store):
    store.append(["a", "b"], {"text": ["a1", "b1"]})
    store.append(["b", "c"], {"text": ["b2", "c2"]})
    store.append(["x"], {"vec": _vectors(1)})  # other columns: kept apart, untouched
    store.compact()
    assert len(store.shard_paths()) == 2
    found, values = store.lookup(["a", "b", "c"], ["text"])
    assert found.all()
    assert values["text"] == ["a1", "b1", "c2"]
    assert store.lookup(["x"], ["vec"])[0].all()
    assert not list(store.directory.glob("*.tmp"))


def test_store_for_names_the_folder_by_slug_and_hash(cache_dir):
    a, b = (
        store_for(cache_dir, "open_clip:ViT-B-32/openai"),
        store_for(cache_dir, "open_clip:ViT-B-32:openai"),
    )
    assert a.directory.parent == cache_dir
    assert a.directory.name.startswith("open_clip-ViT-B-32-openai-")
    assert len(a.directory.name.rsplit("-", 1)[1]) == 8
    assert a.directory != b.directory  # same slug, different namespace


def test_lookup_of_100k_keys_is_fast(store):
    n, d = 100_000, 8
    keys = [f"{i:032x}" for i in range(n)]
    for start in range(0, n, 25_000):
        store.append(keys[start : start + 25_000], {"vec": _vectors(25_000, d, seed=start)})
    t0 = time.perf_counter()
    found, values = store.lookup(keys[::-1], ["vec"])
    elapsed = time.perf_counter() - t0
    assert found.all()
    assert values["vec"].shape == (n, d)
    np.testing.assert_array_equal(values["vec"][-1], _vectors(25_000, d, seed=0)[0])
    assert elapsed < 3.0, f"lookup of {n} keys took {elapsed:.2f} s"


def test_contains_reads_keys_only_and_matches_lookup(tmp_path):
    store = ShardStore(tmp_path / "s")
    assert not store.contains(["a"]).any()
    store.append(["a", "b"], {"v": np.ones((2, 3), np.float32)})
    store.append(["c"], {"other": ["x"]})
    keys = ["c", "z", "a", "a", "b"]
    assert store.contains(keys).tolist() == [True, False, True, True, True]
    assert store.contains([]).tolist() == []


def test_lookup_refuses_a_column_whose_vectors_change_length(tmp_path):
    store = ShardStore(tmp_path / "s")
    store.append(["a"], {"v": np.ones((1, 3), np.float32)})
    store.append(["b"], {"v": np.ones((1, 4), np.float32)})
    with pytest.raises(CacheError, match="different lengths"):
        store.lookup(["a", "b"], ["v"])
    found, values = store.lookup(["b"], ["v"])
    assert found.tolist() == [True]
    assert values["v"].shape == (1, 4)


def test_compact_is_bounded_and_respects_big_shards_in_between(store):
    store.append(["a", "b"], {"text": ["a1", "b1"]})
    store.append(["c", "d", "e", "f"], {"text": ["c1", "d1", "e1", "f1"]})  # "big" at max_rows=4: left alone
    store.append(["c", "g"], {"text": ["c2", "g2"]})  # c is older in the big shard and must stay c1
    store.append(["h"], {"text": ["h3"]})
    store.append(["i", "a"], {"text": ["i4", "a4"]})
    before = {p.name for p in store.shard_paths()}
    store.compact(max_rows=4)
    after = store.shard_paths()
    assert len(after) == 3  # the big shard, [ab + cg] (4 rows -> flushed), [h + ia]
    assert sum(p.name in before for p in after) == 1
    keys = list("abcdefghi")
    found, values = store.lookup(keys, ["text"])
    assert found.all()
    assert values["text"] == ["a1", "b1", "c1", "d1", "e1", "f1", "g2", "h3", "i4"]
    assert store.compact(max_rows=4) is None or len(store.shard_paths()) <= 3
    with pytest.raises(ConfigError, match="max_rows"):
        store.compact(max_rows=0)


def test_embedding_compacts_a_store_with_many_shards(tmp_path, monkeypatch, image_folder, fake_encoder):
    from vlexplore import encode
    from vlexplore.images import scan_folder

    monkeypatch.setattr(encode, "COMPACT_ABOVE", 3)
    col = scan_folder(image_folder.root)
    first = encode.embed_images(col, fake_encoder, cache_dir=tmp_path / "c", batch_size=2, num_workers=0)
    shards = store_for(tmp_path / "c", fake_encoder.model_id).shard_paths()
    assert len(shards) == 1  # 6 batches of 2, merged once the run ended
    again = encode.embed_images(col, fake_encoder, cache_dir=tmp_path / "c", num_workers=0)
    assert again.n_computed == 0
    np.testing.assert_array_equal(again.views["image"], first.views["image"])


def test_l2_normalize_in_blocks_equals_at_once(monkeypatch):
    from vlexplore.models import base

    x = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float32)
    x[3] = 0
    whole = base.l2_normalize(x)
    monkeypatch.setattr(base, "NORMALIZE_BLOCK", 50)
    np.testing.assert_array_equal(base.l2_normalize(x), whole)
    assert whole.dtype == np.float32
    assert not whole[3].any()


def test_lookup_reads_only_the_row_groups_it_needs(store, monkeypatch):
    import pyarrow.parquet as pq

    from vlexplore import pages

    monkeypatch.setattr(cache, "ROW_GROUP_ROWS", 10)
    keys = [f"k{i:03d}" for i in range(95)]
    vecs = _vectors(95, 4)
    store.append(keys, {"vec": vecs, "text": keys})
    (path,) = store.shard_paths()
    md = pq.ParquetFile(path).metadata
    assert md.num_row_groups == 10
    group_at = {md.row_group(g).column(1).data_page_offset: g for g in range(10)}  # column 1: vec
    direct, arrow = [], []
    real_chunk, real_group = pages.read_chunk, pq.ParquetFile.read_row_group

    def chunk(fh, meta, *args):
        direct.append(group_at[meta.data_page_offset])
        return real_chunk(fh, meta, *args)

    monkeypatch.setattr(pages, "read_chunk", chunk)
    monkeypatch.setattr(
        pq.ParquetFile, "read_row_group", lambda self, g, **kw: arrow.append(g) or real_group(self, g, **kw)
    )
    want = ["k094", "k003", "k041", "k003", "k049"]
    found, values = store.lookup(want, ["vec"])
    assert found.all()
    np.testing.assert_array_equal(values["vec"], vecs[[94, 3, 41, 3, 49]])
    assert direct == [0, 4, 9]
    assert arrow == []  # the vectors come straight from the file
    direct.clear()
    found, values = store.lookup(keys[::-1], ["vec", "text"])  # every group, each once
    np.testing.assert_array_equal(values["vec"], vecs[::-1])
    assert values["text"] == keys[::-1]
    assert direct == list(range(10))
    assert arrow == list(range(10))  # the strings are read by pyarrow
