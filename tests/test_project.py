"""Tests of vlexplore.project: UMAP / PCA coordinates, the on-disk cache, the numba cache and warm-up."""

from __future__ import annotations

import errno
import importlib
import os
from pathlib import Path

import numpy as np
import pytest

from vlexplore.errors import ConfigError
from vlexplore.project import UMAP_MIN_POINTS, project_2d, warm_up_umap

pj = importlib.import_module("vlexplore.project")


def blobs(k: int = 3, per: int = 40, d: int = 16, spread: float = 0.05, seed: int = 0):
    """``k`` tight groups of unit vectors → ``(X (k*per, d) float32, y (k*per,))``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    y = np.repeat(np.arange(k), per)
    X = centres[y] / np.linalg.norm(centres[y], axis=1, keepdims=True) + rng.normal(
        scale=spread, size=(k * per, d)
    )
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


@pytest.fixture
def no_numba_cache_env(monkeypatch):
    """``NUMBA_CACHE_DIR`` unset for the test and restored (or removed) afterwards."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", "placeholder")
    monkeypatch.delenv("NUMBA_CACHE_DIR")


@pytest.fixture
def fake_umap(monkeypatch):
    """Replace the UMAP call by a cheap stand-in that records its arguments."""
    calls: list[dict] = []

    def fake(X, **kwargs):
        calls.append({"n": len(X), **kwargs})
        return np.tile(np.arange(len(X), dtype=np.float32)[:, None], (1, 2))

    monkeypatch.setattr(pj, "_umap", fake)
    return calls


# --- real UMAP (numba compiles once per process: a few seconds) ----------------------------------


