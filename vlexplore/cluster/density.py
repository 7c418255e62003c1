"""HDBSCAN on a low-dimensional reduction (UMAP as BERTopic does it, or PCA), with a cached reducer.

Density clustering on raw 512-d vectors is slow and finds little (distances concentrate); on a
5–10-d UMAP embedding (``metric="cosine"``, ``min_dist=0``) the dense groups separate. The UMAP
reduction is the slow part, so it is cached by content: re-clustering with another
``min_cluster_size`` reuses it (in this process, and on disk when a ``cache_dir`` is given).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..models.base import l2_normalize
from .checks import check_matrix

#: HDBSCAN's default smallest cluster is about n/20, at least 5 and at most this; its default
#: ``min_samples`` is at most :data:`MIN_SAMPLES_CAP`; clusters are the tree's leaves
#: (``cluster_selection_method="leaf"``). On a UMAP-5 space this gives ACC 0.63 (0.74 with noise
#: assigned) on Fashion-MNIST-10k and 0.88 (0.95) on sklearn's digits, where the "excess of mass"
#: selection merges similar classes (0.42 on Fashion-MNIST) — see bench/recluster.py.
MIN_CLUSTER_SIZE_CAP = 5000
MIN_SAMPLES_CAP = 25
SELECTION = "leaf"
REDUCERS = ("umap", "pca")
#: UMAP neighbours (BERTopic's default) and the rows UMAP is fitted on; the rest are placed by
#: ``transform`` (UMAP on every row of 100k takes minutes on two cores).
UMAP_NEIGHBOURS = 15
UMAP_FIT_MAX = 20_000
#: Reductions kept in memory (each ``n × dims`` float32).
_MEMORY_SLOTS = 4
_MEMORY: OrderedDict[str, np.ndarray] = OrderedDict()


def default_min_cluster_size(n: int) -> int:
    """HDBSCAN's default smallest cluster for ``n`` points: ``n // 20``, at least 5, at most 5000."""
    return int(min(max(5, n // 20), MIN_CLUSTER_SIZE_CAP))


def _key(Xn: np.ndarray, reducer: str, dims: int, seed: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{reducer}:{dims}:{seed}:{UMAP_NEIGHBOURS}:{UMAP_FIT_MAX}:{Xn.shape}".encode())
    h.update(np.ascontiguousarray(Xn, dtype=np.float32).data)
    return h.hexdigest()


def _umap(Xn: np.ndarray, dims: int, seed: int) -> np.ndarray:
    import warnings

    import umap

    n = len(Xn)
    nn = max(2, min(UMAP_NEIGHBOURS, n - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs is 1 with a random_state; UMAP says so on every call
        model = umap.UMAP(
            n_components=dims,
            n_neighbors=nn,
            min_dist=0.0,
            metric="cosine",
            random_state=seed,
            init="spectral" if n > dims + 1 else "random",
        )
        if n <= UMAP_FIT_MAX:
            return model.fit_transform(Xn).astype(np.float32)
        fit = np.sort(np.random.default_rng(seed).choice(n, size=UMAP_FIT_MAX, replace=False))
        out = np.empty((n, dims), dtype=np.float32)
        out[fit] = model.fit_transform(Xn[fit])
        rest = np.setdiff1d(np.arange(n), fit)
        out[rest] = model.transform(Xn[rest])
    return out


def reduce(
    Xn: np.ndarray, dims: int, *, reducer: str = "umap", seed: int = 0, cache_dir: Path | None = None
) -> tuple[np.ndarray, bool]:
    """``Xn`` ``(n, d)`` reduced to ``dims`` dimensions by UMAP or PCA: ``(float32 (n, dims), cached)``.

    Cached by the rows' content and the settings, in memory and, with ``cache_dir``, in
    ``cache_dir/reductions/<key>.npy``. ``cached`` says whether the result came from a cache.
    """
    if reducer not in REDUCERS:
        raise ConfigError(f"reducer must be one of {', '.join(REDUCERS)}, got {reducer!r}")
    n, d = Xn.shape
    dims = int(min(dims, d, max(2, n - 2)))
    if dims >= d:
        return np.asarray(Xn, dtype=np.float32), False
    key = _key(Xn, reducer, dims, seed)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key], True
    path = Path(cache_dir) / "reductions" / f"{key}.npy" if cache_dir is not None else None
    if path is not None and path.exists():
        try:
            Z = np.load(path)
            if Z.shape == (n, dims):
                _remember(key, Z)
                return Z, True
        except (OSError, ValueError):
            pass  # a torn or foreign file: recompute it
    if reducer == "umap" and n > dims + 2:
        Z = _umap(Xn, dims, seed)
    else:
        from sklearn.decomposition import PCA

        Z = PCA(n_components=dims, random_state=seed).fit_transform(Xn).astype(np.float32)
    _remember(key, Z)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, Z)
            tmp.replace(path)
        except OSError:
            pass  # the cache is a convenience; clustering goes on without it
    return Z, False


def _remember(key: str, Z: np.ndarray) -> None:
    _MEMORY[key] = Z
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > _MEMORY_SLOTS:
        _MEMORY.popitem(last=False)


def _hdbscan(Z: np.ndarray, mcs: int, min_samples: int | None, backend: str) -> np.ndarray:
    if backend == "hdbscan":
        try:
            import hdbscan
        except ImportError:
            backend = "sklearn"
        else:
            return (
                hdbscan.HDBSCAN(
                    min_cluster_size=mcs,
                    min_samples=min_samples,
                    cluster_selection_method=SELECTION,
                    core_dist_n_jobs=1,
                )
                .fit(Z)
                .labels_.astype(np.int64)
            )
    if backend != "sklearn":
        raise ConfigError(f"HDBSCAN backend must be 'hdbscan' or 'sklearn', got {backend!r}")
    from sklearn.cluster import HDBSCAN

    return (
        HDBSCAN(min_cluster_size=mcs, min_samples=min_samples, cluster_selection_method=SELECTION, copy=True)
        .fit(Z)
        .labels_.astype(np.int64)
    )


def nearest_cluster(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``labels`` with every noise point (``-1``) given the cluster of its nearest clustered point in ``Z``."""
    noise = labels < 0
    if not noise.any() or noise.all():
        return labels
    from scipy.spatial import cKDTree

    kept = np.flatnonzero(~noise)
    _, j = cKDTree(Z[kept]).query(Z[noise], k=1)
    out = labels.copy()
    out[noise] = labels[kept[j]]
    return out


class HDBSCANClusterer:
    """HDBSCAN on a UMAP (default) or PCA reduction to ``reduce_dims`` of the L2-normalised rows.

    Points in no dense region get ``-1``, unless ``assign_noise``: then each goes to the cluster
    of its nearest clustered point in the reduced space (``noise_share_`` still tells how many were
    noise). With fewer points than ``min_cluster_size`` every point is noise.

    Attributes:
        labels_: ``int64 (n,)`` with ``-1`` = noise. n_clusters_: clusters found.
        min_cluster_size_: the value used. n_components_: dimensions HDBSCAN ran on.
        noise_share_: the share of points HDBSCAN left as noise. reduction_cached_: the reduction was reused.

    Args:
        reducer: ``umap`` or ``pca``. backend: ``hdbscan`` (the package) or ``sklearn``.
        min_samples: HDBSCAN's density smoothing; ``None`` = ``min(min_cluster_size, 25)``.
        cache_dir: where UMAP reductions are kept on disk (``None`` = in memory only).
    """

    def __init__(
        self,
        *,
        min_cluster_size: int | None = None,
        reduce_dims: int = 5,
        seed: int = 0,
        reducer: str = "umap",
        assign_noise: bool = False,
        min_samples: int | None = None,
        backend: str = "hdbscan",
        cache_dir: Path | None = None,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.reduce_dims = reduce_dims
        self.seed = seed
        self.reducer = reducer
        self.assign_noise = assign_noise
        self.min_samples = min_samples
        self.backend = backend
        self.cache_dir = cache_dir

    def fit(self, X, joint=None) -> HDBSCANClusterer:
        """Cluster ``X`` ``(n, d)``; ``joint`` is ignored."""
        if self.reduce_dims < 2:
            raise ConfigError(f"reduce_dims must be >= 2, got {self.reduce_dims}")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise ConfigError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}")
        if self.min_samples is not None and self.min_samples < 1:
            raise ConfigError(f"min_samples must be >= 1, got {self.min_samples}")
        if self.reducer not in REDUCERS:
            raise ConfigError(f"reducer must be one of {', '.join(REDUCERS)}, got {self.reducer!r}")
        X = check_matrix(X)
        n, d = X.shape
        mcs = self.min_cluster_size if self.min_cluster_size is not None else default_min_cluster_size(n)
        self.min_cluster_size_ = int(mcs)
        self.n_components_ = d
        self.reduction_cached_ = False
        if n < max(mcs, 2):
            self.labels_ = np.full(n, -1, dtype=np.int64)
            self.n_clusters_ = 0
            self.noise_share_ = 1.0
            return self
        Z, self.reduction_cached_ = reduce(
            l2_normalize(X), self.reduce_dims, reducer=self.reducer, seed=self.seed, cache_dir=self.cache_dir
        )
        self.n_components_ = Z.shape[1]
        ms = min(int(self.min_samples or min(mcs, MIN_SAMPLES_CAP)), n - 1)
        labels = _hdbscan(np.asarray(Z, dtype=np.float64), int(mcs), ms, self.backend)
        self.noise_share_ = float((labels < 0).mean())
        self.labels_ = nearest_cluster(Z, labels) if self.assign_noise else labels
        self.n_clusters_ = int(self.labels_.max()) + 1 if (self.labels_ >= 0).any() else 0
        return self
