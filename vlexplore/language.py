"""Language-assisted image clustering: nouns as external guidance.

Three representations, named in :data:`vlexplore.represent.BUILDERS`:

``nouns`` — TAC without training (Li et al., ICML 2024): nouns are chosen for this collection by
    "reverse classification" (:func:`vlexplore.nouns.select_nouns`); each image gets a *text
    counterpart*, the softmax-weighted mean of the chosen nouns' embeddings; the images are
    clustered on ``[image ‖ text counterpart]``.
``relations`` — Ma et al. (2026): each image is described by its row of the image × noun
    similarity matrix C (normalised), whose neighbourhoods agree more with the classes than
    the image features' do (:func:`neighbourhood_consistency`).
``centres`` — learned semantic centres (Ma et al. 2026): one continuous centre per cluster in
    the text space, initialised from the cluster's top nouns, trained on *confident*
    pseudo-labels (:func:`confident_mask`) with cross-entropy plus a balance term, for a few
    rounds of re-labelling; images go to the nearest centre, and each centre is explained by
    its nearest nouns.

All settings come from ``ClusterConfig.options`` (see :class:`LanguageOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .centres import train_centres
from .errors import ConfigError
from .models.base import l2_normalize
from .nouns import (
    RELATION_NORMS,
    auto_temperature,
    confident_for_training,
    confident_mask,
    knn_indices,
    nearest_nouns,
    neighbourhood_consistency,
    noun_embeddings,
    relation_matrix,
    resolve_templates,
    select_nouns,
    softmax,
    spherical_kmeans,
    text_counterparts,
    top_nouns,
    vocabulary,
)
from .represent import Representation

CENTRE_SPACES = ("joint", "nouns")
CENTRE_INITS = ("nouns", "image")
MIN_CENTRES = 10  #: the noun selection uses at least K image centres, or this many when K is not given
#: ``relations`` reports neighbourhood consistency (two exact k-NN searches) up to this many images.
CONSISTENCY_MAX_N = 20_000

#: Defaults per encoder, by model-id prefix, applied under the user's options. The bundled model's text side
#: only knows ImageNet's classes, so TAC's sharp counterparts (τ ≈ 0.005 on CLIP's scale, 0.008 here from
#: :func:`auto_temperature`) collapse every image onto ImageNet's closest class and swamp the image half:
#: on Fashion-MNIST *train* (1,000 images) k-means ACC fell from 0.74 (image) to 0.42. A softer counterpart
#: at a quarter of the image's weight (τ ∈ {0.005…0.1} × weight ∈ {0.25, 0.5, 1}) keeps 0.74.
MODEL_DEFAULTS: dict[str, dict] = {"bundled:": {"temperature": 0.1, "text_weight": 0.25}}


@dataclass(frozen=True)
class LanguageOptions:
    """Settings of the language-assisted representations, read from ``ClusterConfig.options``.

    Keys this module does not know are left alone (other representations read the same dict).

    Attributes:
        nouns: the user's own candidate nouns (list or comma-separated text); ``None`` = ``vocabulary``.
        vocabulary: ``wordnet+imagenet`` (default), ``wordnet`` or ``imagenet``.
        templates: ``auto`` (the encoder's own templates when it declares them — the bundled model
            embeds text as typed — else TAC's seven), ``tac``, ``encoder`` or a list of templates.
        n_nouns: nouns kept per image centre in the selection (TAC: 5).
        images_per_centre: the selection clusters the images into about n / this (TAC: 300),
            at least K (or :data:`MIN_CENTRES`) and at most n centres.
        temperature: softmax temperature of the text counterparts and of C's softmax normalisation;
            ``None`` = :func:`~vlexplore.nouns.auto_temperature` (see :data:`MODEL_DEFAULTS`).
        text_weight: weight of the text counterpart against the image in ``nouns`` (TAC: 1).
        relation_norm: rows of C: ``zscore`` (centred, scaled, then unit length), ``softmax`` or ``none``.
        knn: neighbours looked at by the confidence filter.
        agree: share of those neighbours that must share an image's label for it to be confident.
        init: initial pseudo-labels of ``centres``: k-means on the ``nouns`` representation (default)
            or on the ``image`` view.
        space: where the centres live: ``nouns`` (the TAC representation ``[image ‖ text counterpart]``;
            a centre's text half is explained by nouns) or ``joint`` (the encoder's text space, as in
            the paper).
        epochs: full-batch Adam steps per round; lr: its learning rate.
        centre_temperature: cosine-logit temperature of the centres' classifier.
        balance: weight of the balance term (negative entropy of the mean prediction).
        anchor: weight of a pull of each centre towards its initialisation (0 = none; a larger value
            keeps the centres near their initial nouns at some cost in fit).
        rounds: re-labelling rounds (1 = train once on the initial pseudo-labels).
        cache_dir: where noun embeddings are cached; ``None`` = the encoder's cache dir, if any.
    """

    nouns: tuple[str, ...] | str | None = None
    vocabulary: str = "wordnet+imagenet"
    templates: str | tuple[str, ...] = "auto"
    n_nouns: int = 5
    images_per_centre: int = 300
    temperature: float | None = None
    text_weight: float = 1.0
    relation_norm: str = "zscore"
    knn: int = 10
    agree: float = 0.8
    init: str = "nouns"
    space: str = "nouns"
    epochs: int = 100
    lr: float = 0.01
    centre_temperature: float = 0.05
    balance: float = 1.0
    anchor: float = 0.0
    rounds: int = 3
    cache_dir: str | Path | None = field(default=None, repr=False)

    @classmethod
    def from_options(cls, options: dict | None, model_id: str = "") -> LanguageOptions:
        """Pick this module's keys from ``options`` (over :data:`MODEL_DEFAULTS` for ``model_id``) and validate.

        Raises:
            ConfigError: a value of the wrong type or out of range, naming the key.
        """
        known = {f.name for f in fields(cls)}
        merged = {}
        for prefix, values in MODEL_DEFAULTS.items():
            if model_id.startswith(prefix):
                merged.update(values)
        merged.update({k: v for k, v in (options or {}).items() if k in known})
        opts = cls(**merged)
        opts.validate()
        return opts

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range options."""

        def positive_int(name: str, lo: int = 1) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
                raise ConfigError(f"option {name} must be an integer >= {lo}, got {v!r}")

        for name in ("n_nouns", "images_per_centre", "knn", "epochs", "rounds"):
            positive_int(name)
        for name in ("lr", "centre_temperature", "text_weight"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"option {name} must be a positive number, got {v!r}")
        for name in ("balance", "anchor"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or v < 0:
                raise ConfigError(f"option {name} must be a number >= 0, got {v!r}")
        if self.temperature is not None and (
            not isinstance(self.temperature, int | float) or self.temperature <= 0
        ):
            raise ConfigError(
                f"option temperature must be a positive number or None (automatic), got {self.temperature!r}"
            )
        if not isinstance(self.agree, int | float) or not 0 < self.agree <= 1:
            raise ConfigError(f"option agree is a share of neighbours in (0, 1], got {self.agree!r}")
        if self.relation_norm not in RELATION_NORMS:
            raise ConfigError(
                f"option relation_norm must be one of {', '.join(RELATION_NORMS)}, got {self.relation_norm!r}"
            )
        if self.init not in CENTRE_INITS:
            raise ConfigError(f"option init must be one of {', '.join(CENTRE_INITS)}, got {self.init!r}")
        if self.space not in CENTRE_SPACES:
            raise ConfigError(f"option space must be one of {', '.join(CENTRE_SPACES)}, got {self.space!r}")


# ----------------------------------------------------------------------------------- shared preparation


@dataclass
class _Prepared:
    opts: LanguageOptions
    image: np.ndarray  # (n, d_img)
    joint: np.ndarray  # (n, d)
    vocab: list[str]  # m
    noun_emb: np.ndarray  # (m, d)
    selected: np.ndarray  # (s,) into vocab
    sims: np.ndarray  # (n, s) image × selected noun
    temperature: float
    n_centres: int

    @property
    def names(self) -> list[str]:
        return [self.vocab[i] for i in self.selected]

    def info(self) -> dict:
        names = self.names
        summary = f"{len(names)} of {len(self.vocab):,} nouns, e.g. {', '.join(names[:8])}"
        return {
            "nouns": names,
            "n_vocabulary": len(self.vocab),
            "n_centres": self.n_centres,
            "temperature": self.temperature,
            "selected_nouns_summary": summary,
        }


def _prepare(emb, cfg) -> _Prepared:
    opts = LanguageOptions.from_options(getattr(cfg, "options", None), str(getattr(emb, "model_id", "")))
    joint, image = emb.views.get("joint"), emb.views.get("image")
    encoder = getattr(emb, "encoder", None)
    if joint is None or image is None or encoder is None or not hasattr(encoder, "encode_texts"):
        raise ConfigError(
            f"representation {cfg.representation!r} needs an encoder with a text-comparable 'joint' view "
            f"(got views {sorted(emb.views)}); use the bundled model or a CLIP model"
        )
    from .cluster import check_matrix

    joint = l2_normalize(check_matrix(joint, "joint view"))
    image = l2_normalize(check_matrix(image, "image view"))
    n = len(joint)
    if cfg.k is not None and cfg.k > n:
        raise ConfigError(f"{cfg.k} clusters asked for, but there are only {n} images", option="k")
    vocab = vocabulary(opts.nouns, opts.vocabulary)
    templates = opts.templates
    if templates == "auto":
        templates = "encoder" if hasattr(encoder, "prompt_templates") else "tac"
    cache_dir = opts.cache_dir or getattr(encoder, "cache_dir", None)
    E = noun_embeddings(vocab, encoder, templates=resolve_templates(templates, encoder), cache_dir=cache_dir)
    if E.shape[1] != joint.shape[1]:
        raise ConfigError(
            f"noun embeddings have {E.shape[1]} dimensions but the joint view has {joint.shape[1]}"
        )
    n_centres = int(min(n, max(round(n / opts.images_per_centre), cfg.k or MIN_CENTRES)))
    selected, _ = select_nouns(joint, E, n_centres=n_centres, per_centre=opts.n_nouns, seed=cfg.seed)
    sims = joint @ E[selected].T
    tau = float(opts.temperature) if opts.temperature is not None else auto_temperature(sims)
    return _Prepared(opts, image, joint, vocab, E, selected, sims, tau, n_centres)


def _tac_matrix(p: _Prepared) -> np.ndarray:
    counterpart = text_counterparts(p.sims, p.noun_emb[p.selected], p.temperature)
    return l2_normalize(np.concatenate([p.image, p.opts.text_weight * counterpart], axis=1))


# ----------------------------------------------------------------------------------- learned centres


def _noun_init(P: np.ndarray, labels: np.ndarray, noun_emb: np.ndarray, K: int, top: int) -> np.ndarray:
    """``(K, d)``: per cluster, the mix of its ``top`` nouns by mean counterpart weight of its members."""
    out = np.zeros((K, noun_emb.shape[1]), dtype=np.float32)
    for c in range(K):
        members = labels == c
        votes = P[members].mean(axis=0) if members.any() else P.mean(axis=0)
        best = np.argsort(-votes, kind="stable")[:top]
        out[c] = votes[best] @ noun_emb[best]
    return l2_normalize(out)


# ----------------------------------------------------------------------------------- builders


def tac_representation(emb, cfg) -> Representation:
    """``nouns``: TAC without training — ``[image ‖ text counterpart]``, unit rows (n, d_img + d_joint)."""
    p = _prepare(emb, cfg)
    X = _tac_matrix(p)
    return Representation(X=X, joint=p.joint, texts=top_nouns(p.sims, p.names), info=p.info())


def relation_representation(emb, cfg) -> Representation:
    """``relations``: rows of C, the image × selected-noun similarities, normalised: unit rows (n, s).

    With folder labels (and at most :data:`CONSISTENCY_MAX_N` images), ``info["consistency@k"]`` compares the neighbourhood consistency of the image
    features and of C (for display; nothing is chosen with it).
    """
    p = _prepare(emb, cfg)
    C = relation_matrix(p.sims, p.opts.relation_norm, p.temperature)
    info = {**p.info(), "relation_norm": p.opts.relation_norm}
    y = getattr(emb.collection, "labels", None)
    k = min(p.opts.knn, len(C) - 1)
    if y is not None and k >= 1 and len(C) <= CONSISTENCY_MAX_N:
        info[f"consistency@{k}"] = {
            "image": neighbourhood_consistency(p.image, y, k),
            "relations": neighbourhood_consistency(C, y, k),
        }
    return Representation(X=C, joint=p.joint, texts=top_nouns(p.sims, p.names), info=info)


def semantic_centres(emb, cfg) -> Representation:
    """``centres``: learned semantic centres; returns the labels itself.

    Initial pseudo-labels: spherical k-means (K = ``cfg.k`` or suggested) on the TAC representation
    (``init="image"``: the image view). Each centre starts as its cluster's noun mix (the ``n_nouns`` selected
    nouns its members weigh most), joined in the ``nouns`` space with the cluster's mean image. Then for
    ``rounds`` rounds: the confident images (:func:`confident_for_training`: fewer neighbours in a small
    folder; none confident keeps the clusters) train the centres (:func:`train_centres`, warm-started), and
    the centres re-label all.

    ``info``: ``centre_nouns`` / ``init_nouns`` (centre id → nearest nouns of its text part after /
    before training), ``confident`` (bool (n,)), ``rounds`` (per round: confident share, changes,
    objective first/last), ``losses`` (last round's), ``fallback`` (what a small folder changed, or "").
    """
    from .cluster import suggest_k

    p = _prepare(emb, cfg)
    o = p.opts
    X_tac = _tac_matrix(p)
    n = len(X_tac)
    if n < 3:
        raise ConfigError(f"learned centres need at least 3 images, got {n}")
    K = cfg.k if cfg.k is not None else suggest_k(X_tac, seed=cfg.seed)
    knn = min(o.knn, n - 1)
    labels, _ = spherical_kmeans(X_tac if o.init == "nouns" else p.image, K, seed=cfg.seed, n_init=10)
    P = softmax(p.sims / p.temperature)
    text_init = _noun_init(P, labels, p.noun_emb[p.selected], K, o.n_nouns)
    d_img = p.image.shape[1]
    if o.space == "nouns":
        Z = X_tac
        means = [
            p.image[labels == c].mean(axis=0) if (labels == c).any() else p.image.mean(axis=0)
            for c in range(K)
        ]
        img_means = np.stack(means).astype(np.float32)
        init = l2_normalize(np.concatenate([l2_normalize(img_means), o.text_weight * text_init], axis=1))
    else:
        Z, init = p.joint, text_init
    neighbours = knn_indices(Z, knn)
    init_labels, centres = labels, init
    rounds: list[dict] = []
    losses: list[float] = []
    notes: list[str] = []  # a small folder asks fewer neighbours, or keeps its clusters (and says so)
    for r in range(o.rounds):
        mask, knn = confident_for_training(labels, neighbours, knn, o.agree, int(K), notes, r)
        if not mask.any():
            break
        centres, losses = train_centres(
            Z,
            labels,
            mask,
            centres,
            anchor_to=init,
            temperature=o.centre_temperature,
            balance=o.balance,
            anchor=o.anchor,
            epochs=o.epochs,
            lr=o.lr,
        )
        new = np.argmax(Z @ centres.T, axis=1).astype(np.int64)
        rounds.append(
            {
                "round": r + 1,
                "confident": float(mask.mean()),
                "changed": int((new != labels).sum()),
                "objective_first": losses[0],
                "objective_last": losses[-1],
            }
        )
        labels = new
    text_part = centres[:, d_img:] if o.space == "nouns" else centres
    info = {
        **p.info(),
        "k": int(K),
        "space": o.space,
        "init": o.init,
        "centre_nouns": nearest_nouns(text_part, p.noun_emb, p.vocab, 5),
        "init_nouns": nearest_nouns(text_init, p.noun_emb, p.vocab, 5),
        "confident": confident_mask(None, labels, knn, o.agree, neighbours=neighbours),
        "changed_from_init": int((labels != init_labels).sum()),
        "rounds": rounds,
        "losses": losses,
        "fallback": "; ".join(notes),
    }
    return Representation(X=Z, joint=p.joint, texts=top_nouns(p.sims, p.names), labels=labels, info=info)
