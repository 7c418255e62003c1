"""Tests of vlexplore.evaluate: Hungarian ACC (with noise), NMI/ARI, label-free scores, confusion table."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from vlexplore.errors import ConfigError
from vlexplore.evaluate import clustering_accuracy, confusion_table, evaluate_labels, label_free_scores

# --- shared fixtures -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def blobs(k: int = 3, per: int = 40, d: int = 16, spread: float = 0.05, seed: int = 0):
    """``k`` tight groups of unit vectors → ``(X (k*per, d) float32, y (k*per,))``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    y = np.repeat(np.arange(k), per)
    X = centres[y] / np.linalg.norm(centres[y], axis=1, keepdims=True) + rng.normal(
        scale=spread, size=(k * per, d)
    )
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def brute_force_acc(y_true, y_pred) -> float:
    """Best one-to-one class↔cluster matching by enumeration; noise (-1) never matched."""
    classes = sorted(set(y_true))
    clusters = sorted(set(y_pred) - {-1})
    best = 0
    pairs = list(zip(y_true, y_pred))
    if len(clusters) >= len(classes):
        matchings = (dict(zip(classes, p)) for p in itertools.permutations(clusters, len(classes)))
    else:
        matchings = (
            {c: k for k, c in zip(clusters, p)} for p in itertools.permutations(classes, len(clusters))
        )
    for m in matchings:
        best = max(best, sum(1 for t, p in pairs if m.get(t) == p))
    return best / len(y_true)


label_lists = st.integers(min_value=1, max_value=30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
        st.lists(st.integers(-1, 4), min_size=n, max_size=n),
    )
)

# --- clustering_accuracy ------------------------------------------------------------------------


def test_acc_of_a_known_example():
    assert clustering_accuracy([0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0]) == pytest.approx(5 / 6)


