"""UMAP on faiss neighbours (vlexplore.project.cosine_knn, project_2d(knn=...)).

The first map in a new process compiles no nearest-neighbour search.
"""

from __future__ import annotations

import numpy as np
import pytest

from vlexplore.errors import ConfigError
from vlexplore.project import cosine_knn, project_2d

pytest.importorskip("faiss")


def _blobs(n: int = 300, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 4
    labels = rng.integers(0, 3, n)
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def test_cosine_knn_matches_brute_force_with_the_row_first():
    X, _ = _blobs()
    X[1] = X[0]  # a duplicate: each of the two still comes first in its own list
    idx, dist = cosine_knn(X, 10)
    assert idx.shape == dist.shape == (len(X), 10)
    assert (idx[:, 0] == np.arange(len(X))).all()
    assert (dist[:, 0] == 0).all()
    assert (np.diff(dist[:, 1:], axis=1) >= -1e-6).all()
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = U @ U.T
    np.fill_diagonal(sims, -np.inf)
    want = np.sort(1 - np.sort(sims, axis=1)[:, ::-1][:, :9], axis=1)
    np.testing.assert_allclose(dist[2:, 1:], want[2:], atol=1e-4)


def test_project_2d_on_faiss_neighbours_keeps_blobs_apart():
    X, labels = _blobs()
    coords = project_2d(X, knn="faiss")
    assert coords.shape == (len(X), 2)
    assert np.isfinite(coords).all()
    centres = np.array([coords[labels == c].mean(axis=0) for c in range(3)])
    spread = max(float(coords[labels == c].std(axis=0).max()) for c in range(3))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > 2 * spread


def test_project_2d_refuses_an_unknown_neighbour_search():
    with pytest.raises(ConfigError, match="knn"):
        project_2d(np.zeros((40, 4), np.float32), knn="annoy")
