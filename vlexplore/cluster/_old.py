"""Clustering: k-means, agglomerative, HDBSCAN (after PCA) and text prototypes as centroids.

Every method works in cosine geometry: rows are L2-normalised before they are
clustered (embeddings already are; other matrices, e.g. concatenations, become so).
One dispatcher, :func:`make_clusterer`, turns a :class:`~vlexplore.config.ClusterConfig`
into a small sklearn-style estimator; :func:`cluster` is the one-call form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import ClusterConfig
from .errors import ConfigError
from .models.base import l2_normalize

#: Above this many rows k-means switches to ``MiniBatchKMeans`` (full k-means restarts get slow).
MINIBATCH_THRESHOLD = 50_000
#: Agglomerative clustering keeps an n × n distance structure (O(n²) memory); above this many rows it
#: links k-means micro-clusters instead (see :mod:`vlexplore.largescale`).
AGGLOMERATIVE_MAX_N = 20_000
#: Random restarts of full k-means; the run with the lowest inertia is kept (as in Stephan et al. 2024).
KMEANS_N_INIT = 10
#: Restarts and batch size of the mini-batch variant.
MINIBATCH_N_INIT = 3
MINIBATCH_BATCH_SIZE = 4096
#: :func:`suggest_k` looks at a seeded sample of at most this many rows, and at k in 2..SUGGEST_K_MAX.
SUGGEST_K_SAMPLE = 2000
SUGGEST_K_MAX = 30
#: HDBSCAN's default smallest cluster is about n/100, at least 5 and at most this.
MIN_CLUSTER_SIZE_CAP = 500


@dataclass
class ClusterResult:
    """What :func:`cluster` returns.

    Attributes:
        labels: ``int64 (n,)``; ``-1`` = noise (HDBSCAN) or "other" (prototypes below the threshold).
        similarity: ``float32 (n,)`` cosine to the nearest prototype (prototypes only), else ``None``.
        n_clusters: cluster ids run over ``0..n_clusters-1`` (prototype clusters may be empty).
        method: the method that made them.
        info: how they were made at scale: ``kmeans_backend`` (``faiss``/``minibatch``) or
            ``micro_clusters`` (agglomerative over k-means micro-clusters); empty otherwise.
    """

    labels: np.ndarray
    similarity: np.ndarray | None
    n_clusters: int
    method: str
    info: dict = field(default_factory=dict)


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


def _check_k(k: int, n: int | None) -> int:
    """``k`` as an int; it must be positive and, when ``n`` is given, at most ``n``."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive number of clusters, got {k!r}")
    if n is not None and k > n:
        raise ConfigError(f"k={k} clusters asked for, but there are only {n} images; choose k <= {n}")
    return int(k)


def _check_prototypes(P, name: str = "prototype_embeddings") -> np.ndarray:
    if P is None or np.size(P) == 0:
        raise ConfigError(f"{name} is empty; give at least one text prototype, e.g. 'dog, cat, car'")
    return l2_normalize(check_matrix(P, name))


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


