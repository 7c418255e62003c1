"""Tests of vlexplore.cluster: every method on separable blobs, prototypes, input checks."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from vlexplore import largescale
from vlexplore.cluster import (
    AgglomerativeClusterer,
    ClusterResult,
    HDBSCANClusterer,
    KMeansClusterer,
    PrototypeClusterer,
    cluster_vectors,
    default_min_cluster_size,
    make_clusterer,
    suggest_k,
)
from vlexplore.config import ClusterConfig
from vlexplore.errors import ConfigError

cl = importlib.import_module("vlexplore.cluster")  # the package (vlexplore exports a function of that name)
km_mod = importlib.import_module("vlexplore.cluster.kmeans")
hier_mod = importlib.import_module("vlexplore.cluster.hierarchy")
# --- shared fixtures (kept here: conftest.py belongs to the whole suite) -----------------------


@pytest.fixture(autouse=True)
def _one_thread():
    """Small arrays gain nothing from threads; on a shared 2-core box OpenMP spinning makes them slow."""
    with threadpool_limits(1):
        yield


def blobs(k: int = 4, per: int = 50, d: int = 32, spread: float = 0.05, seed: int = 0):
    """``k`` tight groups of unit vectors around unit centres → ``(X (k*per, d), y, centres (k, d))``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(k), per)
    X = centres[y] + rng.normal(scale=spread, size=(k * per, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y, centres.astype(np.float32)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` group the points identically (ids may differ)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# --- k-means -------------------------------------------------------------------------------------


def test_kmeans_recovers_blobs():
    X, y, _ = blobs()
    est = KMeansClusterer(k=4, seed=0).fit(X)
    assert est.labels_.dtype == np.int64
    assert est.n_clusters_ == 4
    assert same_partition(est.labels_, y)
    assert est.inertia_ > 0


def test_kmeans_is_deterministic_for_a_seed():
    X, _, _ = blobs(k=6, spread=0.3)
    a = KMeansClusterer(k=6, seed=3).fit(X).labels_
    b = KMeansClusterer(k=6, seed=3).fit(X).labels_
    np.testing.assert_array_equal(a, b)


def test_kmeans_without_k_uses_suggested_k():
    X, y, _ = blobs(k=5)
    est = KMeansClusterer(seed=0).fit(X)
    assert est.n_clusters_ == 5
    assert same_partition(est.labels_, y)


def test_kmeans_normalises_rows_before_clustering():
    X, y, _ = blobs(k=3)
    scales = np.random.default_rng(1).uniform(0.1, 10, size=(len(X), 1)).astype(np.float32)
    est = KMeansClusterer(k=3, seed=0).fit(X * scales)
    assert same_partition(est.labels_, y)


def test_kmeans_switches_to_minibatch_above_threshold(monkeypatch):
    import sklearn.cluster

    used = []

    class Spy(sklearn.cluster.MiniBatchKMeans):
        def fit(self, X, y=None, sample_weight=None):
            used.append(len(X))
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(sklearn.cluster, "MiniBatchKMeans", Spy)
    monkeypatch.setattr(km_mod, "MINIBATCH_THRESHOLD", 100)
    monkeypatch.setattr(largescale, "faiss_module", lambda: None)  # as on an install without faiss
    X, y, _ = blobs(k=4, per=50)
    est = KMeansClusterer(k=4, seed=0).fit(X)
    assert used == [200]
    assert est.backend_ == "minibatch"
    assert same_partition(est.labels_, y)


def test_kmeans_reports_its_backend_and_restarts(monkeypatch):
    pytest.importorskip("faiss")
    X, y, _ = blobs(k=4, per=50)
    result = cluster_vectors(X, ClusterConfig(method="kmeans", k=4))
    assert result.info == {"kmeans_backend": "faiss", "kmeans_n_init": 50}  # 200 rows: many restarts
    assert same_partition(result.labels, y)
    monkeypatch.setattr(largescale, "faiss_module", lambda: None)
    assert cluster_vectors(X, ClusterConfig(method="kmeans", k=4, n_init=3)).info == {
        "kmeans_backend": "sklearn",
        "kmeans_n_init": 3,
    }


def test_kmeans_single_point_is_one_cluster():
    est = KMeansClusterer().fit(np.ones((1, 8), dtype=np.float32))
    np.testing.assert_array_equal(est.labels_, [0])
    assert est.n_clusters_ == 1


def test_init_only_stores_parameters():
    est = KMeansClusterer(k=-3, seed=7)
    assert (est.k, est.seed) == (-3, 7)
    with pytest.raises(ConfigError, match="-3"):
        est.fit(blobs()[0])


def test_fit_returns_self():
    X, _, _ = blobs()
    for est in (KMeansClusterer(k=2), AgglomerativeClusterer(k=2), HDBSCANClusterer()):
        assert est.fit(X) is est


# --- prototype-seeded k-means --------------------------------------------------------------------


def test_kmeans_seeded_by_prototypes_in_the_same_space_keeps_their_order():
    X, y, centres = blobs(k=4)
    order = np.array([2, 0, 3, 1])
    est = KMeansClusterer(prototype_embeddings=centres[order]).fit(X)
    assert est.n_clusters_ == 4
    np.testing.assert_array_equal(est.labels_, np.argsort(order)[y])


def test_kmeans_seeded_through_a_joint_space_keeps_prototype_order():
    X, y, _ = blobs(k=3, d=32)
    J, _, jc = blobs(k=3, d=16, seed=5)  # a different space, same grouping of rows
    est = KMeansClusterer(prototype_embeddings=jc[::-1]).fit(X, joint=J)
    np.testing.assert_array_equal(est.labels_, 2 - y)


def test_kmeans_seeded_with_k_unequal_to_prototypes_raises():
    X, _, centres = blobs(k=4)
    with pytest.raises(ConfigError, match="3 clusters asked for, but 4 prototypes"):
        KMeansClusterer(k=3, prototype_embeddings=centres).fit(X)


def test_kmeans_seeded_with_wrong_dimension_raises():
    X, _, _ = blobs(d=32)
    with pytest.raises(ConfigError, match="16 dimensions but X has 32"):
        KMeansClusterer(prototype_embeddings=np.ones((2, 16), np.float32)).fit(X)


# --- suggest_k ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 7])
def test_suggest_k_finds_the_number_of_blobs(k):
    X, _, _ = blobs(k=k, per=40, spread=0.1, seed=k)
    assert suggest_k(X, seed=0) == k


def test_suggest_k_is_seeded():
    X, _, _ = blobs(k=6, spread=0.6, per=200)
    assert suggest_k(X, seed=1) == suggest_k(X, seed=1)


@pytest.mark.parametrize("n", [1, 2])
def test_suggest_k_on_tiny_input_is_one(n):
    assert suggest_k(np.eye(n, 4, dtype=np.float32)) == 1


def test_suggest_k_on_identical_rows_is_one():
    assert suggest_k(np.ones((50, 8), dtype=np.float32)) == 1


def test_suggest_k_at_10k_builds_its_tree_on_a_sample(monkeypatch):
    import scipy.cluster.hierarchy

    seen = []
    real = scipy.cluster.hierarchy.linkage
    monkeypatch.setattr(
        scipy.cluster.hierarchy, "linkage", lambda S, **kw: seen.append(len(S)) or real(S, **kw)
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10_000, 512)).astype(np.float32)
    assert 1 <= suggest_k(X) <= 30
    assert seen == [cl.SUGGEST_K_SAMPLE]


# --- agglomerative --------------------------------------------------------------------------------


@pytest.mark.parametrize("linkage", ["ward", "average"])
def test_agglomerative_recovers_blobs(linkage):
    X, y, _ = blobs(k=4)
    est = AgglomerativeClusterer(k=4, linkage=linkage).fit(X)
    assert est.n_clusters_ == 4
    assert same_partition(est.labels_, y)


@pytest.mark.parametrize("linkage", ["ward", "average"])
def test_agglomerative_past_its_limit_links_micro_clusters(monkeypatch, linkage):
    monkeypatch.setattr(hier_mod, "AGGLOMERATIVE_MAX_N", 100)
    X, y, _ = blobs(k=3, per=40)
    est = AgglomerativeClusterer(k=3, linkage=linkage).fit(X)
    assert est.micro_clusters_ == 12  # n // 10
    assert same_partition(est.labels_, y)
    assert cluster_vectors(X, ClusterConfig(method="agglomerative", k=3)).info == {"micro_clusters": 12}
    monkeypatch.setattr(hier_mod, "AGGLOMERATIVE_MAX_N", 20_000)
    assert AgglomerativeClusterer(k=3).fit(X).micro_clusters_ is None


def test_agglomerative_bad_linkage_raises():
    with pytest.raises(ConfigError, match="'single'"):
        AgglomerativeClusterer(k=2, linkage="single").fit(blobs()[0])


def test_agglomerative_single_point():
    est = AgglomerativeClusterer().fit(np.ones((1, 4)))
    np.testing.assert_array_equal(est.labels_, [0])


# --- HDBSCAN ------------------------------------------------------------------------------------


def test_hdbscan_finds_blobs_and_marks_scattered_points_as_noise():
    X, y, _ = blobs(k=3, per=60, d=32, spread=0.03)
    rng = np.random.default_rng(9)
    scatter = rng.normal(size=(15, 32)).astype(np.float32)
    Xa = np.vstack([X, scatter / np.linalg.norm(scatter, axis=1, keepdims=True)])
    est = HDBSCANClusterer(min_cluster_size=10, reducer="pca").fit(Xa)
    assert est.n_clusters_ == 3
    assert same_partition(est.labels_[: len(X)], y)
    assert (est.labels_[len(X) :] == -1).sum() >= 12


def test_hdbscan_runs_on_a_pca_reduction():
    X, _, _ = blobs(k=3, d=64)
    assert HDBSCANClusterer(reduce_dims=5).fit(X).n_components_ == 5
    assert HDBSCANClusterer(reduce_dims=10).fit(X[:, :8]).n_components_ == 8


@pytest.mark.parametrize(("n", "expected"), [(3, 5), (100, 5), (1234, 61), (10_000, 500), (10**7, 5000)])
def test_default_min_cluster_size(n, expected):
    assert default_min_cluster_size(n) == expected


def test_hdbscan_with_fewer_points_than_min_cluster_size_is_all_noise():
    est = HDBSCANClusterer().fit(blobs(k=1, per=4)[0])
    np.testing.assert_array_equal(est.labels_, [-1, -1, -1, -1])
    assert est.n_clusters_ == 0


def test_hdbscan_min_cluster_size_too_small_raises():
    with pytest.raises(ConfigError, match="min_cluster_size must be >= 2, got 1"):
        HDBSCANClusterer(min_cluster_size=1).fit(blobs()[0])


def test_hdbscan_reduce_dims_too_small_raises():
    with pytest.raises(ConfigError, match="reduce_dims must be >= 2, got 1"):
        HDBSCANClusterer(reduce_dims=1).fit(blobs()[0])


# --- prototypes ---------------------------------------------------------------------------------


def test_prototypes_assign_each_image_to_its_most_similar_prototype():
    X, y, centres = blobs(k=4)
    est = PrototypeClusterer(prototype_embeddings=centres).fit(X)
    np.testing.assert_array_equal(est.labels_, y)
    np.testing.assert_allclose(est.similarity_, np.einsum("ij,ij->i", X, centres[y]), atol=1e-5)
    assert est.similarity_.dtype == np.float32
    assert est.n_clusters_ == 4


def test_prototypes_below_threshold_go_to_other():
    X, y, centres = blobs(k=2, d=7)
    X, centres = np.pad(X, ((0, 0), (0, 1))), np.pad(centres, ((0, 0), (0, 1)))
    far = np.zeros((3, 8), np.float32)
    far[:, 7] = 1.0  # cosine 0 with every prototype
    est = PrototypeClusterer(prototype_embeddings=centres, threshold=0.5).fit(np.vstack([X, far]))
    np.testing.assert_array_equal(est.labels_[len(X) :], [-1, -1, -1])
    np.testing.assert_array_equal(est.labels_[: len(X)], y)
    np.testing.assert_allclose(est.similarity_[len(X) :], 0.0, atol=1e-6)


def test_prototypes_compare_through_the_joint_view():
    X, _, _ = blobs(k=2, d=32)
    J, yj, jc = blobs(k=3, d=16, per=len(X) // 3 + 1, seed=4)
    J, yj = J[: len(X)], yj[: len(X)]
    est = PrototypeClusterer(prototype_embeddings=jc, refine=False).fit(X, joint=J)
    np.testing.assert_array_equal(est.labels_, yj)


def test_discover_rest_clusters_other_after_the_prototypes():
    X, y, centres = blobs(k=4)
    est = PrototypeClusterer(prototype_embeddings=centres[:2], threshold=0.9, discover_rest=True, k=2).fit(X)
    assert est.n_clusters_ == 4
    np.testing.assert_array_equal(est.labels_[y < 2], y[y < 2])
    rest = est.labels_[y >= 2]
    assert set(rest.tolist()) == {2, 3}
    assert same_partition(rest, y[y >= 2])


def test_discover_rest_caps_k_at_the_number_of_other_images():
    X, _, centres = blobs(k=2, d=6)
    X, centres = np.pad(X, ((0, 0), (0, 2))), np.pad(centres, ((0, 0), (0, 2)))
    far = np.array(
        [[0, 0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0.6, 0.8]], np.float32
    )  # cosine 0 to prototypes
    est = PrototypeClusterer(prototype_embeddings=centres, threshold=0.5, discover_rest=True, k=5)
    est.fit(np.vstack([X, far]))
    assert est.n_clusters_ == 4
    assert sorted(est.labels_[len(X) :].tolist()) == [2, 3]
    assert (est.labels_[: len(X)] < 2).all()


def test_identical_prototypes_do_not_crash_and_the_first_wins():
    X, y, centres = blobs(k=2)
    P = np.vstack([centres[0], centres[0], centres[1]])
    est = PrototypeClusterer(prototype_embeddings=P, refine=False).fit(X)
    assert set(est.labels_.tolist()) == {0, 2}
    refined = PrototypeClusterer(prototype_embeddings=P).fit(X)
    np.testing.assert_array_equal(refined.labels_[y == 1], 2)


def arc(angles_deg) -> np.ndarray:
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


@pytest.fixture
def biased_prototypes():
    """Two arcs of images (around 0° and 90°) and two prototypes at 60° and 120°.

    Zero-shot, the images of the second arc below 90° are nearer to the first prototype.
    """
    X = arc(np.concatenate([np.linspace(-20, 20, 50), np.linspace(70, 110, 50)]))
    y = np.repeat([0, 1], 50)
    return X, y, arc([60, 120])


def test_zero_shot_prototypes_follow_the_text_boundary(biased_prototypes):
    X, y, P = biased_prototypes
    est = PrototypeClusterer(prototype_embeddings=P, refine=False).fit(X)
    assert (est.labels_ != y).sum() == 25


def test_refined_prototypes_follow_the_image_space_and_keep_their_ids(biased_prototypes):
    X, y, P = biased_prototypes
    est = PrototypeClusterer(prototype_embeddings=P).fit(X)
    np.testing.assert_array_equal(est.labels_, y)
    np.testing.assert_allclose(est.similarity_, np.einsum("ij,ij->i", X, P[y]), atol=1e-6)


def test_refinement_runs_in_x_when_a_joint_view_is_given(biased_prototypes):
    J, y, P = biased_prototypes
    X, yx, _ = blobs(k=2, per=50, d=16)
    est = PrototypeClusterer(prototype_embeddings=P).fit(X, joint=J)
    np.testing.assert_array_equal(est.labels_, yx)
    assert (yx == y).all()


def test_refinement_leaves_other_images_alone(biased_prototypes):
    X, y, P = biased_prototypes
    est = PrototypeClusterer(prototype_embeddings=P, threshold=0.64).fit(X)
    other = np.einsum("ij,ij->i", X, P[np.argmax(X @ P.T, axis=1)]) < 0.64
    assert other.any()
    assert (~other & (y == 0)).any()
    np.testing.assert_array_equal(est.labels_[other], -1)
    np.testing.assert_array_equal(est.labels_[~other], y[~other])


def test_prototypes_dimension_mismatch_with_joint_raises():
    X, _, _ = blobs(d=32)
    with pytest.raises(ConfigError, match="16 dimensions but the joint view has 32"):
        PrototypeClusterer(prototype_embeddings=np.ones((2, 16))).fit(X)


def test_empty_prototypes_raise():
    with pytest.raises(ConfigError, match="empty"):
        PrototypeClusterer(prototype_embeddings=np.zeros((0, 32))).fit(blobs()[0])


def test_missing_prototype_embeddings_raise():
    cfg = ClusterConfig(method="prototypes", prototypes=("dog", "cat"))
    with pytest.raises(ConfigError, match="prototype_embeddings is empty"):
        cluster_vectors(blobs()[0], cfg)


def test_joint_with_other_row_count_raises():
    X, _, centres = blobs(k=2)
    with pytest.raises(ConfigError, match="joint has 10 rows but X has 100"):
        PrototypeClusterer(prototype_embeddings=centres).fit(X, joint=X[:10])


def test_prototype_threshold_outside_cosine_range_raises():
    X, _, centres = blobs(k=2)
    with pytest.raises(ConfigError, match=r"1.5"):
        PrototypeClusterer(prototype_embeddings=centres, threshold=1.5).fit(X)


def test_prototypes_with_a_single_image():
    _, _, centres = blobs(k=3)
    est = PrototypeClusterer(prototype_embeddings=centres).fit(centres[1:2])
    np.testing.assert_array_equal(est.labels_, [1])


# --- input checks -------------------------------------------------------------------------------


def test_one_dimensional_x_raises():
    with pytest.raises(ConfigError, match=r"2-d array.*\(5,\)"):
        KMeansClusterer(k=2).fit(np.ones(5))


def test_empty_x_raises():
    with pytest.raises(ConfigError, match="no rows"):
        KMeansClusterer(k=2).fit(np.zeros((0, 8)))


def test_nan_rows_raise_with_their_count():
    X, _, _ = blobs()
    X[[3, 7], 0] = np.nan
    with pytest.raises(ConfigError, match=r"2 of 200 rows with NaN.*row 3"):
        KMeansClusterer(k=2).fit(X)


def test_infinite_rows_raise():
    X, _, _ = blobs()
    X[5, 1] = np.inf
    with pytest.raises(ConfigError, match="1 of 200 rows"):
        HDBSCANClusterer().fit(X)


def test_k_larger_than_n_raises():
    with pytest.raises(ConfigError, match="5 clusters asked for, but there are only 3 images"):
        KMeansClusterer(k=5).fit(np.eye(3, 4))


def test_non_numeric_x_raises():
    with pytest.raises(ConfigError, match="numeric"):
        KMeansClusterer(k=2).fit([["a", "b"], ["c", "d"]])


# --- the one k-means helper ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"), [(1, 50), (80, 50), (2000, 50), (10_000, 10), (20_000, 5), (10**6, 5)]
)
def test_default_n_init_gives_small_folders_more_restarts(n, expected):
    assert cl.default_n_init(n) == expected


@pytest.fixture(params=["faiss", "sklearn", "minibatch"])
def km_backend(request):
    if request.param == "faiss":
        pytest.importorskip("faiss")
    return request.param


def test_kmeans_helper_recovers_blobs_on_every_backend(km_backend):
    X, y, _ = blobs(k=5, per=60)
    fit = cl.kmeans(X, 5, seed=0, backend=km_backend)
    assert fit.backend == km_backend
    assert fit.labels.dtype == np.int64
    assert fit.centres.shape == (5, 32)
    assert same_partition(fit.labels, y)
    d = ((X - fit.centres[fit.labels]) ** 2).sum()
    assert fit.inertia == pytest.approx(d, rel=1e-3)


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_kmeans_helper_weights_equal_repeated_rows(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    km_backend = backend
    X, _y, _ = blobs(k=3, per=30, spread=0.1)
    w = np.random.default_rng(2).integers(1, 4, len(X))
    fit = cl.kmeans(X, 3, seed=0, sample_weight=w, backend=km_backend)
    rep = cl.kmeans(np.repeat(X, w, axis=0), 3, seed=0, backend=km_backend)
    assert same_partition(np.repeat(fit.labels, w), rep.labels)
    assert fit.inertia == pytest.approx(rep.inertia, rel=1e-3)


def test_kmeans_helper_keeps_the_order_of_given_centres(km_backend):
    X, y, centres = blobs(k=4)
    order = np.array([3, 1, 0, 2])
    fit = cl.kmeans(X, 4, init=centres[order], backend=km_backend)
    np.testing.assert_array_equal(fit.labels, np.argsort(order)[y])
    assert fit.n_init == 1


def test_kmeans_helper_refines_on_every_row_after_a_sample(monkeypatch):
    pytest.importorskip("faiss")
    monkeypatch.setattr(km_mod, "POINTS_PER_CENTRE", 10)  # each restart sees 40 of 400 rows
    X, _y, _ = blobs(k=4, per=100, spread=0.15)
    fit = cl.kmeans(X, 4, seed=0)
    exact = cl.kmeans(X, 4, seed=0, backend="sklearn")
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(fit.labels, exact.labels) > 0.97  # the same optimum up to a boundary row
    assert fit.inertia == pytest.approx(exact.inertia, rel=1e-3)


def test_restarts_side_by_side_give_what_one_after_another_gives(monkeypatch):
    pytest.importorskip("faiss")
    monkeypatch.setattr(km_mod, "POINTS_PER_CENTRE", 10)  # restarts on a sample, judged on every row
    X, _y, _ = blobs(k=6, per=60, spread=0.3, seed=4)
    monkeypatch.setattr(km_mod, "_cores", lambda: 1)
    one = cl.kmeans(X, 6, seed=3, n_init=5)
    monkeypatch.setattr(km_mod, "_cores", lambda: 2)
    threads: list[str] = []
    real = km_mod.largescale.assign

    def spy(*args, **kwargs):
        threads.append(__import__("threading").current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(km_mod.largescale, "assign", spy)
    two = cl.kmeans(X, 6, seed=3, n_init=5)
    assert any(name != "MainThread" for name in threads)  # the restarts were judged in the pool
    np.testing.assert_array_equal(two.labels, one.labels)
    np.testing.assert_array_equal(two.centres, one.centres)


def test_restarts_above_judge_rows_are_judged_on_one_subset_and_the_best_there_is_refined(monkeypatch):
    pytest.importorskip("faiss")
    monkeypatch.setattr(km_mod, "POINTS_PER_CENTRE", 10)  # restarts on a sample of 60 rows
    monkeypatch.setattr(km_mod, "JUDGE_ROWS", 150)
    X, _y, _ = blobs(k=6, per=60, spread=0.9, seed=4)  # 360 rows
    judged: list[tuple[bytes, np.ndarray, float]] = []
    real_assign, real_lloyd = km_mod.largescale.assign, km_mod.lloyd

    def spy(Xa, C, *args, **kwargs):
        out = real_assign(Xa, C, *args, **kwargs)
        if len(Xa) == 150:
            judged.append((np.ascontiguousarray(Xa).tobytes(), np.array(C), out[1]))
        return out

    starts: list[tuple[np.ndarray, object]] = []

    def refine(Xf, C, *args, **kwargs):
        starts.append((np.array(C), kwargs.get("first")))
        return real_lloyd(Xf, C, *args, **kwargs)

    monkeypatch.setattr(km_mod.largescale, "assign", spy)
    monkeypatch.setattr(km_mod, "lloyd", refine)
    fit = cl.kmeans(X, 6, seed=3, n_init=5)
    assert len(judged) == 5
    assert len({rows for rows, _, _ in judged}) == 1
    best = min(range(5), key=lambda r: judged[r][2])
    ((start, first),) = starts
    np.testing.assert_array_equal(start, judged[best][1])  # the subset's best restart is refined
    assert first is None  # its labels on every row are measured by the refinement itself
    D = ((X[:, None, :] - fit.centres[None]) ** 2).sum(-1)
    assert (D[np.arange(len(X)), fit.labels] <= D.min(axis=1) + 1e-4).all()  # every row at its nearest centre
    assert fit.inertia == pytest.approx(D.min(axis=1).sum(), rel=1e-4)


def test_refinement_stops_when_a_step_gains_less_than_the_tolerance(monkeypatch):
    pytest.importorskip("faiss")
    monkeypatch.setattr(km_mod, "POINTS_PER_CENTRE", 10)  # each restart sees a sample: refinement runs
    X, _y, _ = blobs(k=4, per=100, spread=0.6, seed=5)
    steps: list[int] = []
    real = km_mod.lloyd

    def counting(*args, **kwargs):
        fit = real(*args, **kwargs)
        steps.append(fit.steps)
        return fit

    monkeypatch.setattr(km_mod, "lloyd", counting)
    monkeypatch.setattr(km_mod, "REFINE_TOL", 0.0)
    cl.kmeans(X, 4, seed=0, n_init=1)
    monkeypatch.setattr(km_mod, "REFINE_TOL", 0.5)  # any step gains less than half the loss
    cl.kmeans(X, 4, seed=0, n_init=1)
    assert steps[1] == 2  # one step taken, the second's gain measured and found too small
    assert steps[0] > steps[1]
    cl.kmeans(X, 4, seed=0, n_init=3)
    assert steps[2] == 1  # the winning restart's labels (from judging it on every row) are the first step's


def plain_lloyd(X, C, w, iters, tol):
    """Weighted Lloyd steps in float64 numpy, member means summed afresh each step (the reference)."""
    X64, C, prev, prev_loss = X.astype(np.float64), C.astype(np.float64), None, np.inf
    for _ in range(iters):
        d = ((X64[:, None, :] - C[None]) ** 2).sum(-1)
        labels = d.argmin(1)
        loss = float((w * d[np.arange(len(X)), labels]).sum())
        if prev is not None and (np.array_equal(labels, prev) or prev_loss - loss < tol * prev_loss):
            return C, labels
        for c in range(len(C)):
            if (labels == c).any():
                C[c] = np.average(X64[labels == c], axis=0, weights=w[labels == c])
        prev, prev_loss = labels, loss
    return C, None


@pytest.mark.parametrize("bounds", [True, False])
@pytest.mark.parametrize("tol", [0.0, 5e-4])
def test_refinement_measures_the_rows_that_may_move_and_matches_plain_lloyd(monkeypatch, tol, bounds):
    lloyd_mod = importlib.import_module("vlexplore.cluster.lloyd")
    monkeypatch.setattr(lloyd_mod, "BOUND_CELLS", 1 << 24 if bounds else 0)
    measured: list[int] = []
    real = lloyd_mod._distances
    monkeypatch.setattr(
        lloyd_mod,
        "_distances",
        lambda X, rows, *a: measured.append(len(X) if rows is None else len(rows)) or real(X, rows, *a),
    )
    X, _y, _ = blobs(k=5, per=80, d=16, spread=0.5, seed=3)
    rng = np.random.default_rng(4)
    w = rng.integers(1, 5, len(X)).astype(np.float64)
    C0 = X[rng.choice(len(X), 6, replace=False)].copy()
    C0[5] = 50.0  # far from every row: stays empty, and stays put
    fit = lloyd_mod.lloyd(X, C0, w, 30, tol, largescale.row_squares(X))
    C_ref, labels_ref = plain_lloyd(X, C0, w, 30, tol)
    np.testing.assert_allclose(fit.centres, C_ref, atol=1e-4)
    np.testing.assert_array_equal(fit.centres[5], C0[5])
    np.testing.assert_array_equal(fit.labels, labels_ref)
    assert fit.loss == pytest.approx(float((w * ((X - fit.centres[fit.labels]) ** 2).sum(1)).sum()), rel=1e-4)
    if bounds:  # every row at first, then only those near a boundary
        assert measured[0] == len(X)
        assert len(measured) == fit.steps > 2
        assert measured[-1] < len(X) // 2, measured
    else:
        assert not measured


@pytest.mark.parametrize(
    ("d", "k", "floor", "expected"),
    [(512, 45, 128, 128), (512, 100, 128, 200), (64, 10, 128, 64), (512, 45, 0, 512)],
)
def test_restart_dim_is_the_floor_or_two_per_centre_and_never_more_than_the_rows_have(
    monkeypatch, d, k, floor, expected
):
    monkeypatch.setattr(km_mod, "RESTART_MIN_DIM", floor)
    assert km_mod.restart_dim(d, k) == expected


def test_principal_basis_spans_the_directions_the_rows_vary_in():
    rng = np.random.default_rng(0)
    A = np.linalg.qr(rng.normal(size=(50, 3)))[0].T  # three orthonormal directions in 50-d
    S = (rng.normal(size=(400, 3)) * [5.0, 3.0, 2.0]) @ A + 0.01 * rng.normal(size=(400, 50)) + 1.0
    mu, V = km_mod._principal_basis(S.astype(np.float32), 3)
    assert V.shape == (50, 3)
    assert V.dtype == np.float32
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(mu, S.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(A @ V @ V.T, A, atol=1e-3)  # the three directions lie in the basis
    spread = ((S - mu) @ V).var(axis=0)
    assert spread[0] > spread[1] > spread[2] > 1.0  # the largest first


def _faiss_dims(monkeypatch) -> list[int]:
    """The dimensions of every ``faiss.Kmeans`` the helper makes from now on."""
    faiss = pytest.importorskip("faiss")
    dims: list[int] = []
    real = faiss.Kmeans

    def spy(d, *args, **kwargs):
        dims.append(d)
        return real(d, *args, **kwargs)

    monkeypatch.setattr(faiss, "Kmeans", spy)
    return dims


@pytest.mark.parametrize("scale", [False, True])
def test_restarts_run_on_principal_directions_and_return_full_space_centres(monkeypatch, scale):
    dims = _faiss_dims(monkeypatch)
    monkeypatch.setattr(km_mod, "RESTART_MIN_DIM", 8)  # k = 5: two per centre, 10 of 300 dimensions
    monkeypatch.setattr(km_mod, "POINTS_PER_CENTRE", 40)  # restarts on a sample of 200 rows
    if scale:  # above the sample size no refinement: the restarts' member means are the centres
        monkeypatch.setattr(largescale, "KMEANS_SAMPLE", 200)
    X, y, _ = blobs(k=5, per=80, d=300, spread=0.03, seed=7)
    fit = cl.kmeans(X, 5, seed=0)
    assert dims
    assert set(dims) == {10}
    assert same_partition(fit.labels, y)
    assert fit.centres.shape == (5, 300)
    means = np.stack([X[fit.labels == c].mean(axis=0) for c in range(5)])
    np.testing.assert_allclose(fit.centres, means, atol=0.02 if scale else 1e-4)
    monkeypatch.setattr(km_mod, "RESTART_MIN_DIM", 0)
    full = cl.kmeans(X, 5, seed=0)
    assert dims[-1] == 300
    assert fit.inertia == pytest.approx(full.inertia, rel=1e-3)


def test_given_centres_start_one_run_in_the_full_space(monkeypatch):
    dims = _faiss_dims(monkeypatch)
    monkeypatch.setattr(km_mod, "RESTART_MIN_DIM", 8)
    X, y, centres = blobs(k=4, per=50, d=300, seed=8)
    fit = cl.kmeans(X, 4, init=centres[::-1])
    assert dims == [300]
    np.testing.assert_array_equal(fit.labels, 3 - y)


def test_kmeans_helper_refuses_an_unknown_backend():
    with pytest.raises(ConfigError, match="'spark'"):
        cl.kmeans(blobs()[0], 2, backend="spark")


def test_small_folder_gives_the_same_partition_for_every_seed():
    """80 images of four overlapping kinds (where 10 restarts of sklearn's k-means swing with the seed)."""
    X, _, _ = blobs(k=4, per=20, spread=0.25, seed=12)
    parts = [KMeansClusterer(k=4, seed=s).fit(X).labels_ for s in range(6)]
    assert all(same_partition(parts[0], p) for p in parts[1:])


def test_kmeans_n_init_is_an_option():
    X, _, _ = blobs()
    assert KMeansClusterer(k=4, n_init=2).fit(X).n_init_ == 2
    assert make_clusterer(ClusterConfig(method="kmeans", k=4, n_init=7)).n_init == 7
    with pytest.raises(ConfigError, match="n_init"):
        ClusterConfig(method="kmeans", n_init=0)


# --- exact Ward through fastcluster ------------------------------------------------------------


def test_ward_on_the_rows_matches_sklearn():
    from sklearn.cluster import AgglomerativeClustering

    X, _, _ = blobs(k=5, per=30, spread=0.5, seed=3)
    ours = AgglomerativeClusterer(k=5, pca_dims=None).fit(X)
    theirs = AgglomerativeClustering(n_clusters=5, linkage="ward").fit(X).labels_
    assert same_partition(ours.labels_, theirs)
    assert ours.n_components_ == 32


def test_ward_runs_on_a_pca_reduction_by_default():
    X, y, _ = blobs(k=4, d=64)
    est = AgglomerativeClusterer(k=4).fit(X)
    assert est.n_components_ == cl.WARD_PCA_DIMS
    assert same_partition(est.labels_, y)
    with pytest.raises(ConfigError, match="pca_dims"):
        AgglomerativeClusterer(k=2, pca_dims=1).fit(X)


@pytest.mark.parametrize("k", [1, 2, 5, 17])
def test_cut_linkage_matches_scipy(k):
    from scipy.cluster.hierarchy import fcluster, linkage

    X = np.random.default_rng(k).normal(size=(60, 3))
    tree = linkage(X, method="ward")
    ours = hier_mod.cut_linkage(tree, 60, k)
    assert len(set(ours.tolist())) == k
    assert same_partition(ours, fcluster(tree, t=k, criterion="maxclust"))


# --- HDBSCAN options ---------------------------------------------------------------------------


def noisy_blobs():
    X, y, _ = blobs(k=3, per=60, d=32, spread=0.03)
    scatter = np.random.default_rng(9).normal(size=(15, 32)).astype(np.float32)
    return np.vstack([X, scatter / np.linalg.norm(scatter, axis=1, keepdims=True)]), y


@pytest.mark.parametrize("backend", ["hdbscan", "sklearn"])
def test_hdbscan_assigns_noise_to_the_nearest_cluster_on_request(backend):
    Xa, y = noisy_blobs()
    plain = HDBSCANClusterer(min_cluster_size=10, reducer="pca", backend=backend).fit(Xa)
    est = HDBSCANClusterer(min_cluster_size=10, reducer="pca", backend=backend, assign_noise=True).fit(Xa)
    assert (plain.labels_ == -1).any()
    assert (est.labels_ >= 0).all()
    assert est.noise_share_ == plain.noise_share_ == pytest.approx((plain.labels_ == -1).mean())
    kept = plain.labels_ >= 0
    np.testing.assert_array_equal(est.labels_[kept], plain.labels_[kept])
    assert same_partition(est.labels_[: len(y)], y)


def test_hdbscan_on_umap_finds_blobs_and_reuses_the_reduction(tmp_path):
    from vlexplore.cluster import density

    density._MEMORY.clear()
    X, y, _ = blobs(k=3, per=60, d=32, spread=0.05)
    first = HDBSCANClusterer(min_cluster_size=20, cache_dir=tmp_path).fit(X)
    assert first.n_components_ == 5
    assert not first.reduction_cached_
    assert same_partition(first.labels_, y)
    assert len(list((tmp_path / "reductions").glob("*.npy"))) == 1
    again = HDBSCANClusterer(min_cluster_size=30).fit(X)  # another min_cluster_size: same reduction
    assert again.reduction_cached_
    density._MEMORY.clear()
    from_disk = HDBSCANClusterer(min_cluster_size=20, cache_dir=tmp_path).fit(X)
    assert from_disk.reduction_cached_
    np.testing.assert_array_equal(from_disk.labels_, first.labels_)


def test_hdbscan_result_reports_its_noise_share():
    Xa, _ = noisy_blobs()
    res = cluster_vectors(
        Xa, ClusterConfig(method="hdbscan", min_cluster_size=10, reducer="pca", min_samples=5)
    )
    assert res.info["noise_share"] == pytest.approx((res.labels == -1).mean(), abs=1e-4)
    assert res.info["reducer"] == "pca"
    assert res.info["min_cluster_size"] == 10
    assert res.info["noise_assigned"] is False


def test_hdbscan_options_are_checked():
    with pytest.raises(ConfigError, match="reducer"):
        ClusterConfig(method="hdbscan", reducer="tsne")
    with pytest.raises(ConfigError, match="min_samples"):
        ClusterConfig(method="hdbscan", min_samples=0)
    with pytest.raises(ConfigError, match="backend"):
        HDBSCANClusterer(backend="cuml", reducer="pca").fit(blobs()[0])


# --- dispatcher --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "kind"),
    [
        (ClusterConfig(method="kmeans", k=3), KMeansClusterer),
        (ClusterConfig(method="agglomerative", k=3, linkage="average"), AgglomerativeClusterer),
        (ClusterConfig(method="hdbscan", min_cluster_size=7, reduce_dims=4), HDBSCANClusterer),
        (ClusterConfig(method="prototypes", prototypes=("a",), threshold=0.2), PrototypeClusterer),
    ],
)
def test_make_clusterer_dispatches_on_method(cfg, kind):
    est = make_clusterer(cfg, prototype_embeddings=np.ones((1, 4)))
    assert type(est) is kind
    assert not hasattr(est, "labels_")


def test_make_clusterer_passes_the_prototype_options():
    cfg = ClusterConfig(
        method="prototypes", prototypes=("a",), threshold=0.2, refine=False, discover_rest=True, k=3
    )
    est = make_clusterer(cfg, prototype_embeddings=np.ones((1, 4)))
    assert (est.threshold, est.refine, est.discover_rest, est.k) == (0.2, False, True, 3)


def test_cluster_returns_a_result():
    X, y, _ = blobs(k=3)
    res = cluster_vectors(X, ClusterConfig(method="kmeans", k=3))
    assert isinstance(res, ClusterResult)
    assert (res.n_clusters, res.method, res.similarity) == (3, "kmeans", None)
    assert res.labels.dtype == np.int64
    assert same_partition(res.labels, y)


def test_cluster_with_prototypes_returns_similarity():
    X, y, centres = blobs(k=3)
    cfg = ClusterConfig(method="prototypes", prototypes=("a", "b", "c"))
    res = cluster_vectors(X, cfg, joint=X, prototype_embeddings=centres)
    np.testing.assert_array_equal(res.labels, y)
    assert res.similarity.shape == (len(X),)
    assert res.similarity.min() > 0.9
