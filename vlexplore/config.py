"""Frozen option sets, one per pipeline step.

They are plain data: the CLI builds them from flags, the app from forms, and
the cache keys and provenance records are derived from them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import platformdirs

from .errors import ConfigError

CLUSTER_METHODS = ("kmeans", "agglomerative", "hdbscan", "prototypes")


def default_cache_dir() -> Path:
    """Where embeddings, captions, projections and thumbnails are kept.

    ``VLEXPLORE_CACHE_DIR`` overrides the per-user cache directory.
    """
    env = os.environ.get("VLEXPLORE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("vlexplore"))


@dataclass(frozen=True)
class EncodeConfig:
    """How images and texts are embedded.

    Attributes:
        model: registry name (``bundled``, ``ViT-B-32/openai``…) or a local checkpoint path.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``…
        batch_size: images per forward pass; ``0`` picks one for the device.
        num_workers: decoding threads that run beside inference.
        cache_dir: the on-disk store; ``None`` means :func:`default_cache_dir`.
    """

    model: str = "bundled"
    device: str = "auto"
    batch_size: int = 0
    num_workers: int = 2
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 0:
            raise ConfigError(f"batch_size must be >= 0 (0 = automatic), got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")

    @property
    def resolved_cache_dir(self) -> Path:
        """The cache root: ``cache_dir``, else :func:`default_cache_dir`."""
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()


@dataclass(frozen=True)
class ClusterConfig:
    """How to cluster.

    Attributes:
        method: one of ``kmeans``, ``agglomerative``, ``hdbscan``, ``prototypes``.
        k: number of clusters (k-means, agglomerative; for prototypes with
            ``discover_rest`` the number of extra clusters). ``None`` = suggested from the data.
        linkage: agglomerative linkage: ``ward`` (euclidean) or ``average`` (cosine).
        n_init: k-means restarts (the lowest loss wins); ``None`` = more for small folders, fewer
            for large ones (see :func:`vlexplore.cluster.default_n_init`).
        min_cluster_size: HDBSCAN's smallest cluster; ``None`` = about n/20, at least 5.
        reduce_dims: HDBSCAN runs on a reduction to this many dimensions.
        reducer: HDBSCAN's reduction: ``umap`` (cosine, cached; as BERTopic) or ``pca``.
        min_samples: HDBSCAN's density smoothing; ``None`` = ``min(min_cluster_size, 25)``.
        assign_noise: HDBSCAN: give each noise point the cluster of its nearest clustered point.
        prototypes: text prompts used as centroids (``method="prototypes"``) or as k-means seeds.
        threshold: prototypes: images whose best cosine similarity is below it go to "other" (-1).
            ``None`` = no threshold.
        discover_rest: prototypes: cluster the images left in "other" with k-means.
        seed: random state for every stochastic step.
        representation: what is clustered: ``image`` (default) or a text-guided / language-assisted
            representation (see :mod:`vlexplore.represent`).
        questions: prompt-guided clustering: the questions put to the captioner, one clustering each.
        options: representation-specific settings (e.g. ``{"n_nouns": 5}``), as plain data; a key the
            representation does not read is a :class:`ConfigError` (the typed options, with their
            defaults, are in :mod:`vlexplore.options`).
        naming: where cluster names come from: ``auto``, ``vocabulary`` (zero-shot words in the joint
            space) or ``captions`` (counted caption keywords); see :mod:`vlexplore.naming`.
    """

    method: str = "kmeans"
    k: int | None = None
    linkage: str = "ward"
    min_cluster_size: int | None = None
    reduce_dims: int = 5
    reducer: str = "umap"
    min_samples: int | None = None
    assign_noise: bool = False
    n_init: int | None = None
    prototypes: tuple[str, ...] = field(default_factory=tuple)
    threshold: float | None = None
    discover_rest: bool = False
    refine: bool = True
    seed: int = 0
    representation: str = "image"
    questions: tuple[str, ...] = field(default_factory=tuple)
    options: dict = field(default_factory=dict)
    naming: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in CLUSTER_METHODS:
            raise ConfigError(
                f"unknown clustering method {self.method!r}; choose one of {', '.join(CLUSTER_METHODS)}"
            )
        if self.k is not None and self.k < 1:
            raise ConfigError(f"k must be a positive number of clusters, got {self.k}")
        if self.linkage not in ("ward", "average"):
            raise ConfigError(f"linkage must be 'ward' or 'average', got {self.linkage!r}")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise ConfigError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}")
        if self.reduce_dims < 2:
            raise ConfigError(f"reduce_dims must be >= 2, got {self.reduce_dims}")
        if self.reducer not in ("umap", "pca"):
            raise ConfigError(f"reducer must be 'umap' or 'pca', got {self.reducer!r}")
        if self.min_samples is not None and self.min_samples < 1:
            raise ConfigError(f"min_samples must be >= 1, got {self.min_samples}")
        if self.n_init is not None and self.n_init < 1:
            raise ConfigError(f"n_init must be a positive number of restarts, got {self.n_init}")
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        if not isinstance(self.prototypes, tuple):
            object.__setattr__(self, "prototypes", tuple(self.prototypes))
        if not isinstance(self.questions, tuple):
            object.__setattr__(self, "questions", tuple(self.questions))
        from .represent import REPRESENTATIONS

        if self.representation not in REPRESENTATIONS:
            raise ConfigError(
                f"unknown representation {self.representation!r}; choose one of {', '.join(REPRESENTATIONS)}"
            )
        from .options import check_options

        check_options(self.representation, self.options)
        if self.method == "prototypes" and not [p for p in self.prototypes if p.strip()]:
            raise ConfigError('method "prototypes" needs at least one text prototype, e.g. "dog, cat, car"')

    def to_dict(self) -> dict:
        """The settings as plain data (for provenance and cache keys)."""
        return asdict(self)
