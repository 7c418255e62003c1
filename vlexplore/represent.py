"""The matrices clustering runs on, one builder per representation name.

A builder takes the embedded collection and the cluster options and returns a
:class:`Representation`. Builders live in their own modules and are imported
only when chosen, so this file is a table, not an implementation:

=================  ================================================================
``image``          the image embedding (default)
``caption-tfidf``  captions → TF-IDF (text-guided clustering, Stephan et al. 2024)
``caption-sbert``  captions → sentence embeddings
``keywords``       keywords extracted from the captions → TF-IDF
``prompt``         answers to the user's questions (VQA); best prompt by k-means loss
``nouns``          TAC training-free: [image ‖ text counterpart from selected nouns]
``relations``      rows of the image × noun similarity matrix C (Ma et al. 2026)
``centres``        learned semantic centres in the text space (returns labels itself)
``pair``           image ‖ caption embedding (the caption through the encoder's text tower)
=================  ================================================================
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError

#: name → "module:function" of its builder (imported on use).
BUILDERS: dict[str, str] = {
    "image": "vlexplore.represent:image_representation",
    "caption-tfidf": "vlexplore.textguided:caption_tfidf",
    "caption-sbert": "vlexplore.textguided:caption_sbert",
    "keywords": "vlexplore.textguided:keyword_tfidf",
    "prompt": "vlexplore.textguided:prompt_guided",
    "nouns": "vlexplore.language:tac_representation",
    "relations": "vlexplore.language:relation_representation",
    "centres": "vlexplore.language:semantic_centres",
    "pair": "vlexplore.pair:pair_representation",
}

REPRESENTATIONS = tuple(BUILDERS)


@dataclass
class Representation:
    """What a builder returns.

    Attributes:
        X: ``float32 (n, d)`` the matrix to cluster (rows L2-normalised where cosine applies).
        joint: ``(n, d_joint)`` the text-comparable view for prototypes, or ``None`` (= not applicable).
        texts: one text per image to explain clusters with (captions, answers, nouns), or ``None``
            (= use the captions).
        labels: ``int64 (n,)`` when the method clusters by itself (learned centres); then the
            clusterer is not run.
        info: anything to show or export (chosen prompt, rankings, selected nouns, losses…).
    """

    X: np.ndarray
    joint: np.ndarray | None = None
    texts: list[str] | None = None
    labels: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def image_representation(emb, cfg) -> Representation:
    """The image embedding as it is (``image`` view; ``joint`` for prototypes)."""
    return Representation(X=emb.views["image"], joint=emb.views.get("joint"))


def build_representation(emb, cfg) -> Representation:
    """Dispatch on ``cfg.representation``.

    Raises:
        ConfigError: unknown name, or the builder's module is not available.
    """
    name = getattr(cfg, "representation", "image")
    target = BUILDERS.get(name)
    if target is None:
        raise ConfigError(f"unknown representation {name!r}; choose one of {', '.join(REPRESENTATIONS)}")
    module_name, func_name = target.split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"representation {name!r} is not available in this build ({exc})") from exc
    rep = func(emb, cfg)
    if not isinstance(rep, Representation):
        raise ConfigError(f"representation {name!r} returned {type(rep).__name__}, not a Representation")
    return rep
