"""Text prototypes as centroids (zero-shot, optionally refined by k-means in the image space).

One scale for every model
    Thresholds here, on the Cluster page and in prototype drift (:mod:`vlexplore.drift`) are **cosine
    similarities** between an image's and a prompt's unit embeddings, for CLIP, SigLIP and the bundled
    model alike. A model's own score is a monotone function of that cosine: CLIP ``softmax(scale · cos)``
    over the prompts, SigLIP ``sigmoid(scale · cos + bias)`` per prompt. So a cosine threshold keeps the
    same images for a model whatever its score, and a SigLIP probability ``p`` is the cosine
    :func:`probability_to_cosine` gives (its ``logit_scale`` and ``logit_bias``, :func:`score_scale`);
    the Cluster page shows that probability beside the slider for SigLIP models. The sigmoid is never
    applied to compare or average: means and margins of cosines are invariant to SigLIP's affine
    ``scale · cos + bias``, means of sigmoids are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, VlexploreError
from ..models.base import l2_normalize
from .checks import check_joint, check_k, check_matrix, check_prototypes, suggest_k
from .kmeans import KMeansClusterer, group_centres, kmeans


class PrototypeClusterer:
    """Text prototypes as centroids: each image goes to the cluster of its most similar prototype.

    Zero-shot step: the cosine between the image's ``joint`` vector (``X`` when ``joint`` is
    ``None``) and each prototype; label ``i`` = prototype ``i`` (the first on ties). Images
    whose best similarity is below ``threshold`` get ``-1`` ("other").

    ``refine`` (default): the zero-shot groups then seed k-means on ``X`` (one centre per
    prototype, started at the mean ``X`` row of its group, see :func:`.kmeans.group_centres`), run on
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
        P = check_prototypes(self.prototype_embeddings)
        J = check_joint(X if joint is None else joint, len(X), P.shape[1])
        sim = J @ P.T
        labels = np.argmax(sim, axis=1).astype(np.int64)
        best = sim[np.arange(len(X)), labels].astype(np.float32)
        if self.threshold is not None:
            labels[best < self.threshold] = -1
        n_p = len(P)
        kept = np.flatnonzero(labels >= 0)
        if self.refine and len(kept) > n_p > 1:
            Xk = l2_normalize(X[kept])
            labels[kept] = kmeans(Xk, n_p, seed=self.seed, init=group_centres(Xk, sim[kept])).labels
        similarity = np.where(labels >= 0, sim[np.arange(len(X)), np.maximum(labels, 0)], best)
        n_extra = 0
        rest = np.flatnonzero(labels == -1)
        if self.discover_rest and len(rest):
            k = self.k if self.k is not None else suggest_k(X[rest], seed=self.seed)
            k = min(check_k(k, None), len(rest))
            sub = KMeansClusterer(k=k, seed=self.seed).fit(X[rest])
            labels[rest] = sub.labels_ + n_p
            n_extra = k
        self.labels_ = labels
        self.similarity_ = similarity.astype(np.float32)
        self.n_prototypes_ = n_p
        self.n_clusters_ = n_p + n_extra
        return self


@dataclass(frozen=True)
class ScoreScale:
    """How a model turns a cosine into its score: ``scale · cos (+ bias)``; ``bias`` only for SigLIP."""

    scale: float
    bias: float | None = None

    @property
    def sigmoid(self) -> bool:
        """SigLIP-style: ``sigmoid(scale · cos + bias)`` is a per-prompt probability."""
        return self.bias is not None


def score_scale(encoder) -> ScoreScale | None:
    """The encoder's ``logit_params`` (open_clip models) as a :class:`ScoreScale`; ``None`` without them.

    ``None`` too when a lazy encoder's weights cannot be loaded: the step that needs the model says why.
    """
    try:
        params = getattr(encoder, "logit_params", None)
    except VlexploreError:
        return None
    if not isinstance(params, tuple) or len(params) != 2:
        return None
    scale, bias = params
    return ScoreScale(float(scale), None if bias is None else float(bias))


def cosine_to_probability(cos, scale: ScoreScale) -> np.ndarray:
    """SigLIP's probability ``sigmoid(scale · cos + bias)`` of cosines (any shape)."""
    if not scale.sigmoid:
        raise ConfigError("only a SigLIP-style model (one with a logit bias) scores cosines as probabilities")
    from scipy.special import expit

    return expit(scale.scale * np.asarray(cos, dtype=np.float64) + float(scale.bias or 0.0))


def probability_to_cosine(p: float, scale: ScoreScale) -> float:
    """The cosine at which a SigLIP model's probability is ``p`` (``0 < p < 1``): ``(logit(p) − bias) / scale``."""
    if not scale.sigmoid:
        raise ConfigError("only a SigLIP-style model (one with a logit bias) scores cosines as probabilities")
    if not isinstance(p, int | float) or not 0 < p < 1:
        raise ConfigError(f"a probability threshold lies strictly between 0 and 1, got {p!r}")
    from scipy.special import logit

    return float((logit(p) - float(scale.bias or 0.0)) / scale.scale)
