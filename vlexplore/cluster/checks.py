"""Input checks shared by the clustering estimators, and the label-free choice of k."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..models.base import l2_normalize

#: :func:`suggest_k` looks at a seeded sample of at most this many rows, and at k in 2..SUGGEST_K_MAX.
SUGGEST_K_SAMPLE = 2000
SUGGEST_K_MAX = 30


def check_matrix(X, name: str = "X") -> np.ndarray:
    """Validate a data matrix and return it as ``float32 (n, d)``.

    Raises:
        ConfigError: not numeric, not 2-d, no rows or columns, or rows with NaN/inf.
    """
    try:
        arr = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a numeric array, got {type(X).__name__}") from exc
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be a 2-d array (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ConfigError(f"{name} has no rows (shape {arr.shape}); there is nothing to cluster")
    if arr.shape[1] == 0:
        raise ConfigError(f"{name} has no columns (shape {arr.shape})")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ConfigError(
            f"{name} has {int(bad.sum())} of {len(arr)} rows with NaN or infinite values "
            f"(first: row {int(np.argmax(bad))}); drop or re-embed those images"
        )
    return arr


def check_k(k: int, n: int | None) -> int:
    """``k`` as an int; it must be positive and, when ``n`` is given, at most ``n``."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive number of clusters, got {k!r}")
    if n is not None and k > n:
        raise ConfigError(
            f"{k} clusters asked for, but there are only {n} images; choose at most {n}", option="k"
        )
    return int(k)


def check_prototypes(P, name: str = "prototype_embeddings") -> np.ndarray:
    """Prototype embeddings as L2-normalised float32 rows; a clear error when empty."""
    if P is None or np.size(P) == 0:
        raise ConfigError(f"{name} is empty; give at least one text prototype, e.g. 'dog, cat, car'")
    return l2_normalize(check_matrix(P, name))


def check_joint(joint, n: int, d_prototypes: int) -> np.ndarray:
    """The joint view checked against ``n`` images and the prototypes' width."""
    J = check_matrix(joint, "joint")
    if len(J) != n:
        raise ConfigError(f"joint has {len(J)} rows but X has {n}; they must describe the same images")
    if J.shape[1] != d_prototypes:
        raise ConfigError(
            f"prototype embeddings have {d_prototypes} dimensions but the joint view has {J.shape[1]}; "
            "embed the prototypes with the same model as the images"
        )
    return l2_normalize(J)


def suggest_k(X, *, seed: int = 0) -> int:
    """A label-free number of clusters: the best cosine silhouette over k = 2..30.

    One Ward tree is built on a seeded sample of at most :data:`SUGGEST_K_SAMPLE`
    L2-normalised rows and cut at every k; the k whose partition has the highest
    silhouette (cosine, on the sample) wins, the smaller k on ties. About a second
    at 10k × 512.

    Args:
        X: ``(n, d)`` vectors.
        seed: random state of the sample.

    Returns:
        k in ``1..min(30, n - 1)``; ``1`` when there are fewer than 3 rows or all rows are equal.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.metrics import pairwise_distances, silhouette_score

    X = check_matrix(X)
    n = len(X)
    if n < 3:
        return 1
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(n, SUGGEST_K_SAMPLE), replace=False))
    S = l2_normalize(X[idx]).astype(np.float64)
    n_distinct = len(np.unique(S, axis=0))
    k_max = min(SUGGEST_K_MAX, len(S) - 1, n_distinct)
    if k_max < 2:
        return 1
    tree = linkage(S, method="ward")
    D = pairwise_distances(S, metric="cosine")
    np.fill_diagonal(D, 0.0)
    best_k, best_score = 1, -np.inf
    for k in range(2, k_max + 1):
        labels = fcluster(tree, t=k, criterion="maxclust")
        if not 2 <= len(np.unique(labels)) <= len(S) - 1:
            continue
        score = silhouette_score(D, labels, metric="precomputed")
        if score > best_score + 1e-12:
            best_k, best_score = k, score
    return best_k