@pytest.mark.slow
def test_umap_separates_blobs_and_is_seeded():
    X, y = blobs(k=3, per=60)
    a = project_2d(X, seed=1)
    assert a.shape == (180, 2)
    assert a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, project_2d(X, seed=1))
    centres = np.stack([a[y == c].mean(axis=0) for c in range(3)])
    nearest = np.argmin(((a[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y).mean() == 1.0


@pytest.mark.slow
def test_umap_caps_n_neighbors_at_n_minus_one():
    X, _ = blobs(k=2, per=UMAP_MIN_POINTS // 2)
    out = project_2d(X, n_neighbors=500)
    assert out.shape == (UMAP_MIN_POINTS, 2)
    assert np.isfinite(out).all()


# --- the choice of method ------------------------------------------------------------------------


def test_umap_is_used_from_the_threshold_on(fake_umap):
    X, _ = blobs(k=2, per=UMAP_MIN_POINTS // 2)
    project_2d(X, seed=4, n_neighbors=50, min_dist=0.3)
    assert fake_umap == [
        {"n": UMAP_MIN_POINTS, "seed": 4, "n_neighbors": UMAP_MIN_POINTS - 1, "min_dist": 0.3, "knn": "faiss"}
    ]


def test_large_maps_start_umap_from_pca_instead_of_its_spectral_layout(monkeypatch):
    import umap

    seen: list[dict] = []

    class Recording:
        def __init__(self, **kwargs):
            seen.append(kwargs)

        def fit_transform(self, X):
            return np.zeros((len(X), 2), dtype=np.float32)

    monkeypatch.setattr(umap, "UMAP", Recording)
    monkeypatch.setattr(pj, "SPECTRAL_INIT_MAX", 40)
    for n in (40, 41):
        pj._umap(
            np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32),
            seed=0,
            n_neighbors=5,
            min_dist=0.1,
        )
    assert "init" not in seen[0]  # UMAP's own default (spectral) up to the limit
    assert seen[1]["init"] == "pca"


def test_pca_below_the_threshold(fake_umap):
    X, y = blobs(k=2, per=5)
    out = project_2d(X)
    assert fake_umap == []
    assert out.shape == (10, 2)
    assert out.dtype == np.float32
    # The first principal axis separates the two groups.
    assert (np.sign(out[y == 0, 0]) != np.sign(out[y == 1, 0][0])).all()


def test_pca_is_deterministic():
    X, _ = blobs(k=2, per=5)
    np.testing.assert_array_equal(project_2d(X, seed=0), project_2d(X, seed=0))


def test_one_point_maps_to_the_origin():
    np.testing.assert_array_equal(project_2d(np.ones((1, 8))), [[0.0, 0.0]])


def test_two_points_are_placed_apart():
    out = project_2d(np.eye(2, 8))
    assert out.shape == (2, 2)
    assert np.linalg.norm(out[0] - out[1]) > 0.5


def test_one_feature_fills_the_first_axis_only():
    out = project_2d(np.arange(5, dtype=np.float32)[:, None])
    assert np.ptp(out[:, 0]) > 0
    np.testing.assert_array_equal(out[:, 1], 0.0)


def test_identical_points_map_to_the_origin():
    np.testing.assert_array_equal(project_2d(np.ones((4, 3))), np.zeros((4, 2)))


# --- cache ---------------------------------------------------------------------------------------


def test_result_is_cached_under_the_key(tmp_path, monkeypatch):
    X, _ = blobs(k=2, per=5)
    first = project_2d(X, cache_dir=tmp_path, cache_key="abc123")
    path = tmp_path / "projections" / "abc123.npy"
    np.testing.assert_array_equal(np.load(path), first)
    assert [p.name for p in path.parent.iterdir()] == ["abc123.npy"]  # no temp files left

    def boom(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(pj, "_pca", boom)
    np.testing.assert_array_equal(project_2d(X, cache_dir=tmp_path, cache_key="abc123"), first)


def test_no_cache_without_a_key(tmp_path):
    project_2d(blobs(k=2, per=5)[0], cache_dir=tmp_path)
    assert not (tmp_path / "projections").exists()


def test_corrupt_cache_file_is_recomputed(tmp_path):
    X, _ = blobs(k=2, per=5)
    path = tmp_path / "projections" / "k.npy"
    path.parent.mkdir()
    path.write_bytes(b"not a numpy file")
    out = project_2d(X, cache_dir=tmp_path, cache_key="k")
    np.testing.assert_array_equal(np.load(path), out)


def test_cached_array_of_another_size_is_recomputed(tmp_path):
    X, _ = blobs(k=2, per=5)
    path = tmp_path / "projections" / "k.npy"
    path.parent.mkdir()
    np.save(path, np.zeros((3, 2), np.float32))
    out = project_2d(X, cache_dir=tmp_path, cache_key="k")
    assert out.shape == (10, 2)
    assert np.load(path).shape == (10, 2)


# --- numba cache directory and warm-up -----------------------------------------------------------


def test_numba_cache_dir_is_set_under_the_cache_dir(tmp_path, fake_umap, no_numba_cache_env):
    project_2d(blobs(k=2, per=20)[0], cache_dir=tmp_path)
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")
    assert (tmp_path / "numba").is_dir()


def test_a_users_numba_cache_dir_is_kept(tmp_path, fake_umap, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    project_2d(blobs(k=2, per=20)[0], cache_dir=tmp_path)
    assert os.environ["NUMBA_CACHE_DIR"] == "/somewhere/else"


def test_warm_up_runs_both_neighbour_searches(tmp_path, fake_umap, no_numba_cache_env):
    warm_up_umap(tmp_path)
    assert [c.get("force_approximation_algorithm", False) for c in fake_umap] == [False, True]
    assert all(c["n"] >= UMAP_MIN_POINTS for c in fake_umap)
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")


def test_warm_up_defaults_to_the_vlexplore_cache_dir(tmp_path, fake_umap, no_numba_cache_env, monkeypatch):
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(tmp_path / "vx"))
    warm_up_umap()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "vx" / "numba")


# --- bad parameters ------------------------------------------------------------------------------


def test_n_neighbors_below_two_raises():
    with pytest.raises(ConfigError, match="n_neighbors must be >= 2, got 1"):
        project_2d(np.eye(3), n_neighbors=1)


def test_negative_min_dist_raises():
    with pytest.raises(ConfigError, match=r"min_dist must be >= 0, got -0.5"):
        project_2d(np.eye(3), min_dist=-0.5)


@pytest.mark.parametrize("key", ["../escape", "a/b", "", ".hidden"])
def test_unsafe_cache_key_raises(tmp_path, key):
    with pytest.raises(ConfigError, match="cache_key must be a plain file name"):
        project_2d(np.eye(3), cache_dir=tmp_path, cache_key=key)


def test_one_dimensional_input_raises():
    with pytest.raises(ConfigError, match="2-d array"):
        project_2d(np.ones(4))


def test_nan_input_raises():
    X = np.eye(4)
    X[2, 2] = np.nan
    with pytest.raises(ConfigError, match="1 of 4 rows with NaN"):
        project_2d(X)


def test_wide_inputs_are_reduced_to_pca_before_umap(monkeypatch):
    seen = []
    monkeypatch.setattr(
        pj, "_umap", lambda X, **kw: seen.append(X.shape) or np.zeros((len(X), 2), np.float32)
    )
    rng = np.random.default_rng(0)
    project_2d(rng.normal(size=(200, 300)).astype(np.float32))
    project_2d(rng.normal(size=(200, pj.UMAP_PCA_DIMS)).astype(np.float32))
    project_2d(rng.normal(size=(40, 300)).astype(np.float32))  # fewer rows than PCA dimensions: as is
    assert seen == [(200, pj.UMAP_PCA_DIMS), (200, pj.UMAP_PCA_DIMS), (40, 300)]


# --- a read-only or full cache: the map is computed in memory and the caller is told -------------


def _fail_with(err: int):
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    return fail


def test_numba_cache_under_a_file_falls_back_to_a_temporary_folder(tmp_path, fake_umap, no_numba_cache_env):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.warns(pj.CacheWriteWarning, match="numba") as record:
        out = project_2d(blobs(k=2, per=20)[0], cache_dir=blocker / "cache", cache_key="k")
    assert out.shape == (40, 2)
    assert len(fake_umap) == 1
    numba_dir = os.environ["NUMBA_CACHE_DIR"]
    assert numba_dir
    assert not numba_dir.startswith(str(blocker))
    assert os.path.isdir(numba_dir)
    assert len(record) == 2  # the numba folder and the projection file: both could not be written


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_a_failed_projection_save_still_returns_the_map(tmp_path, monkeypatch, err):
    monkeypatch.setattr(pj, "_save", _fail_with(err))
    notes: list[str] = []
    X = np.eye(5, dtype=np.float32)
    out = project_2d(X, cache_dir=tmp_path, cache_key="k", on_cache_error=notes.append)
    np.testing.assert_array_equal(out, project_2d(X))
    assert len(notes) == 1
    assert os.strerror(err) in notes[0]
    with pytest.warns(pj.CacheWriteWarning, match="cannot save the map"):
        project_2d(X, cache_dir=tmp_path, cache_key="k")


def test_a_read_only_numba_folder_is_not_used(tmp_path, fake_umap, no_numba_cache_env, monkeypatch):
    monkeypatch.setattr(pj.tempfile, "TemporaryFile", _fail_with(errno.EROFS))  # the write probe
    notes: list[str] = []
    project_2d(blobs(k=2, per=20)[0], cache_dir=tmp_path, on_cache_error=notes.append)
    assert os.environ["NUMBA_CACHE_DIR"] != str(tmp_path / "numba")
    assert len(notes) == 1
    assert "Read-only" in notes[0]


def test_numba_failing_to_save_compiled_code_keeps_it_in_memory(monkeypatch):
    from numba.core import caching

    monkeypatch.setattr(caching.Cache, "save_overload", caching.Cache.save_overload)  # undone afterwards

    class FullCache(caching.Cache):  # numba's disk cache of one function, on a full disk
        def __init__(self):
            self.disabled = False

        def _save_overload(self, sig, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def disable(self):
            self.disabled = True

    caches = [FullCache(), FullCache()]

    def umap_compiling(X, **kwargs):  # numba compiles two functions, then saves each to the cache
        for cache in caches:
            cache.save_overload(None, None)
        return np.zeros((len(X), 2), np.float32)

    monkeypatch.setattr(pj, "_umap", umap_compiling)
    notes: list[str] = []
    out = project_2d(blobs(k=2, per=20)[0], on_cache_error=notes.append)
    assert out.shape == (40, 2)
    assert all(c.disabled for c in caches)  # no further attempts to write them
    assert len(notes) == 1
    assert "No space left" in notes[0]


@pytest.mark.slow
def test_real_umap_with_a_full_numba_cache(tmp_path):
    """Numba compiles some of UMAP's functions at ``import umap``: a failed save there must not fail."""
    import subprocess
    import sys

    script = """
import errno
import numba.core.caching as caching
def full(self, *args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
caching.IndexDataCacheFile.save = full
import numpy as np
from vlexplore.project import project_2d
notes = []
out = project_2d(np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32), on_cache_error=notes.append)
assert out.shape == (40, 2) and np.isfinite(out).all()
assert len(notes) == 1 and "No space left" in notes[0], notes
print("ok")
"""
    root = str(Path(pj.__file__).resolve().parents[1])
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": root}
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "ok", r.stderr[-3000:]


def test_warm_up_with_an_unwritable_cache_does_not_raise(tmp_path, fake_umap, no_numba_cache_env):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(pj.CacheWriteWarning):
        warm_up_umap(blocker)
    assert len(fake_umap) == 2


def test_umaps_layout_epochs_run_without_the_gil_and_lay_out_the_same(monkeypatch):
    from umap import layouts

    from vlexplore import project

    assert project.layout_epochs_release_the_gil()
    assert project.layout_epochs_release_the_gil()  # once: the second call finds it done
    kernel = layouts._nb_optimize_layout_euclidean_single_epoch
    assert kernel.targetoptions.get("nogil") is True
    assert not layouts._vlexplore_gil_kernel.targetoptions.get("nogil")  # umap's own holds the GIL
    X, _ = blobs(k=3, per=60)
    ours = project._umap(X, seed=3, n_neighbors=10, min_dist=0.1, n_epochs=30)
    monkeypatch.setattr(layouts, "_nb_optimize_layout_euclidean_single_epoch", layouts._vlexplore_gil_kernel)
    shipped = project._umap(X, seed=3, n_neighbors=10, min_dist=0.1, n_epochs=30)
    np.testing.assert_array_equal(ours, shipped)


def test_an_umap_without_the_epoch_kernel_is_left_as_it_is(monkeypatch):
    from umap import layouts

    from vlexplore import project

    monkeypatch.delattr(layouts, "_vlexplore_gil_kernel", raising=False)
    monkeypatch.delattr(layouts, "_optimize_layout_euclidean_single_epoch")
    before = layouts._nb_optimize_layout_euclidean_single_epoch
    assert project.layout_epochs_release_the_gil() is False
    assert layouts._nb_optimize_layout_euclidean_single_epoch is before
