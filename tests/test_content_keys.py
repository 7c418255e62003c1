"""Content keys that cannot collide, and a cache that stays right when files change under it.

Each test reproduces one way the earlier cache went wrong (keys from the size and the first and
last 64 KiB only; bytes hashed at scan time but read again later; a damaged page header that
blocked a folder; compaction racing a reader; a passing MemoryError remembered for good) and
checks that it no longer does.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder
from PIL import Image, ImageDraw

from vlexplore import cache, imageio
from vlexplore import collection as scan
from vlexplore.cache import FORMAT_FILE, ShardStore, store_for
from vlexplore.cluster import cluster_vectors
from vlexplore.collection import scan_folder
from vlexplore.config import ClusterConfig
from vlexplore.encode import embed_images
from vlexplore.errors import CacheError, ImageReadError
from vlexplore.imageio import CHANGED, content_key
from vlexplore.thumbs import thumbnail

# --------------------------------------------------------------------------- 1. keys of whole files


def banded(kind: str) -> Image.Image:
    """400×400 with white bands of 60 rows at the top and bottom: the first and last 64 KiB of its BMP are equal."""
    im = Image.new("RGB", (400, 400), "white")
    d = ImageDraw.Draw(im)
    if kind == "circle":
        d.ellipse((100, 100, 300, 300), fill=(220, 20, 20))
    elif kind == "square":
        d.rectangle((100, 100, 300, 300), fill=(20, 20, 220))
    else:
        for y in range(70, 330, 20):
            d.rectangle((0, y, 399, y + 9), fill=(0, 0, 0))
    return im


def old_key(path: Path) -> str:
    """The key of the earlier cache format: size + first and last 64 KiB (to show the corpus collides)."""
    data = path.read_bytes()
    return hashlib.blake2b(str(len(data)).encode() + data[:65536] + data[-65536:], digest_size=16).hexdigest()


@pytest.fixture
def bmp_folder(tmp_path: Path) -> Path:
    root = tmp_path / "scans"
    for kind in ("circle", "square", "stripes"):
        (root / kind).mkdir(parents=True)
        banded(kind).save(root / kind / f"{kind}.bmp")
        banded(kind).save(root / kind / f"{kind}.tif")
    return root


def test_three_same_size_bmps_that_share_their_ends_get_three_keys_and_vectors(bmp_folder, cache_dir):
    bmps = sorted(bmp_folder.rglob("*.bmp"))
    assert len({old_key(p) for p in bmps}) == 1  # the corpus does collide under the old key
    col = scan_folder(bmp_folder, cache_dir=cache_dir)
    assert col.items["fingerprint"].nunique() == 6
    enc = FakeEncoder()
    res = embed_images(col, enc, cache_dir=cache_dir)
    assert res.n_computed == enc.n_encoded == 6
    bmp_rows = res.collection.items["relpath"].str.endswith(".bmp").to_numpy()
    vectors = res.views["image"][bmp_rows]
    assert len({tuple(np.round(v, 5)) for v in vectors}) == 3
    labels = cluster_vectors(vectors, ClusterConfig(method="kmeans", k=3)).labels
    assert len(set(labels.tolist())) == 3


def test_a_key_is_the_hash_of_every_byte(tmp_path):
    path = tmp_path / "a.png"
    banded("circle").save(path)
    data = path.read_bytes()
    assert imageio.fingerprint_file(path) == content_key(data)
    middle = bytearray(data)
    middle[len(data) // 2] ^= 1
    assert content_key(bytes(middle)) != content_key(data)


# --------------------------------------------------------------------------- the stat index


def write_png(path: Path, kind: str) -> None:
    """Write a small 64×64 PNG of one of the banded pictures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    banded(kind).resize((64, 64)).save(path)


