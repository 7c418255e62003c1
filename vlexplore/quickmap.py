"""A 2-d layout in seconds that compiles nothing: the map shown while UMAP is computed.

UMAP's layout optimiser is numba code; in a new process with an empty numba cache it compiles for
minutes on a small CPU before the first map exists (``bench/first_map.py``). :func:`quick_layout` is
made of BLAS, faiss and scikit-learn's compiled code only, so the Map page can show it at once and
swap in UMAP's layout (:func:`vlexplore.project.project_2d`) when the background job finishes.

Steps: PCA to :data:`~vlexplore.project.UMAP_PCA_DIMS` dimensions (fitted on a sample), unit rows
(cosine, as UMAP), k-means with about √n centres, the centres placed by t-SNE (at most 150 points),
every point beside its centre (offset by its own PCA coordinates), then a few epochs of a vectorised
UMAP-like force layout on the cosine neighbour graph (attraction along the edges, repulsion from
random points) up to :data:`QUICK_REFINE_MAX` points. On 10,000 Fashion-MNIST embeddings (1280-d),
the share of each point's 10 nearest 2-d neighbours in its own class is 0.72 (PCA to 2-d: 0.50,
UMAP: 0.74); on 20 blobs in 512-d (``bench/first_map.py``) 1.0 like UMAP (PCA to 2-d: 0.72). 10,000 x 512
take 2.6-5 s in a warm process on 2 busy cores; the first one in a new process 7-17 s, imports included.
"""

from __future__ import annotations

import numpy as np

from .cluster import check_matrix
from .errors import ConfigError

#: Above this many points the force-layout epochs are skipped (the centres' layout stays).
QUICK_REFINE_MAX = 50_000
#: The PCA is fitted on at most this many rows (all rows are then projected).
QUICK_PCA_SAMPLE = 20_000
#: Force-layout epochs (UMAP runs 200 at 10k points; these start from a layout that is close).
QUICK_EPOCHS = 15
#: At most this many k-means centres (about √n below).
QUICK_MAX_CENTRES = 150
_NEGATIVES = 3
_BLOCK = 65_536


def quick_layout(X, *, seed: int = 0, n_neighbors: int = 15, epochs: int = QUICK_EPOCHS) -> np.ndarray:
    """A first 2-d map of ``X`` in seconds, without numba: shown until UMAP's layout replaces it.

    Same input as :func:`vlexplore.project.project_2d` and the same look (clusters as islands, neighbours
    close), but coarser: a stand-in for the minutes UMAP needs in a new process with an empty numba cache.
    Below :data:`~vlexplore.project.UMAP_MIN_POINTS` points it is the same PCA that ``project_2d`` uses.
    Deterministic for a given ``seed`` (and machine).

    Args:
        X: ``(n, d)`` vectors.
        seed: random state of the PCA sample, k-means, t-SNE of the centres and the negative samples.
        n_neighbors: neighbours per point in the force layout (capped at ``n - 1``).
        epochs: force-layout epochs (0 = the centres' layout only).

    Returns:
        ``float32 (n, 2)`` finite coordinates.
    """
    from threadpoolctl import threadpool_limits

    from .project import UMAP_MIN_POINTS, _pca

    if n_neighbors < 2:
        raise ConfigError(f"n_neighbors must be >= 2, got {n_neighbors}")
    if epochs < 0:
        raise ConfigError(f"epochs must be >= 0, got {epochs}")
    X = check_matrix(X)
    if len(X) < UMAP_MIN_POINTS or np.allclose(X, X[0]):
        return _pca(X, seed)
    # One thread: the UMAP job it stands in for runs beside it, and on 2 busy cores OpenMP's and BLAS's
    # threads made it slower (10,000 x 512, load 8: 5-7 s on one thread, 8-15 s on two).
    with threadpool_limits(limits=1):
        return _layout(X, seed, n_neighbors, epochs)