def _group_centres(Xn: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """Initial k-means centres in X's space from image–prototype similarities.

    Args:
        Xn: ``(n, d)`` L2-normalised rows. sim: ``(n, p)`` cosine of each image to each prototype.

    Returns:
        ``(p, d)`` normalised centres: centre ``i`` is the mean row of the images most similar
        to prototype ``i``, or the single image most similar to it when there is none.
    """
    nearest = np.argmax(sim, axis=1)
    centres = np.empty((sim.shape[1], Xn.shape[1]), dtype=np.float32)
    for i in range(sim.shape[1]):
        members = nearest == i
        centres[i] = Xn[members].mean(axis=0) if members.any() else Xn[int(np.argmax(sim[:, i]))]
    return l2_normalize(centres)


class KMeansClusterer:
    """k-means on L2-normalised rows (spherical in effect), optionally seeded by prototypes.

    Full ``KMeans`` with :data:`KMEANS_N_INIT` restarts up to :data:`MINIBATCH_THRESHOLD`
    rows; above, :func:`vlexplore.largescale.kmeans_at_scale` (faiss when installed, else
    ``MiniBatchKMeans``, fitted on a sample and assigned in blocks). With ``prototype_embeddings`` the centres start from
    the prototypes (one restart) and ``k`` must equal the number of prototypes: when X and
    the prototypes share a space (``joint`` is ``None`` or equals ``X``) the prototype vectors
    themselves are the initial centres; otherwise (e.g. the bundled model, whose ``image``
    view is not text-comparable) each initial centre is the mean X-row of the images whose
    ``joint`` vector is nearest to that prototype (the single most similar image when none is).

    Attributes:
        labels_: ``int64 (n,)``. n_clusters_: k. inertia_: the k-means loss of the kept run.
        backend_: ``sklearn``, or at scale ``faiss`` / ``minibatch``.

    Args:
        backend: force the large-scale backend (``faiss`` or ``minibatch``); ``None`` = automatic.
    """

    def __init__(self, *, k: int | None = None, seed: int = 0, prototype_embeddings=None,
                 backend: str | None = None) -> None:
        self.k = k
        self.seed = seed
        self.prototype_embeddings = prototype_embeddings
        self.backend = backend
        self.backend_ = "sklearn"

    def _init_centres(self, Xn: np.ndarray, joint, same_space: bool) -> np.ndarray:
        P = _check_prototypes(self.prototype_embeddings)
        if same_space:
            if P.shape[1] != Xn.shape[1]:
                raise ConfigError(
                    f"prototype embeddings have {P.shape[1]} dimensions but X has {Xn.shape[1]}; "
                    "they must come from the same model"
                )
            return P
        J = _check_joint(joint, len(Xn), P.shape[1])
        return _group_centres(Xn, J @ P.T)

    def fit(self, X, joint=None) -> KMeansClusterer:
        """Cluster ``X`` ``(n, d)``; ``joint`` ``(n, d_joint)`` is only used to place prototype seeds."""
        from sklearn.cluster import KMeans

        X_in = X
        X = check_matrix(X)
        n = len(X)
        Xn = l2_normalize(X)
        init = None
        if self.prototype_embeddings is not None:
            n_p = len(_check_prototypes(self.prototype_embeddings))
            if self.k is not None and self.k != n_p:
                raise ConfigError(
                    f"k={self.k} but {n_p} prototypes were given to seed k-means; "
                    "leave k empty or give one prototype per cluster"
                )
            k = _check_k(n_p, n)
            same_space = (
                joint is None
                or joint is X_in
                or (np.shape(joint) == X.shape and np.array_equal(np.asarray(joint, dtype=np.float32), X))
            )
            init = self._init_centres(Xn, joint, same_space)
        else:
            k = _check_k(self.k if self.k is not None else suggest_k(Xn, seed=self.seed), n)
        if k == 1:
            self.labels_ = np.zeros(n, dtype=np.int64)
            self.inertia_ = float(((Xn - Xn.mean(axis=0)) ** 2).sum())
        else:
            if init is not None:
                model = KMeans(n_clusters=k, init=init, n_init=1, random_state=self.seed)
            elif n > MINIBATCH_THRESHOLD:
                from .largescale import kmeans_at_scale

                self.labels_, self.inertia_, self.backend_ = kmeans_at_scale(
                    Xn, k, seed=self.seed, n_init=MINIBATCH_N_INIT, backend=self.backend)
                self.n_clusters_ = k
                return self
            else:
                model = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=self.seed)
            model.fit(Xn)
            self.labels_ = model.labels_.astype(np.int64)
            self.inertia_ = float(model.inertia_)
        self.n_clusters_ = k
        return self


class AgglomerativeClusterer:
    """Agglomerative clustering: ``ward`` on L2-normalised rows, or ``average`` linkage with cosine distance.

    Exact up to :data:`AGGLOMERATIVE_MAX_N` rows (it needs O(n²) memory); above, the same linkage
    over k-means micro-clusters (:func:`vlexplore.largescale.micro_cluster_linkage`).

    Attributes:
        labels_: ``int64 (n,)``. n_clusters_: k.
    """

    def __init__(self, *, k: int | None = None, linkage: str = "ward", seed: int = 0) -> None:
        self.k = k
        self.linkage = linkage
        self.seed = seed

    def fit(self, X, joint=None) -> AgglomerativeClusterer:
        """Cluster ``X`` ``(n, d)``; ``joint`` is ignored."""
        from sklearn.cluster import AgglomerativeClustering

        if self.linkage not in ("ward", "average"):
            raise ConfigError(f"linkage must be 'ward' or 'average', got {self.linkage!r}")
        X = check_matrix(X)
        n = len(X)
        Xn = l2_normalize(X)
        k = _check_k(self.k if self.k is not None else suggest_k(Xn, seed=self.seed), n)
        self.micro_clusters_ = None
        if k == 1:
            self.labels_ = np.zeros(n, dtype=np.int64)
        elif n > AGGLOMERATIVE_MAX_N:
            from .largescale import micro_cluster_linkage

            self.labels_, self.micro_clusters_ = micro_cluster_linkage(Xn, k, linkage=self.linkage, seed=self.seed)
        else:
            metric = "euclidean" if self.linkage == "ward" else "cosine"
            zero = ~Xn.any(axis=1)
            if metric == "cosine" and zero.any():
                # sklearn refuses zero rows for cosine (e.g. images whose captions hold no keyword). One extra
                # axis makes them a unit vector orthogonal to every other row (cosine distance 1, as
                # sklearn's cosine_distances treats them) and identical to each other; other distances stay.
                Xn = np.hstack([Xn, zero[:, None].astype(Xn.dtype)])
            model = AgglomerativeClustering(n_clusters=k, linkage=self.linkage, metric=metric).fit(Xn)
            self.labels_ = model.labels_.astype(np.int64)
        self.n_clusters_ = k
        return self