def test_acc_with_more_clusters_than_classes_counts_unmatched_clusters_as_errors():
    assert clustering_accuracy([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(3 / 4)


def test_acc_with_more_classes_than_clusters():
    assert clustering_accuracy([0, 1, 2, 2], [0, 0, 0, 0]) == pytest.approx(2 / 4)


def test_acc_never_matches_noise():
    # Matching -1 to class 0 would give 1.0; noise must count as errors instead.
    assert clustering_accuracy([0, 0, 1, 1], [-1, -1, 1, 1]) == pytest.approx(0.5)
    assert clustering_accuracy([0, 0, 1, 1], [0, -1, 1, 1]) == pytest.approx(0.75)


def test_acc_all_noise_is_zero():
    assert clustering_accuracy([0, 1, 2], [-1, -1, -1]) == 0.0


def test_acc_accepts_string_classes():
    y = np.array(["cat", "cat", "dog", "dog", "fox"])
    assert clustering_accuracy(y, [3, 3, 7, 7, 7]) == pytest.approx(4 / 5)


def test_acc_accepts_whole_floats_as_cluster_ids():
    assert clustering_accuracy([0, 1], np.array([1.0, 0.0])) == 1.0


@given(label_lists)
@settings(max_examples=150, deadline=None)
def test_acc_equals_brute_force_and_lies_in_unit_interval(pair):
    y_true, y_pred = pair
    acc = clustering_accuracy(y_true, y_pred)
    assert 0.0 <= acc <= 1.0
    assert acc == pytest.approx(brute_force_acc(y_true, y_pred))


@given(label_lists, st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_acc_is_invariant_to_renaming_clusters(pair, rnd):
    y_true, y_pred = pair
    ids = list(range(5))
    new = ids[:]
    rnd.shuffle(new)
    renamed = [p if p == -1 else new[p] + 10 for p in y_pred]
    assert clustering_accuracy(y_true, renamed) == pytest.approx(clustering_accuracy(y_true, y_pred))


@given(st.lists(st.integers(0, 5), min_size=1, max_size=40), st.permutations(range(6)))
@settings(max_examples=100, deadline=None)
def test_a_relabelled_perfect_clustering_scores_one(y_true, perm):
    y_pred = [perm[t] for t in y_true]
    res = evaluate_labels(y_true, y_pred)
    assert res["acc"] == 1.0
    assert res["ari"] == pytest.approx(1.0)
    assert res["nmi"] == pytest.approx(1.0)


@given(st.lists(st.integers(0, 3), min_size=2, max_size=40), st.data())
@settings(max_examples=100, deadline=None)
def test_each_noise_point_costs_accuracy(y_true, data):
    n = len(y_true)
    noisy = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))
    y_pred = [-1 if i in noisy else t for i, t in enumerate(y_true)]
    assert clustering_accuracy(y_true, y_pred) == pytest.approx((n - len(noisy)) / n)


# --- evaluate ------------------------------------------------------------------------------------


def test_evaluate_returns_all_scores():
    res = evaluate_labels([0, 0, 1, 1, 2, 2], [5, 5, 6, 6, -1, 6])
    assert set(res) == {"acc", "nmi", "ari", "n_clusters", "noise_share"}
    assert res["acc"] == pytest.approx(4 / 6)
    assert res["n_clusters"] == 2
    assert res["noise_share"] == pytest.approx(1 / 6)
    assert isinstance(res["n_clusters"], int)
    assert isinstance(res["acc"], float)


def test_nmi_and_ari_keep_noise_as_its_own_label():
    res = evaluate_labels([0, 0, 1, 1], [-1, -1, 1, 1])
    assert res["acc"] == pytest.approx(0.5)
    assert res["nmi"] == pytest.approx(1.0)
    assert res["ari"] == pytest.approx(1.0)


def test_evaluate_of_a_random_clustering_is_near_zero_ari():
    rng = np.random.default_rng(0)
    res = evaluate_labels(rng.integers(0, 5, 2000), rng.integers(0, 5, 2000))
    assert abs(res["ari"]) < 0.02
    assert res["nmi"] < 0.02


# --- label_free_scores ---------------------------------------------------------------------------


def test_label_free_scores_on_separated_blobs():
    X, y = blobs()
    s = label_free_scores(X, y)
    assert set(s) == {"silhouette", "davies_bouldin", "calinski_harabasz"}
    assert s["silhouette"] > 0.8
    assert s["davies_bouldin"] < 0.3
    assert s["calinski_harabasz"] > 100


def test_label_free_scores_ignore_noise_points():
    X, y = blobs()
    rng = np.random.default_rng(3)
    junk = rng.normal(size=(20, X.shape[1])).astype(np.float32)
    with_noise = label_free_scores(np.vstack([X, junk]), np.concatenate([y, np.full(20, -1)]))
    assert with_noise == pytest.approx(label_free_scores(X, y))


def test_label_free_scores_use_normalised_rows():
    X, y = blobs()
    scaled = X * np.random.default_rng(1).uniform(0.5, 5, size=(len(X), 1)).astype(np.float32)
    assert label_free_scores(scaled, y) == pytest.approx(label_free_scores(X, y), rel=1e-4)


def test_label_free_silhouette_on_a_seeded_sample():
    X, y = blobs(k=4, per=100, spread=0.4)
    full = label_free_scores(X, y)["silhouette"]
    a = label_free_scores(X, y, sample_size=150, seed=1)
    b = label_free_scores(X, y, sample_size=150, seed=1)
    c = label_free_scores(X, y, sample_size=150, seed=2)
    assert a == b
    assert a["silhouette"] != c["silhouette"]
    assert a["silhouette"] == pytest.approx(full, abs=0.1)
    assert a["davies_bouldin"] == pytest.approx(label_free_scores(X, y)["davies_bouldin"])


@pytest.mark.parametrize("labels", [[0] * 6, [-1] * 6, [0, 0, 0, -1, -1, -1], [0, 1, 2, 3, 4, 5]])
def test_label_free_scores_are_nan_when_undefined(labels):
    X, _ = blobs(k=2, per=3)
    s = label_free_scores(X, np.array(labels))
    assert all(math.isnan(v) for v in s.values())


# --- confusion_table -----------------------------------------------------------------------------


def test_confusion_table_rows_are_classes_and_columns_clusters_noise_last():
    df = confusion_table(["b", "a", "a", "b", "b"], [-1, 0, 0, 2, 2])
    assert list(df.index) == ["a", "b"]
    assert list(df.columns) == [0, 2, -1]
    assert (df.index.name, df.columns.name) == ("class", "cluster")
    assert df.to_numpy().tolist() == [[2, 0, 0], [0, 2, 1]]
    assert df.to_numpy().dtype == np.int64


# --- bad parameters ------------------------------------------------------------------------------


def test_length_mismatch_raises():
    with pytest.raises(ConfigError, match="y_true has 3 labels but y_pred has 2"):
        clustering_accuracy([0, 1, 2], [0, 1])


def test_empty_labels_raise():
    with pytest.raises(ConfigError, match="no labels"):
        evaluate_labels([], [])


def test_fractional_cluster_ids_raise():
    with pytest.raises(ConfigError, match="integer cluster ids"):
        evaluate_labels([0, 1], [0.5, 1.0])


def test_two_dimensional_labels_raise():
    with pytest.raises(ConfigError, match=r"1-d.*\(2, 2\)"):
        confusion_table([[0, 1], [1, 0]], [[0, 1], [1, 0]])


def test_label_free_labels_shape_mismatch_raises():
    X, y = blobs()
    with pytest.raises(ConfigError, match=r"shape \(120,\)"):
        label_free_scores(X, y[:-1])


def test_label_free_sample_size_too_small_raises():
    X, y = blobs()
    with pytest.raises(ConfigError, match="sample_size must be >= 2, got 1"):
        label_free_scores(X, y, sample_size=1)


def test_label_free_nan_rows_raise():
    X, y = blobs()
    X[0, 0] = np.nan
    with pytest.raises(ConfigError, match="1 of 120 rows"):
        label_free_scores(X, y)
