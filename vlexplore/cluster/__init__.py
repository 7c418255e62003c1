"""Clustering: k-means, agglomerative, HDBSCAN (on a UMAP or PCA reduction) and text prototypes as centroids.

Every method works in cosine geometry: rows are L2-normalised before they are
clustered (embeddings already are; other matrices, e.g. concatenations, become so).
One dispatcher, :func:`make_clusterer`, turns a :class:`~vlexplore.config.ClusterConfig`
into a small sklearn-style estimator; :func:`cluster_vectors` is the one-call form.

The modules, by job: :mod:`.checks` (input checks, :func:`suggest_k`), :mod:`.kmeans` (the library's
one k-means, :func:`kmeans`), :mod:`.hierarchy` (Ward / average linkage), :mod:`.density` (HDBSCAN
and its cached reduction), :mod:`.prototypes` (text prototypes).
"""

from __future__ import annotations

import numpy as np

from ..config import ClusterConfig
from ..errors import ConfigError
from ..results import Clustered, ClusterInfo
from .checks import SUGGEST_K_MAX, SUGGEST_K_SAMPLE, check_k, check_matrix, suggest_k
from .density import MIN_CLUSTER_SIZE_CAP, HDBSCANClusterer, default_min_cluster_size
from .hierarchy import AGGLOMERATIVE_MAX_N, WARD_PCA_DIMS, AgglomerativeClusterer
from .kmeans import (
    KMEANS_N_INIT,
    MINIBATCH_BATCH_SIZE,
    MINIBATCH_N_INIT,
    MINIBATCH_THRESHOLD,
    KMeansClusterer,
    KMeansFit,
    default_n_init,
    kmeans,
)
from .prototypes import PrototypeClusterer

__all__ = [
    "AGGLOMERATIVE_MAX_N",
    "KMEANS_N_INIT",
    "MINIBATCH_BATCH_SIZE",
    "MINIBATCH_N_INIT",
    "MINIBATCH_THRESHOLD",
    "MIN_CLUSTER_SIZE_CAP",
    "SUGGEST_K_MAX",
    "SUGGEST_K_SAMPLE",
    "WARD_PCA_DIMS",
    "AgglomerativeClusterer",
    "ClusterResult",
    "Clustered",
    "HDBSCANClusterer",
    "KMeansClusterer",
    "KMeansFit",
    "PrototypeClusterer",
    "check_k",
    "check_matrix",
    "cluster_vectors",
    "default_min_cluster_size",
    "default_n_init",
    "kmeans",
    "make_clusterer",
    "suggest_k",
]


#: The old name of :class:`~vlexplore.results.Clustered`, kept for one release.
ClusterResult = Clustered


def make_clusterer(cfg: ClusterConfig, *, prototype_embeddings=None, cache_dir=None):
    """The estimator for ``cfg.method``, unfitted.

    Args:
        cfg: the options.
        prototype_embeddings: ``(p, d_joint)`` text embeddings; required for ``prototypes``,
            seeds the centres for ``kmeans``, ignored by ``agglomerative`` and ``hdbscan``.
        cache_dir: where HDBSCAN keeps its UMAP reductions on disk (``None`` = in memory only).

    Returns:
        An estimator with ``fit(X, joint=None) -> self``, ``labels_`` and ``n_clusters_``.
    """
    if cfg.method == "kmeans":
        return KMeansClusterer(
            k=cfg.k, seed=cfg.seed, prototype_embeddings=prototype_embeddings, n_init=cfg.n_init
        )
    if cfg.method == "agglomerative":
        return AgglomerativeClusterer(k=cfg.k, linkage=cfg.linkage, seed=cfg.seed)
    if cfg.method == "hdbscan":
        return HDBSCANClusterer(
            min_cluster_size=cfg.min_cluster_size,
            reduce_dims=cfg.reduce_dims,
            seed=cfg.seed,
            reducer=cfg.reducer,
            assign_noise=cfg.assign_noise,
            min_samples=cfg.min_samples,
            cache_dir=cache_dir,
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


def _info(est) -> ClusterInfo:
    if isinstance(est, KMeansClusterer):
        return {"kmeans_backend": est.backend_, "kmeans_n_init": est.n_init_} if est.n_init_ else {}
    if isinstance(est, AgglomerativeClusterer):
        return {"micro_clusters": est.micro_clusters_} if est.micro_clusters_ is not None else {}
    if isinstance(est, HDBSCANClusterer):
        return {
            "noise_share": round(est.noise_share_, 4),
            "reducer": est.reducer,
            "reduce_dims": int(est.n_components_),
            "min_cluster_size": est.min_cluster_size_,
            "noise_assigned": bool(est.assign_noise),
            "reduction_cached": bool(est.reduction_cached_),
        }
    return {}


def cluster_vectors(
    X, cfg: ClusterConfig, *, joint=None, prototype_embeddings=None, cache_dir=None
) -> Clustered:
    """Cluster ``X`` ``(n, d)`` as ``cfg`` says (see :func:`make_clusterer`).

    Args:
        X: ``(n, d)`` vectors to cluster (the ``image`` view or a text representation).
        cfg: the options.
        joint: ``(n, d_joint)`` text-comparable view, for prototypes; ``None`` = ``X``.
        prototype_embeddings: ``(p, d_joint)`` prototype text embeddings.
        cache_dir: on-disk cache for HDBSCAN's reduction (optional).

    Returns:
        A :class:`~vlexplore.results.Clustered` (labels, similarity, ``n_clusters``, ``info``; no names or map).
    """
    est = make_clusterer(cfg, prototype_embeddings=prototype_embeddings, cache_dir=cache_dir).fit(
        X, joint=joint
    )
    return Clustered(
        labels=np.asarray(est.labels_, dtype=np.int64),
        similarity=getattr(est, "similarity_", None),
        n_clusters=int(est.n_clusters_),
        config=cfg,
        info=_info(est),
    )
