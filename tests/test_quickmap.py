"""The quick first layout (vlexplore.quickmap.quick_layout): shape, determinism, quality, and no numba."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import loaded_after
from sklearn.neighbors import NearestNeighbors

from vlexplore import largescale, quickmap
from vlexplore import project as pj
from vlexplore.errors import ConfigError
from vlexplore.quickmap import quick_layout

REPO = Path(__file__).resolve().parent.parent


def _blobs(n: int = 2000, d: int = 128, k: int = 20, seed: int = 0):
    """``k`` unit-normalised Gaussian blobs that overlap in a 2-d PCA (as bench/first_map.py's)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    labels = rng.integers(0, k, n)
    X = centres[labels] + rng.normal(scale=1.2, size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), labels


def same_blob_10nn(coords: np.ndarray, labels: np.ndarray) -> float:
    idx = NearestNeighbors(n_neighbors=11).fit(coords).kneighbors(coords, return_distance=False)[:, 1:]
    return float((labels[idx] == labels[:, None]).mean())


@pytest.fixture(scope="module")
def blobs():
    return _blobs()


def test_quick_layout_is_finite_float32_and_deterministic(blobs):
    X, _ = blobs
    a = quick_layout(X, seed=3)
    b = quick_layout(X, seed=3)
    assert a.shape == (len(X), 2)
    assert a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, quick_layout(X, seed=4))


def test_quick_layout_keeps_blobs_together_where_a_2d_pca_mixes_them(blobs):
    X, labels = blobs
    quick = same_blob_10nn(quick_layout(X), labels)
    flat = same_blob_10nn(pj._pca(X, 0), labels)
    assert flat < 0.9  # the blobs overlap in two principal components...
    assert quick >= 0.97  # ...and are islands of their own here (1.0 at 10,000 x 512, bench/first_map.py)


def test_the_force_layout_steps_improve_on_the_centres_alone(blobs):
    X, labels = blobs
    alone = quick_layout(X, epochs=0)
    refined = quick_layout(X)
    assert np.isfinite(alone).all()
    # the centres' layout puts every point beside its centre; the epochs spread each blob into a patch
    spread = [np.linalg.norm(c - c.mean(axis=0), axis=1).mean() for c in (alone, refined)]
    spans = [np.ptp(c, axis=0).max() for c in (alone, refined)]
    assert spread[1] / spans[1] > spread[0] / spans[0]
    assert same_blob_10nn(refined, labels) >= 0.97


def test_above_the_refine_limit_the_centres_layout_is_returned(blobs, monkeypatch):
    X, _ = blobs
    alone = quick_layout(X, epochs=0)
    monkeypatch.setattr(quickmap, "QUICK_REFINE_MAX", len(X) - 1)
    np.testing.assert_array_equal(quick_layout(X), alone)


def test_small_and_degenerate_inputs_match_project_2d():
    few = np.random.default_rng(0).normal(size=(pj.UMAP_MIN_POINTS - 1, 8)).astype(np.float32)
    np.testing.assert_array_equal(quick_layout(few), pj.project_2d(few))
    same = np.ones((100, 8), np.float32)
    assert (quick_layout(same) == 0).all()
    assert quick_layout(np.ones((1, 3), np.float32)).shape == (1, 2)
    with pytest.raises(ConfigError):
        quick_layout(np.zeros((0, 4), np.float32))


def test_without_faiss_the_layout_still_keeps_blobs_together(blobs, monkeypatch):
    X, labels = blobs
    monkeypatch.setattr(largescale, "faiss_module", lambda: None)
    coords = quick_layout(X)
    assert np.isfinite(coords).all()
    assert same_blob_10nn(coords, labels) >= 0.97


def test_a_quick_layout_compiles_nothing():
    """No numba, umap or pynndescent is imported: nothing to compile in a new process."""
    code = (
        "import numpy as np; from vlexplore.quickmap import quick_layout; "
        "quick_layout(np.random.default_rng(0).normal(size=(500, 64)).astype(np.float32))"
    )
    assert loaded_after(code, ("numba", "umap", "pynndescent")) == []


def test_bad_parameters_are_refused():
    X, _ = _blobs(n=100, d=8)
    with pytest.raises(ConfigError, match="n_neighbors"):
        quick_layout(X, n_neighbors=1)
    with pytest.raises(ConfigError, match="epochs"):
        quick_layout(X, epochs=-1)
    assert pj.quick_layout is quick_layout
