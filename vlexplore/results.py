"""The two results the stages hand each other: :class:`Embedded` and :class:`Clustered`.

One class each, whichever call made it: :func:`vlexplore.encode.embed_images` and
:func:`vlexplore.pipeline.embed` both return an :class:`Embedded` (the latter with captions and the
encoder filled in); :func:`vlexplore.cluster.cluster_vectors` and
:func:`vlexplore.pipeline.cluster_embedded` both return a :class:`Clustered` (the latter with names,
keywords, the map and scores filled in). This module imports only :mod:`vlexplore.config` at run
time, so any stage may import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from .config import ClusterConfig

if TYPE_CHECKING:
    from .collection import Collection


@dataclass
class Embedded:
    """Images with their vectors (and, after :func:`vlexplore.pipeline.embed`, captions).

    Attributes:
        collection: the readable images (failed decodes moved to ``collection.skipped``).
        views: ``{"image": (n, d), "joint": (n, d_joint)}`` float32, L2-normalised, rows aligned with
            ``collection.items``. With no images left every view is an empty ``(0, 0)`` array.
        model_id: the encoder's id (the cache namespace).
        captions: one text per image (label captions for the bundled model); empty from
            :func:`~vlexplore.encode.embed_images`.
        model_description: which encoder made them, for people (defaults to ``model_id``).
        encoder: the encoder, kept for prompts and search (``None`` from ``embed_images``).
        fallback_note: set when the requested model could not be had and the bundled one was used.
        n_computed: images that went through the model in this call (0 = all from cache).
        cache_dir: the disk cache the embeddings came from (text-guided representations cache there too).
    """

    collection: Collection
    views: dict[str, np.ndarray]
    model_id: str
    captions: list[str] = field(default_factory=list)
    model_description: str = ""
    encoder: Any = field(repr=False, default=None)
    fallback_note: str | None = None
    n_computed: int = 0
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.model_description:
            self.model_description = self.model_id

    @property
    def n(self) -> int:
        """Number of images."""
        return len(self.collection)


class ClusterInfo(TypedDict, total=False):
    """How a clustering was made: the keys the Cluster page, the CLI and the export read.

    A plain dict at run time (it is written to JSON as it is); representations may add keys of their own.
    """

    # the clusterer (:func:`vlexplore.cluster.cluster_vectors`)
    kmeans_backend: str  #: ``faiss``, ``sklearn`` or ``minibatch``
    kmeans_n_init: int
    micro_clusters: int  #: agglomerative over k-means micro-clusters
    noise_share: float  #: HDBSCAN: share of images left as noise
    reducer: str
    reduce_dims: int
    min_cluster_size: int
    noise_assigned: bool
    reduction_cached: bool
    # the representation (:mod:`vlexplore.textguided`, :mod:`vlexplore.language`)
    text_source: str
    answerer: str
    chosen_prompt: str
    prompt_ranking: list[dict[str, Any]]
    ami: list[list[float]]
    ami_prompts: list[str]
    selected_nouns_summary: str
    centre_nouns: dict[int, list[str]]
    rounds: list[dict[str, Any]]
    confident: np.ndarray  #: ``bool (n,)`` images whose neighbours agree with their label
    # the names (:mod:`vlexplore.naming`)
    naming: dict[str, Any]
    caption_keywords: dict[int, list[str]]
    vocabulary_keywords: dict[int, list[str]]
    drifted: list[int]  #: prototype clusters whose members moved away from their prompt


def _no_coords() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.float32)


@dataclass
class Clustered:
    """A clustering (and, after :func:`vlexplore.pipeline.cluster_embedded`, everything shown about it).

    Attributes:
        labels: ``int64 (n,)``; ``-1`` = noise (HDBSCAN) or "other" (prototypes below the threshold).
        names: cluster id → display name; keywords: cluster id → keywords (empty from ``cluster_vectors``).
        similarity: ``float32 (n,)`` cosine to the assigned prototype (prototypes only), else ``None``.
        coords: ``(n, 2)`` map coordinates; ``(0, 2)`` from ``cluster_vectors``, which does not project.
        metrics: ``acc``/``nmi``/``ari`` when folder labels exist, else label-free scores.
        config: the options that made it.
        prototypes: the parsed prototype prompts (prototypes only).
        texts: the per-image texts the keywords were counted on (captions, answers…).
        info: how it was made: what the clusterer and the representation report (see
            :class:`ClusterInfo`).
        n_clusters: cluster ids run over ``0..n_clusters-1`` (prototype clusters may be empty);
            left out (``-1``) = one more than the largest label.
    """

    labels: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    keywords: dict[int, list[str]] = field(default_factory=dict)
    similarity: np.ndarray | None = None
    coords: np.ndarray = field(default_factory=_no_coords)
    metrics: dict = field(default_factory=dict)
    config: ClusterConfig = field(default_factory=ClusterConfig)
    prototypes: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    info: ClusterInfo = field(default_factory=lambda: ClusterInfo())
    n_clusters: int = -1

    def __post_init__(self) -> None:
        if self.n_clusters < 0:
            labels = np.asarray(self.labels)
            self.n_clusters = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0

    @property
    def method(self) -> str:
        """The clustering method (``config.method``)."""
        return self.config.method
