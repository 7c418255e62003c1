"""The ``pair`` representation: each image and its caption, clustered as one image–text pair.

The caption is embedded by the encoder's own text tower, so it lands in the same joint space as the
image's ``joint`` vector; the two unit vectors are then combined:

- ``combine="concat"`` (default): ``[√(1-w)·image ‖ √w·caption]`` — a unit row whose cosine to another
  row is the weighted mean of the two cosines, so neither part can drown the other whatever its size;
  the image part is the ``image`` view (the encoder's own image features) or, with
  ``image_view="joint"``, the joint view.
- ``combine="mean"``: ``normalise((1-w)·joint + w·caption)`` — one vector in the joint space itself
  (what prototypes and names compare against). It needs aligned towers to mean anything.

The default — ``concat`` of the ``image`` view and the caption's *sentence* embedding (the one
``caption-sbert`` clusters), weight 0.5 — was chosen by measurement (``bench/pairs.py``,
``bench/results/pairs.json`` and ``pairs_sentence.json``): on the Tux Paint demo (real stamp descriptions,
bundled model) ACC 0.75 against 0.63 image and 0.64 caption, on the package's 12 categories 0.62 against
0.42 image (caption alone 0.65); the joint-space variants reach 0.67 and 0.53 there, because the bundled
text tower maps a text onto ImageNet's classes and loses most of a caption.
Images without a caption are represented by their image alone (the caption part is the image's own
``joint`` vector), so a partly captioned folder still clusters. Caption vectors are cached on disk by
text under ``<model id>:pair-text``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .models.base import l2_normalize
from .represent import Representation

COMBINE = ("concat", "mean")


@dataclass(frozen=True)
class PairOptions:
    """``pair``: how image and caption embeddings are combined.

    Attributes:
        combine: ``concat`` or ``mean`` (see :mod:`vlexplore.pair`).
        caption_weight: ``w`` in [0, 1], the caption's share (0 = the image alone, 1 = the caption alone).
        image_view: the image part of ``concat``: ``image`` (default) or ``joint``.
        caption_space: the caption part of ``concat``: ``sentence`` (default: the sentence embedder
            ``caption-sbert`` uses; uncaptioned rows are then the image alone) or ``joint`` (the encoder's
            text tower; ``mean`` always uses it).
    """

    combine: str = "concat"
    caption_weight: float = 0.5
    image_view: str = "image"
    caption_space: str = "sentence"


class _TextTower:
    """The encoder's text tower behind the sentence-embedding interface (``encode``, ``model_id``)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.model_id = f"{encoder.model_id}:pair-text"

    def encode(self, texts):
        from .encode import embed_texts

        return embed_texts(list(texts), self.encoder)


def caption_vectors(emb) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 (n, d_joint) unit caption vectors, bool (n,) has a caption)``.

    Uncaptioned rows hold the image's own ``joint`` vector.

    Raises:
        ConfigError: no joint view or no encoder (a model without a text tower), or no caption at all.
    """
    joint = emb.views.get("joint")
    if joint is None or getattr(emb, "encoder", None) is None:
        raise ConfigError("representation 'pair' needs a model with a text tower (a 'joint' view)")
    captions = [("" if c is None else str(c)).strip() for c in (emb.captions or [""] * emb.n)]
    has = np.array([bool(c) for c in captions], dtype=bool)
    if not has.any():
        raise ConfigError(
            "representation 'pair' needs captions: put photo.txt beside photo.jpg or a captions.csv "
            "(path, caption) in the folder, pass --captions FILE, or choose a captioner"
        )
    from .sentences import embed_sentences

    out = np.array(joint, dtype=np.float32, copy=True)
    idx = np.flatnonzero(has)
    out[idx] = embed_sentences([captions[i] for i in idx], _TextTower(emb.encoder), cache_dir=emb.cache_dir)
    return out, has


def pair_matrix(image: np.ndarray, text: np.ndarray, *, combine: str = "concat", weight: float = 0.5):
    """Combine unit rows ``image (n, d1)`` and ``text (n, d2)`` → ``float32`` unit rows (see the module).

    Raises:
        ConfigError: unknown ``combine``, ``weight`` outside [0, 1], row counts (or, for ``mean``, widths)
            that differ.
    """
    if combine not in COMBINE:
        raise ConfigError(f"pair option combine must be one of {', '.join(COMBINE)}, got {combine!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise ConfigError(f"pair option caption_weight must be a number in [0, 1], got {weight!r}")
    if len(image) != len(text):
        raise ConfigError(f"{len(image)} image rows but {len(text)} caption rows")
    if combine == "mean":
        if image.shape[1] != text.shape[1]:
            raise ConfigError("combine='mean' needs image and caption vectors in one space (the joint view)")
        return l2_normalize((1 - weight) * image + weight * text).astype(np.float32)
    return np.hstack([np.sqrt(1 - weight) * image, np.sqrt(weight) * text]).astype(np.float32)


def pair_representation(emb, cfg) -> Representation:
    """Image and caption embeddings combined (``cfg.options``: :class:`PairOptions`)."""
    from .options import representation_options

    o = representation_options("pair", cfg.options)
    if o.image_view not in ("image", "joint") or o.image_view not in emb.views:
        raise ConfigError(
            f"pair option image_view must be 'image' or 'joint' (a view these embeddings have), got {o.image_view!r}"
        )
    if o.caption_space not in ("joint", "sentence"):
        raise ConfigError(f"pair option caption_space must be 'sentence' or 'joint', got {o.caption_space!r}")
    text, has = caption_vectors(emb)
    joint = emb.views["joint"]
    image = joint if o.combine == "mean" else emb.views[o.image_view]
    sentence = o.caption_space == "sentence" and o.combine == "concat"  # mean lives in the joint space
    part = _sentence_vectors(emb, cfg, has) if sentence else text
    X = pair_matrix(image, part, combine=o.combine, weight=o.caption_weight)
    if sentence:
        X = l2_normalize(X).astype(np.float32)  # uncaptioned rows: the image part alone
    return Representation(
        X=X,
        joint=l2_normalize(joint + text).astype(np.float32),  # prototypes compare with the pair's joint mean
        info={
            "pair": {
                "combine": o.combine,
                "caption_weight": o.caption_weight,
                "image_view": o.image_view,
                "caption_space": o.caption_space,
            },
            "captioned": int(has.sum()),
        },
    )


def _sentence_vectors(emb, cfg, has: np.ndarray) -> np.ndarray:
    """Caption sentence embeddings ``(n, d_s)`` as ``caption-sbert`` makes them; zero rows without a caption."""
    from .sentences import embed_sentences, sentence_embedder

    captions = [str(c).strip() for c in emb.captions]
    idx = np.flatnonzero(has)
    vecs = embed_sentences([captions[i] for i in idx], sentence_embedder(emb, cfg), cache_dir=emb.cache_dir)
    out = np.zeros((emb.n, vecs.shape[1]), dtype=np.float32)
    out[idx] = vecs
    return out
