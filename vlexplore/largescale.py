"""Clustering and neighbour search past the size where exact, in-memory sklearn steps stay cheap.

Chosen automatically by :mod:`vlexplore.cluster` and :mod:`vlexplore.nouns` from the number of rows:

* **k-means** (:func:`vlexplore.cluster.kmeans.kmeans`, faiss when installed, else sklearn's
  ``MiniBatchKMeans`` above :data:`vlexplore.cluster.MINIBATCH_THRESHOLD` rows) fits on a seeded sample of
  at most :data:`KMEANS_SAMPLE` rows and then assigns every row in blocks of :data:`ASSIGN_BLOCK`, so the
  cost beyond the sample grows linearly and memory stays ``block × k``.
* **k nearest neighbours** above :data:`EXACT_KNN_MAX` rows: an HNSW graph (faiss) or NN-descent
  (pynndescent, which UMAP already needs); below it, exact blocked search.
* **agglomerative** above :data:`vlexplore.cluster.AGGLOMERATIVE_MAX_N` rows: Ward linkage over
  :data:`MICRO_CLUSTERS` k-means micro-clusters (each row takes its micro-cluster's label), since the
  exact method needs O(n²) memory.
"""

from __future__ import annotations

import numpy as np

#: Rows k-means fits on at scale (a seeded sample; every row is assigned afterwards).
KMEANS_SAMPLE = 200_000
#: Rows per block when assigning rows to centres or searching neighbours.
ASSIGN_BLOCK = 65_536
#: Above this many rows neighbour search is approximate (HNSW or NN-descent).
EXACT_KNN_MAX = 50_000
#: Micro-clusters the scalable agglomerative method links (at most n / 10).
MICRO_CLUSTERS = 2000


def faiss_module():
    """``faiss`` when it is installed, else ``None``."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def kmeans_backend() -> str:
    """``faiss`` or ``minibatch``: what :func:`kmeans_at_scale` uses on this install."""
    return "faiss" if faiss_module() is not None else "minibatch"


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def assign(
    X: np.ndarray,
    centres: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    loss: bool = True,
    x_sq: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Nearest centre (squared Euclidean) of every row, in blocks: ``(int64 labels, inertia)``.

    One float32 matrix product per block (BLAS) and an argmin of ``|c|² - 2 x·c``; the rows' own norms
    only enter the (float64, optionally ``weights``-weighted) loss (``loss=False``: not computed, 0.0).
    2.5-4x faster than faiss's flat search for the few centres of a k-means (70,000 × 512, k = 12 and 100),
    with the same labels. ``x_sq``: the rows' squared lengths (:func:`row_squares`), when the caller has them.
    """
    C = np.ascontiguousarray(centres, dtype=np.float32)
    c_sq = np.einsum("ij,ij->i", C, C)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    labels = np.empty(len(X), dtype=np.int64)
    inertia = 0.0
    step = block_rows(len(C))
    for start in range(0, len(X), step):
        B = np.asarray(X[start : start + step], dtype=np.float32)
        d = B @ C.T  # |c|² - 2 x·c in place, in float32: a third less time than a float64 copy
        d *= -2.0
        d += c_sq
        lab = d.argmin(axis=1)
        labels[start : start + len(B)] = lab
        if not loss:
            continue
        b_sq = np.einsum("ij,ij->i", B, B) if x_sq is None else x_sq[start : start + len(B)]
        dist = np.maximum(b_sq.astype(np.float64) + d[np.arange(len(B)), lab], 0.0)
        inertia += float(dist.sum() if w is None else (w[start : start + len(B)] * dist).sum())
    return labels, inertia