def default_min_cluster_size(n: int) -> int:
    """HDBSCAN's default smallest cluster for ``n`` points: ``n // 100``, at least 5, at most 500."""
    return int(min(max(5, n // 100), MIN_CLUSTER_SIZE_CAP))


class HDBSCANClusterer:
    """HDBSCAN on a PCA reduction (to ``reduce_dims``) of the L2-normalised rows.

    Density clustering on raw 512-d vectors is far too slow (a minute at 10k points);
    on ~10 PCA dimensions it takes well under a second. Points in no dense region get ``-1``.
    With fewer points than ``min_cluster_size`` every point is noise.

    Attributes:
        labels_: ``int64 (n,)`` with ``-1`` = noise. n_clusters_: clusters found.
        min_cluster_size_: the value used. n_components_: PCA dimensions used.
    """

    def __init__(self, *, min_cluster_size: int | None = None, reduce_dims: int = 10, seed: int = 0) -> None:
        self.min_cluster_size = min_cluster_size
        self.reduce_dims = reduce_dims
        self.seed = seed

    def fit(self, X, joint=None) -> HDBSCANClusterer:
        """Cluster ``X`` ``(n, d)``; ``joint`` is ignored."""
        from sklearn.cluster import HDBSCAN
        from sklearn.decomposition import PCA

        if self.reduce_dims < 2:
            raise ConfigError(f"reduce_dims must be >= 2, got {self.reduce_dims}")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise ConfigError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}")
        X = check_matrix(X)
        n, d = X.shape
        mcs = self.min_cluster_size if self.min_cluster_size is not None else default_min_cluster_size(n)
        self.min_cluster_size_ = int(mcs)
        Xn = l2_normalize(X)
        dims = min(self.reduce_dims, n, d)
        self.n_components_ = d
        if n < max(mcs, 2):
            self.labels_ = np.full(n, -1, dtype=np.int64)
            self.n_clusters_ = 0
            return self
        if dims < d:
            Xn = PCA(n_components=dims, random_state=self.seed).fit_transform(Xn)
            self.n_components_ = dims
        model = HDBSCAN(min_cluster_size=mcs, copy=True).fit(Xn)
        self.labels_ = model.labels_.astype(np.int64)
        self.n_clusters_ = int(self.labels_.max()) + 1 if (self.labels_ >= 0).any() else 0
        return self


def _check_joint(joint, n: int, d_prototypes: int) -> np.ndarray:
    J = check_matrix(joint, "joint")
    if len(J) != n:
        raise ConfigError(f"joint has {len(J)} rows but X has {n}; they must describe the same images")
    if J.shape[1] != d_prototypes:
        raise ConfigError(
            f"prototype embeddings have {d_prototypes} dimensions but the joint view has {J.shape[1]}; "
            "embed the prototypes with the same model as the images"
        )
    return l2_normalize(J)


class PrototypeClusterer:
    """Text prototypes as centroids: each image goes to the cluster of its most similar prototype.

    Zero-shot step: the cosine between the image's ``joint`` vector (``X`` when ``joint`` is
    ``None``) and each prototype; label ``i`` = prototype ``i`` (the first on ties). Images
    whose best similarity is below ``threshold`` get ``-1`` ("other").

    ``refine`` (default): the zero-shot groups then seed k-means on ``X`` (one centre per
    prototype, started at the mean ``X`` row of its group, see :func:`_group_centres`), run on
    the images that are not "other". Centre ``i`` stays prototype ``i``, so names are kept
    while the boundaries follow the image space — text prototypes are a good start but a poor
    boundary (they sit apart from the images: the modality gap). Skipped when fewer images
    than prototypes remain.

    With ``discover_rest`` the "other" images are k-means-clustered on ``X`` into ``k``
    (or :func:`suggest_k`) clusters numbered from ``n_prototypes`` on (``k`` is capped at
    the number of such images).

    Attributes:
        labels_: ``int64 (n,)``. similarity_: ``float32 (n,)`` cosine to the assigned prototype
        (for "other" and discovered images: to the nearest one). n_clusters_: prototypes +
        discovered clusters. n_prototypes_: number of prototypes.
    """

    def __init__(
        self,
        *,
        prototype_embeddings=None,
        threshold: float | None = None,
        discover_rest: bool = False,
        refine: bool = True,
        k: int | None = None,
        seed: int = 0,
    ) -> None:
        self.prototype_embeddings = prototype_embeddings
        self.threshold = threshold
        self.discover_rest = discover_rest
        self.refine = refine
        self.k = k
        self.seed = seed

    def fit(self, X, joint=None) -> PrototypeClusterer:
        """Assign ``X`` ``(n, d)`` (compared through ``joint`` ``(n, d_joint)`` when given) to prototypes."""
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        X = check_matrix(X)
        P = _check_prototypes(self.prototype_embeddings)
        J = _check_joint(X if joint is None else joint, len(X), P.shape[1])
        sim = J @ P.T
        labels = np.argmax(sim, axis=1).astype(np.int64)
        best = sim[np.arange(len(X)), labels].astype(np.float32)
        if self.threshold is not None:
            labels[best < self.threshold] = -1
        n_p = len(P)
        kept = np.flatnonzero(labels >= 0)
        if self.refine and len(kept) > n_p > 1:
            from sklearn.cluster import KMeans

            Xk = l2_normalize(X[kept])
            init = _group_centres(Xk, sim[kept])
            labels[kept] = KMeans(n_clusters=n_p, init=init, n_init=1, random_state=self.seed).fit(Xk).labels_
        similarity = np.where(labels >= 0, sim[np.arange(len(X)), np.maximum(labels, 0)], best)
        n_extra = 0
        rest = np.flatnonzero(labels == -1)
        if self.discover_rest and len(rest):
            k = self.k if self.k is not None else suggest_k(X[rest], seed=self.seed)
            k = min(_check_k(k, None), len(rest))
            sub = KMeansClusterer(k=k, seed=self.seed).fit(X[rest])
            labels[rest] = sub.labels_ + n_p
            n_extra = k
        self.labels_ = labels
        self.similarity_ = similarity.astype(np.float32)
        self.n_prototypes_ = n_p
        self.n_clusters_ = n_p + n_extra
        return self


def make_clusterer(cfg: ClusterConfig, *, prototype_embeddings=None):
    """The estimator for ``cfg.method``, unfitted.

    Args:
        cfg: the options.
        prototype_embeddings: ``(p, d_joint)`` text embeddings; required for ``prototypes``,
            seeds the centres for ``kmeans``, ignored by ``agglomerative`` and ``hdbscan``.

    Returns:
        An estimator with ``fit(X, joint=None) -> self``, ``labels_`` and ``n_clusters_``.
    """
    if cfg.method == "kmeans":
        return KMeansClusterer(k=cfg.k, seed=cfg.seed, prototype_embeddings=prototype_embeddings)
    if cfg.method == "agglomerative":
        return AgglomerativeClusterer(k=cfg.k, linkage=cfg.linkage, seed=cfg.seed)
    if cfg.method == "hdbscan":
        return HDBSCANClusterer(
            min_cluster_size=cfg.min_cluster_size, reduce_dims=cfg.reduce_dims, seed=cfg.seed
        )
    if cfg.method == "prototypes":
        return PrototypeClusterer(
            prototype_embeddings=prototype_embeddings,
            threshold=cfg.threshold,
            discover_rest=cfg.discover_rest,
            refine=cfg.refine,
            k=cfg.k,
            seed=cfg.seed,
        )
    raise ConfigError(f"unknown clustering method {cfg.method!r}")


def cluster(X, cfg: ClusterConfig, *, joint=None, prototype_embeddings=None) -> ClusterResult:
    """Cluster ``X`` ``(n, d)`` as ``cfg`` says (see :func:`make_clusterer`).

    Args:
        X: ``(n, d)`` vectors to cluster (the ``image`` view or a text representation).
        cfg: the options.
        joint: ``(n, d_joint)`` text-comparable view, for prototypes; ``None`` = ``X``.
        prototype_embeddings: ``(p, d_joint)`` prototype text embeddings.

    Returns:
        A :class:`ClusterResult`.
    """
    est = make_clusterer(cfg, prototype_embeddings=prototype_embeddings).fit(X, joint=joint)
    return ClusterResult(
        labels=np.asarray(est.labels_, dtype=np.int64),
        similarity=getattr(est, "similarity_", None),
        n_clusters=int(est.n_clusters_),
        method=cfg.method,
        info={k: v for k, v in (("kmeans_backend", getattr(est, "backend_", "sklearn")),
                                ("micro_clusters", getattr(est, "micro_clusters_", None)))
              if v not in (None, "sklearn")},
    )
