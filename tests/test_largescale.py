"""Scalable k-means, neighbour search and agglomerative clustering (vlexplore.largescale)."""

from __future__ import annotations

import numpy as np
import pytest

from vlexplore import largescale, nouns
from vlexplore.errors import ConfigError
from vlexplore.largescale import (
    _drop_self,
    assign,
    kmeans_at_scale,
    kmeans_backend,
    knn_approximate,
    micro_cluster_linkage,
)


def blobs(k=5, per=200, d=24, spread=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    y = np.repeat(np.arange(k), per)
    X = centres[y] / np.linalg.norm(centres[y], axis=1, keepdims=True) + rng.normal(
        scale=spread, size=(k * per, d)
    )
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def same_partition(a, b) -> bool:
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


@pytest.fixture(params=["faiss", "minibatch"])
def backend(request):
    if request.param == "faiss":
        pytest.importorskip("faiss")
    return request.param


def test_kmeans_at_scale_recovers_blobs_from_a_sample(monkeypatch, backend):
    monkeypatch.setattr(largescale, "KMEANS_SAMPLE", 300)  # fit on 300 of 1000 rows,
    monkeypatch.setattr(largescale, "ASSIGN_BLOCK", 128)  # assign in 8 blocks
    X, y = blobs()
    labels, inertia, used = kmeans_at_scale(X, 5, seed=0, backend=backend)
    assert used == backend
    assert labels.shape == (1000,)
    assert labels.dtype == np.int64
    assert same_partition(labels, y)
    centres = np.stack([X[labels == c].mean(axis=0) for c in range(5)])
    assert inertia == pytest.approx(assign(X, centres)[1], rel=0.02)


def test_kmeans_at_scale_is_seeded(backend):
    X, _ = blobs(spread=0.6)
    a = kmeans_at_scale(X, 7, seed=3, backend=backend)[0]
    b = kmeans_at_scale(X, 7, seed=3, backend=backend)[0]
    np.testing.assert_array_equal(a, b)


def test_kmeans_at_scale_reads_a_memory_mapped_matrix(tmp_path, backend):
    X, y = blobs()
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=X.shape)
    mm[:] = X
    mm.flush()
    labels, _, _ = kmeans_at_scale(np.load(tmp_path / "x.npy", mmap_mode="r"), 5, backend=backend)
    assert same_partition(labels, y)


def test_kmeans_backend_without_faiss(monkeypatch):
    monkeypatch.setattr(largescale, "faiss_module", lambda: None)
    assert kmeans_backend() == "minibatch"
    with pytest.raises(ConfigError, match="faiss-cpu"):
        kmeans_at_scale(blobs()[0], 3, backend="faiss")
    with pytest.raises(ConfigError, match="backend"):
        kmeans_at_scale(blobs()[0], 3, backend="spark")


def test_assign_matches_brute_force():
    rng = np.random.default_rng(1)
    X, C = rng.normal(size=(300, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    d = ((X[:, None, :].astype(np.float64) - C[None]) ** 2).sum(axis=2)
    labels, inertia = assign(X, C)
    np.testing.assert_array_equal(labels, d.argmin(axis=1))
    assert inertia == pytest.approx(d.min(axis=1).sum(), rel=1e-5)


@pytest.mark.parametrize("engine", ["faiss", "nndescent"])
def test_knn_approximate_finds_the_true_neighbours(monkeypatch, engine):
    if engine == "faiss":
        pytest.importorskip("faiss")
    else:
        monkeypatch.setattr(largescale, "faiss_module", lambda: None)
    X, _ = blobs(k=8, per=150, d=16, spread=0.4)
    exact = nouns.knn_indices(X, 10)
    approx = knn_approximate(X, 10)
    assert approx.shape == (1200, 10)
    assert not (approx == np.arange(1200)[:, None]).any()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.tolist(), exact.tolist())])
    assert recall > 0.9


def test_knn_indices_switches_to_approximate_above_the_limit(monkeypatch):
    X, _ = blobs(k=3, per=40)
    calls = []
    monkeypatch.setattr(largescale, "EXACT_KNN_MAX", 100)
    monkeypatch.setattr(
        largescale, "knn_approximate", lambda X, k: calls.append(len(X)) or np.zeros((len(X), k), int)
    )
    assert nouns.knn_indices(X, 5).shape == (120, 5)
    assert calls == [120]


def test_drop_self_keeps_order_and_handles_absent_self_and_padding():
    found = np.array([[0, 5, 6], [3, 1, 4], [7, 8, -1]])
    np.testing.assert_array_equal(_drop_self(found, 2), [[5, 6], [3, 4], [7, 8]])
    np.testing.assert_array_equal(_drop_self(np.array([[2, -1, -1]]), 2), [[2, 2]])


def test_micro_cluster_linkage_maps_every_row(backend, monkeypatch):
    if backend == "minibatch":
        monkeypatch.setattr(largescale, "faiss_module", lambda: None)
    X, y = blobs()
    labels, m = micro_cluster_linkage(X, 5, n_micro=60)
    assert m <= 60
    assert labels.shape == (1000,)
    assert same_partition(labels, y)


@pytest.mark.parametrize("linkage", ["ward", "average"])
def test_weighted_linkage_with_unit_weights_matches_sklearn(linkage):
    from sklearn.cluster import AgglomerativeClustering

    from vlexplore.largescale import weighted_linkage

    X, _ = blobs(k=4, per=15, d=6, spread=0.5, seed=2)
    ours = weighted_linkage(X, np.ones(len(X)), 4, linkage=linkage)
    metric = "euclidean" if linkage == "ward" else "cosine"
    theirs = AgglomerativeClustering(n_clusters=4, linkage=linkage, metric=metric).fit(X).labels_
    assert same_partition(ours, theirs)


def test_weighted_ward_equals_ward_on_repeated_points():
    from sklearn.cluster import AgglomerativeClustering

    from vlexplore.largescale import weighted_linkage

    rng = np.random.default_rng(5)
    P = rng.normal(size=(25, 3))
    w = rng.integers(1, 5, 25)
    repeated = np.repeat(P, w, axis=0)
    theirs = AgglomerativeClustering(n_clusters=3, linkage="ward").fit(repeated).labels_
    ours = weighted_linkage(P, w, 3)
    assert same_partition(np.repeat(ours, w), theirs)


def test_weighted_linkage_refuses_unknown_linkage():
    from vlexplore.largescale import weighted_linkage

    with pytest.raises(ConfigError, match="linkage"):
        weighted_linkage(np.eye(3), np.ones(3), 2, linkage="single")


def test_assign_with_the_rows_squared_lengths_given_is_the_same():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3000, 24)).astype(np.float32)
    C = rng.standard_normal((9, 24)).astype(np.float32)
    w = rng.uniform(0.5, 2, len(X))
    plain = largescale.assign(X, C, w)
    given = largescale.assign(X, C, w, x_sq=largescale.row_squares(X))
    np.testing.assert_array_equal(given[0], plain[0])
    assert given[1] == pytest.approx(plain[1], rel=1e-9)
    wrong = largescale.assign(X, C, w, x_sq=np.zeros(len(X), np.float32))  # the lengths are really used
    assert wrong[1] < plain[1]