def _layout(X: np.ndarray, seed: int, n_neighbors: int, epochs: int) -> np.ndarray:
    from .project import UMAP_PCA_DIMS

    n = len(X)
    Z = _pca_sample_fit(X, UMAP_PCA_DIMS, seed)
    flat = Z[:, :2].copy()  # the PCA-2 coordinates, for each point's place beside its centre
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    Z /= np.where(norms > 0, norms, 1.0)
    labels, centres = _centres(Z, seed)
    Y = _beside_centres(flat, labels, centres, seed)
    if epochs > 0 and n <= QUICK_REFINE_MAX:
        Y = _refine(Y, _neighbours(Z, min(n_neighbors, n - 1)), epochs, seed)
    return np.nan_to_num(Y, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _pca_sample_fit(X: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """``X`` projected on the first ``dims`` principal axes of a sample of its rows (centred), float32."""
    from sklearn.decomposition import PCA

    n, d = X.shape
    rows = np.random.default_rng(seed).permutation(n)[:QUICK_PCA_SAMPLE]
    sample = X[np.sort(rows)]
    pca = PCA(n_components=max(1, min(dims, d, len(sample) - 1)), random_state=seed).fit(sample)
    out = np.empty((n, max(2, pca.n_components_)), dtype=np.float32)
    out[:, pca.n_components_ :] = 0.0
    for start in range(0, n, _BLOCK):
        out[start : start + _BLOCK, : pca.n_components_] = pca.transform(X[start : start + _BLOCK])
    return out


def _centres(Z: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means of the unit rows with about √n centres: ``(labels int64 (n,), centres (k, d))``."""
    from .cluster.kmeans import kmeans

    n = len(Z)
    k = int(np.clip(round(np.sqrt(n)), 2, min(QUICK_MAX_CENTRES, n)))
    fit = kmeans(Z, k, seed=seed, n_init=1)
    return np.asarray(fit.labels, dtype=np.int64), np.asarray(fit.centres, dtype=np.float32)


def _centre_layout(centres: np.ndarray, seed: int) -> np.ndarray:
    """2-d places of the centres: t-SNE (PCA-initialised) of them, scaled into ``[-1, 1]``."""
    k = len(centres)
    if k < 8:
        from .project import _pca

        C = _pca(centres, seed)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (k - 1) / 3))
        C = TSNE(2, init="pca", perplexity=perplexity, random_state=seed, max_iter=500).fit_transform(centres)
    C = np.asarray(C, dtype=np.float64)
    span = float(np.abs(C).max())
    return C / span if span > 0 else C


def _beside_centres(flat: np.ndarray, labels: np.ndarray, centres: np.ndarray, seed: int) -> np.ndarray:
    """Each point at its centre's place, offset by its own PCA-2 coordinates scaled into the centre's room."""
    C = _centre_layout(centres, seed)
    k = len(C)
    gaps = np.linalg.norm(C[:, None, :] - C[None, :, :], axis=2)
    np.fill_diagonal(gaps, np.inf)
    room = 0.4 * float(np.median(gaps.min(axis=1))) if k > 1 else 1.0
    counts = np.maximum(np.bincount(labels, minlength=k), 1)
    mean = (
        np.stack([np.bincount(labels, flat[:, j], minlength=k) for j in range(2)], axis=1) / counts[:, None]
    )
    off = flat - mean[labels]
    reach = np.zeros(k)
    np.maximum.at(reach, labels, np.abs(off).max(axis=1))
    off *= (room / np.where(reach > 0, reach, 1.0))[labels, None]
    return C[labels] + off


def _neighbours(Z: np.ndarray, k: int) -> np.ndarray:
    """Each unit row's ``k`` nearest other rows by cosine (faiss, else scikit-learn's brute force)."""
    from .largescale import _drop_self
    from .project import cosine_knn

    found = cosine_knn(Z, k + 1)
    if found is not None:
        return found[0][:, 1:]
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(Z).kneighbors(Z)[1]
    return _drop_self(np.asarray(idx, dtype=np.int64), k)


def _refine(Y: np.ndarray, neighbours: np.ndarray, epochs: int, seed: int) -> np.ndarray:
    """A few epochs of a UMAP-like force layout (a = b = 1), every edge at once (numpy, no numba).

    Attraction ``-2 (yi - yj) / (1 + d²)`` along each neighbour edge, repulsion
    ``2 (yi - yj) / ((0.001 + d²)(1 + d²))`` from :data:`_NEGATIVES` random points per edge, each clipped
    to ±4 as UMAP does, the step shrinking linearly to 0.
    """
    n, k = neighbours.shape
    rng = np.random.default_rng(seed)
    Y = np.asarray(Y, dtype=np.float64)
    span = float(np.abs(Y).max())
    Y = 10.0 * Y / span if span > 0 else Y.copy()
    head = np.repeat(np.arange(n), k)
    tail = neighbours.ravel()
    neg_head = np.repeat(head, _NEGATIVES)
    for epoch in range(epochs):
        step = (1.0 - epoch / epochs) / (2 * k)
        diff = Y[head] - Y[tail]
        pull = np.clip(-2.0 * diff / (1.0 + (diff * diff).sum(axis=1, keepdims=True)), -4.0, 4.0)
        diff = Y[neg_head] - Y[rng.integers(0, n, len(neg_head))]
        d2 = (diff * diff).sum(axis=1, keepdims=True)
        push = np.clip(2.0 * diff / ((0.001 + d2) * (1.0 + d2)), -4.0, 4.0)
        for j in range(2):
            grad = np.bincount(head, pull[:, j], minlength=n) - np.bincount(tail, pull[:, j], minlength=n)
            Y[:, j] += step * (grad + np.bincount(neg_head, push[:, j], minlength=n))
    return Y