def block_rows(k: int) -> int:
    """Rows per block when measuring rows against ``k`` centres: the float32 distance block stays ≤ 64 MB."""
    return max(256, min(ASSIGN_BLOCK, (1 << 24) // max(1, k)))


def row_squares(X: np.ndarray) -> np.ndarray:
    """The squared length of every row of ``X`` (float32), in blocks: for repeated :func:`assign` calls."""
    out = np.empty(len(X), dtype=np.float32)
    for start in range(0, len(X), ASSIGN_BLOCK):
        B = np.asarray(X[start : start + ASSIGN_BLOCK], dtype=np.float32)
        out[start : start + len(B)] = np.einsum("ij,ij->i", B, B)
    return out


def kmeans_at_scale(
    X: np.ndarray, k: int, *, seed: int = 0, n_init: int = 3, backend: str | None = None
) -> tuple[np.ndarray, float, str]:
    """k-means for many rows: fitted on a sample of at most :data:`KMEANS_SAMPLE`, all rows assigned in blocks.

    The library's one k-means (:func:`vlexplore.cluster.kmeans.kmeans`) with a large-scale backend.

    Args:
        X: ``(n, d)`` float32 (a memory-mapped array works: it is read block by block).
        k: clusters.
        seed: sample and initialisation.
        n_init: restarts (the lowest inertia wins).
        backend: ``faiss``, ``minibatch`` or ``None`` (= :func:`kmeans_backend`).

    Returns:
        ``(labels int64 (n,), inertia over all rows, backend used)``.
    """
    from .cluster.kmeans import kmeans

    backend = backend or kmeans_backend()
    if backend not in ("faiss", "minibatch"):
        from .errors import ConfigError

        raise ConfigError(f"k-means backend must be 'faiss' or 'minibatch', got {backend!r}")
    fit = kmeans(X, k, seed=seed, n_init=n_init, backend=backend)
    return fit.labels, fit.inertia, fit.backend


def knn_approximate(X: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Each row's ``k`` nearest other rows by cosine, approximately: ``int64 (n, k)``, nearest first.

    faiss HNSW (inner product on unit rows) when faiss is installed, else pynndescent's NN-descent.
    A row is never its own neighbour.
    """
    Xn = np.ascontiguousarray(X, dtype=np.float32)
    n = len(Xn)
    faiss = faiss_module()
    if faiss is not None:
        index = faiss.IndexHNSWFlat(Xn.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = max(64, 2 * (k + 1))
        index.add(Xn)
        found = np.empty((n, k + 1), dtype=np.int64)
        for start in range(0, n, ASSIGN_BLOCK):
            _, found[start : start + ASSIGN_BLOCK] = index.search(Xn[start : start + ASSIGN_BLOCK], k + 1)
    else:
        from pynndescent import NNDescent

        found = (
            NNDescent(Xn, metric="cosine", n_neighbors=k + 1, random_state=seed, low_memory=True, n_jobs=1)
            .neighbor_graph[0]
            .astype(np.int64)
        )
    return _drop_self(found, k)


def _drop_self(found: np.ndarray, k: int) -> np.ndarray:
    """``(n, k+1)`` neighbour lists → ``(n, k)`` without the row itself (or the last entry when it is absent)."""
    n = len(found)
    own = found == np.arange(n)[:, None]
    missing = ~own.any(axis=1)
    own[missing, -1] = True  # the row was not found: drop the farthest instead
    out = found[~own].reshape(n, k)
    bad = out < 0  # faiss pads with -1 when it finds fewer than k (tiny graphs): repeat the nearest
    if bad.any():
        out = np.where(bad, out[:, :1], out)
    return out


def micro_cluster_linkage(
    Xn: np.ndarray, k: int, *, linkage: str = "ward", seed: int = 0, n_micro: int | None = None
) -> tuple[np.ndarray, int]:
    """Agglomerative clustering for many rows: k-means into micro-clusters, link their centres, map back.

    Returns:
        ``(labels int64 (n,), micro-clusters used)``.
    """
    n = len(Xn)
    m = int(n_micro or min(MICRO_CLUSTERS, max(k, n // 10)))
    micro, _, _ = kmeans_at_scale(Xn, m, seed=seed, n_init=1)
    from scipy.sparse import csr_matrix

    member = csr_matrix((np.ones(n, dtype=np.float32), (micro, np.arange(n))), shape=(m, n))
    counts = np.asarray(member.sum(axis=1)).ravel()
    present = np.flatnonzero(counts)
    centres = (np.asarray(member @ Xn)[present] / counts[present, None]).astype(np.float32)
    top = weighted_linkage(centres, counts[present], min(k, len(present)), linkage=linkage)
    lookup = np.zeros(m, dtype=np.int64)
    lookup[present] = top
    return lookup[micro], len(present)


def weighted_linkage(centres: np.ndarray, sizes: np.ndarray, k: int, *, linkage: str = "ward") -> np.ndarray:
    """Agglomerate ``m`` weighted points (micro-cluster centres with their sizes) into ``k`` clusters.

    Ward: the merge cost of groups a, b is the rise in within-group squared error,
    ``n_a n_b / (n_a + n_b) · ‖c_a − c_b‖²``, kept up to date with the Lance–Williams formula, so a
    micro-cluster of 300 images weighs 300 times one of 1 — as Ward on the images themselves would.
    ``average``: size-weighted mean cosine distance between groups. sklearn and scipy link unweighted
    points only, which on 70k Fashion-MNIST images cost 11 ACC points. O(m²) memory, about m² steps.

    Returns:
        ``int64 (m,)`` labels in ``0..k-1``.
    """
    C = np.asarray(centres, dtype=np.float64)
    n = np.asarray(sizes, dtype=np.float64).copy()
    m = len(C)
    if linkage == "ward":
        sq = (C**2).sum(axis=1)
        D = np.maximum(sq[:, None] + sq[None, :] - 2.0 * C @ C.T, 0.0)
        D *= (n[:, None] * n[None, :]) / (n[:, None] + n[None, :])
    elif linkage == "average":
        U = C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-12)
        D = 1.0 - U @ U.T
    else:
        from .errors import ConfigError

        raise ConfigError(f"linkage must be 'ward' or 'average', got {linkage!r}")
    np.fill_diagonal(D, np.inf)
    alive = np.ones(m, dtype=bool)
    owner = np.arange(m)
    for _ in range(m - max(1, k)):
        flat = int(np.argmin(D))
        i, j = divmod(flat, m)
        if i > j:
            i, j = j, i
        ni, nj = n[i], n[j]
        if linkage == "ward":
            new = ((ni + n) * D[i] + (nj + n) * D[j] - n * D[i, j]) / (ni + nj + n)
        else:
            new = (ni * D[i] + nj * D[j]) / (ni + nj)
        new[~alive] = np.inf
        D[i, :] = new
        D[:, i] = new
        D[i, i] = np.inf
        D[j, :] = np.inf
        D[:, j] = np.inf
        n[i] = ni + nj
        alive[j] = False
        owner[owner == j] = i
    _, labels = np.unique(owner, return_inverse=True)
    return labels.astype(np.int64)
