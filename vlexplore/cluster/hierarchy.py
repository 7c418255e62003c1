"""Agglomerative clustering: exact Ward through fastcluster, micro-cluster linkage beyond."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..models.base import l2_normalize
from .checks import check_k, check_matrix, suggest_k

#: Exact linkage up to this many rows; above, the linkage of k-means micro-clusters
#: (:func:`vlexplore.largescale.micro_cluster_linkage`). Ward's exact tree costs about n² · d.
AGGLOMERATIVE_MAX_N = 20_000
#: Ward runs on a PCA reduction of the unit rows to this many dimensions (``None`` = the rows
#: themselves). Ward's top merges are touchy: on Fashion-MNIST-10k exact Ward gives ACC 0.719 on the
#: 1280-d rows and 0.717 on PCA-20 in a twentieth of the time, but 0.63-0.72 at other dimensions;
#: on sklearn's digits PCA-20 gives 0.86 against 0.77 (bench/recluster.py).
WARD_PCA_DIMS = 20


def pca_reduce(Xn: np.ndarray, dims: int | None, seed: int = 0) -> np.ndarray:
    """``Xn`` projected on its first ``dims`` principal axes (``float64``); unchanged when ``dims`` ≥ d."""
    n, d = Xn.shape
    if dims is None or dims >= min(n, d):
        return np.asarray(Xn, dtype=np.float64)
    from sklearn.decomposition import PCA

    return (
        PCA(n_components=int(dims), svd_solver="randomized", random_state=seed)
        .fit_transform(np.asarray(Xn, dtype=np.float32))
        .astype(np.float64)
    )


def ward_labels(Z: np.ndarray, k: int) -> np.ndarray:
    """Exact Ward linkage of the rows of ``Z`` cut into ``k`` clusters: ``int64 (n,)`` in ``0..k-1``.

    fastcluster's ``linkage_vector`` (O(n · d) memory); scipy's ``linkage`` when fastcluster is missing.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    try:
        import fastcluster

        tree = fastcluster.linkage_vector(Z, method="ward")
    except ImportError:
        from scipy.cluster.hierarchy import linkage

        tree = linkage(Z, method="ward")
    return cut_linkage(tree, len(Z), k)


def cut_linkage(tree: np.ndarray, n: int, k: int) -> np.ndarray:
    """The ``k`` clusters left after the first ``n - k`` merges of a linkage matrix: ``int64 (n,)``."""
    steps = n - k
    up = np.arange(n + steps)
    merged = tree[:steps, :2].astype(np.int64)
    up[merged[:, 0]] = n + np.arange(steps)
    up[merged[:, 1]] = n + np.arange(steps)
    while True:  # pointer jumping: every node to the root of its cluster
        nxt = up[up]
        if np.array_equal(nxt, up):
            break
        up = nxt
    _, labels = np.unique(up[:n], return_inverse=True)
    return labels.astype(np.int64)


class AgglomerativeClusterer:
    """Agglomerative clustering: ``ward`` on L2-normalised rows, or ``average`` linkage with cosine distance.

    Ward is exact (fastcluster, on a PCA reduction to ``pca_dims``) up to :data:`AGGLOMERATIVE_MAX_N`
    rows; ``average`` is exact there too (sklearn, O(n²) memory). Above, the same linkage over k-means
    micro-clusters (:func:`vlexplore.largescale.micro_cluster_linkage`).

    Attributes:
        labels_: ``int64 (n,)``. n_clusters_: k. micro_clusters_: micro-clusters linked (``None`` = exact).
        n_components_: the dimensions Ward ran on.
    """

    def __init__(
        self,
        *,
        k: int | None = None,
        linkage: str = "ward",
        seed: int = 0,
        pca_dims: int | None = WARD_PCA_DIMS,
    ) -> None:
        self.k = k
        self.linkage = linkage
        self.seed = seed
        self.pca_dims = pca_dims

    def fit(self, X, joint=None) -> AgglomerativeClusterer:
        """Cluster ``X`` ``(n, d)``; ``joint`` is ignored."""
        if self.linkage not in ("ward", "average"):
            raise ConfigError(f"linkage must be 'ward' or 'average', got {self.linkage!r}")
        if self.pca_dims is not None and self.pca_dims < 2:
            raise ConfigError(f"pca_dims must be >= 2 or None, got {self.pca_dims}")
        X = check_matrix(X)
        n = len(X)
        Xn = l2_normalize(X)
        k = check_k(self.k if self.k is not None else suggest_k(Xn, seed=self.seed), n)
        self.micro_clusters_ = None
        self.n_components_ = Xn.shape[1]
        if k == 1:
            self.labels_ = np.zeros(n, dtype=np.int64)
        elif n > AGGLOMERATIVE_MAX_N:
            from ..largescale import micro_cluster_linkage

            self.labels_, self.micro_clusters_ = micro_cluster_linkage(
                Xn, k, linkage=self.linkage, seed=self.seed
            )
        elif self.linkage == "ward":
            Z = pca_reduce(Xn, self.pca_dims, self.seed)
            self.n_components_ = Z.shape[1]
            self.labels_ = ward_labels(Z, k)
        else:
            from sklearn.cluster import AgglomerativeClustering

            zero = ~Xn.any(axis=1)
            if zero.any():
                # sklearn refuses zero rows for cosine (e.g. images whose captions hold no keyword). One extra
                # axis makes them a unit vector orthogonal to every other row (cosine distance 1, as
                # sklearn's cosine_distances treats them) and identical to each other; other distances stay.
                Xn = np.hstack([Xn, zero.reshape(-1, 1).astype(Xn.dtype)])
            model = AgglomerativeClustering(n_clusters=k, linkage="average", metric="cosine").fit(Xn)
            self.labels_ = model.labels_.astype(np.int64)
        self.n_clusters_ = k
        return self