def test_unchanged_files_are_not_read_again(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(scan, "RACY_NS", 0)
    for i, kind in enumerate(("circle", "square")):
        write_png(tmp_path / "f" / f"{i}.png", kind)
    first = scan_folder(tmp_path / "f", cache_dir=cache_dir)

    def no_read(*args, **kwargs):
        raise AssertionError("an unchanged file was read again")

    monkeypatch.setattr(scan, "_probe", no_read)
    second = scan_folder(tmp_path / "f", cache_dir=cache_dir)
    assert second.items.equals(first.items)


def test_an_in_place_edit_that_keeps_size_and_mtime_gets_a_new_key(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(scan, "RACY_NS", 0)
    path = tmp_path / "f" / "x.bmp"
    path.parent.mkdir()
    banded("circle").save(path)
    before = scan_folder(tmp_path / "f", cache_dir=cache_dir).fingerprints[0]
    st = path.stat()
    edited = bytearray(path.read_bytes())
    edited[len(edited) // 2] ^= 0xFF  # same size; the times are put back by hand
    with open(path, "r+b") as fh:
        fh.write(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = scan_folder(tmp_path / "f", cache_dir=cache_dir).fingerprints[0]
    assert after != before
    assert after == content_key(bytes(edited))


def test_a_file_written_just_now_is_not_trusted_to_the_index(tmp_path, cache_dir, monkeypatch):
    write_png(tmp_path / "f" / "new.png", "circle")
    scan_folder(tmp_path / "f", cache_dir=cache_dir)  # default racy window: too recent to remember
    probes = []
    real = scan._probe
    monkeypatch.setattr(scan, "_probe", lambda *a: probes.append(a) or real(*a))
    scan_folder(tmp_path / "f", cache_dir=cache_dir)
    assert len(probes) == 1


def test_a_read_only_cache_only_costs_the_index(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(scan, "RACY_NS", 0)
    write_png(tmp_path / "f" / "a.png", "circle")

    def refuse(self, table, name):
        raise CacheError(f"cannot write to the cache folder {self.directory} (read-only file system)")

    monkeypatch.setattr(ShardStore, "_write", refuse)
    with pytest.warns(UserWarning, match="scan index could not be saved"):
        col = scan_folder(tmp_path / "f", cache_dir=cache_dir)
    assert len(col) == 1


# --------------------------------------------------------------------------- 2. the bytes hashed are the bytes embedded


def test_a_file_replaced_after_the_scan_is_skipped_and_nothing_is_stored_under_its_old_key(
    tmp_path, cache_dir
):
    root = tmp_path / "f"
    for kind in ("circle", "square"):
        write_png(root / f"{kind}.png", kind)
    col = scan_folder(root, cache_dir=cache_dir)
    old = col.items.set_index("relpath").loc["circle.png", "fingerprint"]
    write_png(root / "circle.png", "stripes")  # replaced between the scan and the embedding
    enc = FakeEncoder()
    res = embed_images(col, enc, cache_dir=cache_dir)
    reasons = dict(zip(res.collection.skipped["relpath"], res.collection.skipped["reason"]))
    assert reasons == {"circle.png": CHANGED}
    found, _ = store_for(cache_dir, enc.model_id).lookup([old], ["image"])
    assert not found.any()
    failures, _ = store_for(cache_dir, enc.model_id + ":failures").lookup([old], ["error"])
    assert not failures.any()  # passing trouble: not remembered
    again = embed_images(scan_folder(root, cache_dir=cache_dir), FakeEncoder(), cache_dir=cache_dir)
    assert len(again.collection) == 2
    assert again.n_computed == 1


def test_an_identical_twin_still_embeds_when_one_copy_changed(tmp_path, cache_dir):
    root = tmp_path / "f"
    write_png(root / "a.png", "circle")
    write_png(root / "b.png", "circle")
    col = scan_folder(root, cache_dir=cache_dir)
    assert col.items["fingerprint"].nunique() == 1
    write_png(root / "a.png", "square")
    res = embed_images(col, FakeEncoder(), cache_dir=cache_dir)
    assert res.collection.items["relpath"].tolist() == ["b.png"]
    assert res.collection.skipped["relpath"].tolist() == ["a.png"]


def test_a_thumbnail_of_a_file_swapped_for_an_outside_link_is_refused(tmp_path, cache_dir):
    root, outside = tmp_path / "f", tmp_path / "secret"
    write_png(root / "a.png", "circle")
    write_png(outside / "private.png", "square")
    col = scan_folder(root, cache_dir=cache_dir)
    (root / "a.png").unlink()
    (root / "a.png").symlink_to(outside / "private.png")
    with pytest.raises(ImageReadError, match="outside the scanned folder"):
        thumbnail(col, "a.png", cache_dir=cache_dir)
    assert not list((cache_dir / "thumbs").glob("*.jpg")) if (cache_dir / "thumbs").exists() else True


def test_a_thumbnail_of_a_file_changed_in_place_is_refused(tmp_path, cache_dir):
    root = tmp_path / "f"
    write_png(root / "a.png", "circle")
    col = scan_folder(root, cache_dir=cache_dir)
    write_png(root / "a.png", "stripes")
    with pytest.raises(ImageReadError, match="changed since the folder was scanned"):
        thumbnail(col, "a.png", cache_dir=cache_dir)
    assert not (cache_dir / "thumbs").exists() or not list((cache_dir / "thumbs").iterdir())


# --------------------------------------------------------------------------- 3. a damaged page header


def test_a_damaged_page_header_in_a_vector_column_is_set_aside_once(tmp_path, cache_dir):
    import pyarrow.parquet as pq

    root = tmp_path / "f"
    for i, kind in enumerate(("circle", "square", "stripes")):
        write_png(root / f"{i}.png", kind)
    col = scan_folder(root, cache_dir=cache_dir)
    clean = embed_images(col, FakeEncoder(), cache_dir=cache_dir)
    shard = store_for(cache_dir, FakeEncoder().model_id).shard_paths()[0]
    md = pq.ParquetFile(shard).metadata
    names = [md.schema.column(i).path for i in range(md.num_columns)]
    offset = md.row_group(0).column(names.index("image.list.element")).data_page_offset
    raw = bytearray(shard.read_bytes())
    raw[offset : offset + 16] = b"\xff" * 16
    shard.write_bytes(bytes(raw))
    enc = FakeEncoder()
    with pytest.warns(UserWarning, match="is damaged"):
        res = embed_images(col, enc, cache_dir=cache_dir)
    assert enc.n_encoded == 3
    np.testing.assert_allclose(res.views["image"], clean.views["image"], atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = embed_images(col, FakeEncoder(), cache_dir=cache_dir)
    assert third.n_computed == 0


# --------------------------------------------------------------------------- 7. compaction racing a reader


def _fill(store: ShardStore, n_shards: int, rows: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    expected = {}
    for s in range(n_shards):
        keys = [f"k{s}-{r}" for r in range(rows)]
        vec = rng.normal(size=(rows, 4)).astype(np.float32)
        store.append(keys, {"v": vec})
        expected.update(zip(keys, vec))
    return expected


def test_a_lookup_survives_a_compaction_between_its_two_reads(tmp_path, monkeypatch):
    store = ShardStore(tmp_path / "s")
    expected = _fill(store, 6)
    real = cache._iter_rows
    calls = []

    def compact_first(path, columns, rows):
        if not calls:
            calls.append(path)
            ShardStore(store.directory).compact()  # another process, as far as this lookup can tell
        return real(path, columns, rows)

    monkeypatch.setattr(cache, "_iter_rows", compact_first)
    keys = list(expected)
    found, values = store.lookup(keys, ["v"])
    assert found.all()
    assert calls
    np.testing.assert_array_equal(values["v"], np.stack([expected[k] for k in keys]))


def _compact_forever(directory: str, until: float) -> None:
    store = ShardStore(directory)
    while time.time() < until:
        store.append([f"x{time.time_ns()}"], {"v": np.ones((1, 4), np.float32)})
        store.compact(max_rows=1_000_000)


def test_lookups_in_one_process_while_another_compacts(tmp_path):
    store = ShardStore(tmp_path / "s")
    expected = _fill(store, 20)
    keys = list(expected)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_compact_forever, args=(str(store.directory), time.time() + 6))
    proc.start()
    try:
        for _ in range(40):
            found, _values = store.lookup(keys, ["v"])
            assert found.all()
            assert store.contains(keys).all()
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()


def test_two_compactions_at_once_do_not_both_run(tmp_path):
    store = ShardStore(tmp_path / "s")
    _fill(store, 4)
    with cache.exclusive(store.directory / cache.COMPACT_LOCK) as held:
        assert held
        assert store.compact() is None  # the lock is taken: nothing happens
    assert store.compact() is not None


# --------------------------------------------------------------------------- 8. passing trouble is not remembered


def test_a_memory_error_while_decoding_is_retried_next_time(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "f"
    for kind in ("circle", "square"):
        write_png(root / f"{kind}.png", kind)
    col = scan_folder(root, cache_dir=cache_dir)
    real = imageio._decode
    bad = content_key((root / "square.png").read_bytes())

    def short_of_memory(fh, head, max_pixels, max_side):
        if content_key(fh.getvalue()) == bad:
            raise MemoryError
        return real(fh, head, max_pixels, max_side)

    monkeypatch.setattr(imageio, "_decode", short_of_memory)
    first = embed_images(col, FakeEncoder(), cache_dir=cache_dir)
    assert dict(zip(first.collection.skipped["relpath"], first.collection.skipped["reason"])) == {
        "square.png": "image too large to decode in memory"
    }
    monkeypatch.setattr(imageio, "_decode", real)
    second = embed_images(col, FakeEncoder(), cache_dir=cache_dir)
    assert second.n_computed == 1
    assert len(second.collection) == 2


def test_a_damaged_file_is_remembered(tmp_path, cache_dir):
    root = tmp_path / "f"
    write_png(root / "a.png", "circle")
    (root / "b.png").write_bytes((root / "a.png").read_bytes()[:200])
    col = scan_folder(root, cache_dir=cache_dir)
    embed_images(col, FakeEncoder(), cache_dir=cache_dir)
    enc = FakeEncoder()
    embed_images(col, enc, cache_dir=cache_dir)
    assert enc.n_preprocessed == 0


# --------------------------------------------------------------------------- the format change


def test_an_older_cache_is_noticed_once_and_never_read(tmp_path, monkeypatch):
    root = tmp_path / "old-cache"
    (root / "fake-colour-v1-d8-s0-px16-1a2b3c4d").mkdir(parents=True)
    monkeypatch.setattr(cache, "_checked_roots", set())
    with pytest.warns(UserWarning, match="made by an older vlexplore"):
        store = store_for(root, "fake-colour-v1-d8-s0-px16")
    assert store.directory.name != "fake-colour-v1-d8-s0-px16-1a2b3c4d"
    assert (root / FORMAT_FILE).read_text().strip() == str(cache.CACHE_FORMAT)
    monkeypatch.setattr(cache, "_checked_roots", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store_for(root, "anything")


def test_a_read_only_cache_embeds_in_memory_and_says_so_once(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "f"
    for kind in ("circle", "square", "stripes"):
        write_png(root / f"{kind}.png", kind)
    col = scan_folder(root, cache_dir=cache_dir)

    def refuse(self, table, name):
        raise CacheError(f"cannot write to the cache folder {self.directory} (no space left on device)")

    monkeypatch.setattr(ShardStore, "_write", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = embed_images(col, FakeEncoder(), cache_dir=cache_dir, batch_size=1)
    assert len(res.collection) == 3
    assert res.views["image"].shape[0] == 3
    assert sum("in memory only" in str(w.message) for w in caught) == 1
