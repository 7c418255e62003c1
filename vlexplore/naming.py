"""Zero-shot cluster names from a vocabulary, in the encoder's joint image–text space.

Any encoder with a text tower (``encode_texts``, and a ``joint`` image view comparable with it by
cosine: CLIP, SigLIP, the bundled model) can name clusters without captions: embed a vocabulary
once (the noun bank of :mod:`vlexplore.nouns`, WordNet nouns + ImageNet classes, plus the user's
words; cached on disk per model id by :func:`vlexplore.nouns.noun_embeddings`), and give each
cluster the words that fit it *better than they fit the other clusters*.

Contrastive scores
    With ``S[c, w]`` the cosine between cluster ``c``'s normalised centroid and word ``w``, the
    default score is the **margin** ``S[c, w] − λ · max_{c'≠c} S[c', w]`` with ``λ =`` :data:`CONTRAST`:
    high when the word fits the cluster and no other cluster comes close. A word that is near every
    image (a "hub" such as "object") gets a small margin everywhere; ``λ < 1`` keeps a word that
    fits a cluster only a little, but the others not at all, from winning. Alternatives (``score=``):
    ``mean-margin`` (minus the mean over the other clusters) and ``rank`` (the word's rank
    percentile in ``c``'s row minus its best percentile in another row).

Scale-free
    Only cosine similarities enter, and only through weighted differences (``margin``,
    ``mean-margin``) or rankings (``rank``). Multiplying every similarity by a positive scale and
    adding a bias (CLIP's logit scale; SigLIP's logit scale and bias, whose sigmoid then turns logits
    into independent probabilities) scales every score and shifts all by one constant, so it changes
    no name and no keyword. The sigmoid itself is never applied: SigLIP's
    probabilities are a monotone function of its cosines, so the cosines carry its whole ranking.
    ``rank`` is invariant to any increasing transform of a cluster's row.

Unique names, two levels
    The short **name** is one vocabulary entry per cluster, unique across clusters: an optimal
    assignment (Hungarian, :func:`scipy.optimize.linear_sum_assignment`) on the score matrix.
    The **keywords** are the next 3–5 words by score, each word with the one cluster where it
    scores highest (so lists never share a word), the names of all clusters left out.
    Noise (``-1``) is named ``"other"`` (``"noise"`` for HDBSCAN) and does not compete.

Prototype drift
    :func:`vlexplore.drift.prototype_drift` flags prototype clusters whose members moved away from their prompt
    (refinement moves centres): the members are, on average, closer to another prompt, or the
    prompt is not among the cluster's top words.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError
from .labels import default_name, noise_name
from .models.base import l2_normalize
from .options import naming_options
from .vocabulary import (  # noqa: F401  (re-exported: the naming API)
    NAMING_TEMPLATES,
    default_vocabulary,
    has_text_tower,
    naming_templates,
    vocabulary_embeddings,
)

log = logging.getLogger(__name__)

#: Where cluster names come from (``ClusterConfig.naming``): ``auto`` = the texts a representation
#: clustered on when it made its own (answers, keywords, nouns), else the vocabulary when the encoder
#: has a text tower, else the captions; ``vocabulary``; ``captions`` (Stephan et al.'s counting).
NAMING_SOURCES = ("auto", "vocabulary", "captions")
SCORES = ("margin", "mean-margin", "rank")
#: Weight of the other clusters' similarity in a score (see :func:`contrastive_scores`); measured in
#: ``bench/naming.py``.
CONTRAST = 0.5
#: Keywords per cluster besides its name.
N_KEYWORDS = 4
#: A prototype whose margin rank among the vocabulary (plus the prompts) is below this is "drifted".
DRIFT_TOP = 10


@dataclass
class ClusterNaming:
    """Names of clusters from a vocabulary.

    Attributes:
        names: cluster id → short name (one vocabulary entry; fixed names kept; noise ``"other"``).
        keywords: cluster id → 3–5 more specific words, best first, unique across clusters.
        scores: cluster id → the name's contrastive score (NaN for noise and fixed names).
        drifted: prototype clusters whose members drifted from their prompt (:mod:`vlexplore.drift`).
        score: which contrastive score was used.
        top_words: cluster id → its best :data:`vlexplore.hypernyms.GENERAL_WORDS` words by score, best
            first, shared between clusters (what a general name is judged on).
    """

    names: dict[int, str]
    keywords: dict[int, list[str]]
    scores: dict[int, float]
    drifted: list[int] = field(default_factory=list)
    score: str = "margin"
    top_words: dict[int, list[str]] = field(default_factory=dict)


def cluster_centroids(joint, labels) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ids (sorted, noise included) and their normalised mean ``joint`` vectors ``float32 (k, d)``."""
    from scipy import sparse

    J = np.asarray(joint, dtype=np.float32)
    labels = np.asarray(labels)
    if J.ndim != 2 or labels.shape != (len(J),):
        raise ConfigError(f"labels must have shape ({len(J)},) to match the joint view, got {labels.shape}")
    ids, rows = np.unique(labels, return_inverse=True)
    # each row weighted by 1 / its length inside the sum: no normalised copy of an (n, d) matrix
    with np.errstate(over="ignore", invalid="ignore"):
        sq = np.einsum("ij,ij->i", J, J)
    if not np.isfinite(sq).all():  # huge or non-finite rows: the careful path
        sq = np.linalg.norm(J.astype(np.float64), axis=1) ** 2
    weight = (1.0 / np.sqrt(np.maximum(sq, 1e-24))).astype(np.float32)
    member = sparse.csr_matrix((weight, (rows, np.arange(len(labels)))), shape=(len(ids), len(labels)))
    return ids.astype(np.int64), l2_normalize(np.asarray(member @ J, dtype=np.float32))


def contrastive_scores(
    centroids: np.ndarray, word_emb: np.ndarray, score: str = "margin", contrast: float = CONTRAST
) -> np.ndarray:
    """``(k, m)`` scores of ``m`` words for ``k`` clusters, from cosines of unit centroids and unit words.

    ``margin``: ``S[c] − contrast · max over the other clusters``; ``mean-margin``: ``S[c] − contrast ·
    mean over the others``; ``rank``: rank percentile of the word in ``c``'s row minus ``contrast`` times
    its best percentile in another row. ``contrast = 1`` is the pure margin, ``0`` the plain fit; between,
    a word must both fit the cluster and fit it better than the others (pure margins reward a word that
    fits a cluster only a little but the others not at all). With one cluster: the plain similarity.
    """
    if score not in SCORES:
        raise ConfigError(f"unknown naming score {score!r}; choose one of {', '.join(SCORES)}")
    if not isinstance(contrast, int | float) or not 0 <= contrast <= 1:
        raise ConfigError(f"contrast is a weight in [0, 1], got {contrast!r}")
    S = np.asarray(centroids, dtype=np.float32) @ np.asarray(word_emb, dtype=np.float32).T
    k, m = S.shape
    if score == "rank":
        order = np.argsort(S, axis=1, kind="stable")
        R = np.empty_like(S)
        np.put_along_axis(
            R, order, np.broadcast_to(np.arange(m, dtype=np.float32) / max(m - 1, 1), S.shape), axis=1
        )
        S = R
    if k == 1:
        return S
    if score == "mean-margin":
        return S - contrast * (S.sum(axis=0, keepdims=True) - S) / (k - 1)
    top2 = np.partition(S, k - 2, axis=0)[k - 2 :]  # (2, m): second best, best
    best_row = S.argmax(axis=0)
    other = np.where(np.arange(k)[:, None] == best_row[None, :], top2[0][None, :], top2[1][None, :])
    return S - contrast * other


def _assign_unique(scores: np.ndarray, banned: np.ndarray) -> np.ndarray:
    """One distinct column per row maximising the summed score (Hungarian); ``-1`` when none is left."""
    from scipy.optimize import linear_sum_assignment

    k, m = scores.shape
    out = np.full(k, -1, dtype=np.int64)
    if k == 0 or m == 0:
        return out
    s = np.where(banned[None, :], -np.inf, scores)
    # An optimal assignment gives each row one of its k best columns (else a free one of them would
    # do better), so the union of the rows' top-k columns is an exact, much smaller problem.
    top = min(k, m)
    cand = np.unique(np.argpartition(-s, top - 1, axis=1)[:, :top])
    cand = cand[np.isfinite(s[:, cand]).any(axis=0)]
    if len(cand) == 0:
        return out
    sub = s[:, cand]
    finite = np.isfinite(sub)
    low = float(sub[finite].min()) if finite.any() else 0.0
    cost = np.where(finite, sub, low - 1e6)
    rows, cols = linear_sum_assignment(cost, maximize=True)
    for r, c in zip(rows, cols):
        if finite[r, c]:
            out[r] = cand[c]
    return out


def _norm(word: str) -> str:
    return " ".join(str(word).casefold().replace("_", " ").split())


@functools.lru_cache(maxsize=4)
def _normed(words: tuple[str, ...]) -> np.ndarray:  # a vocabulary is normalised once, not per naming
    return np.array([_norm(w) for w in words], dtype=object)


def _among(normed: np.ndarray, keys: set[str]) -> np.ndarray:  # set lookups: np.isin is slow on objects
    return np.fromiter((w in keys for w in normed), dtype=bool, count=len(normed))


def name_clusters(
    joint,
    labels,
    words: Sequence[str],
    word_emb: np.ndarray,
    *,
    n_keywords: int = N_KEYWORDS,
    score: str = "margin",
    contrast: float = CONTRAST,
    fixed: dict[int, str] | None = None,
    noise_name: str = "other",
) -> ClusterNaming:
    """Name every cluster with vocabulary words, contrastively and uniquely (see the module doc).

    Args:
        joint: ``(n, d)`` images in the joint space (any scale; rows are normalised here).
        labels: ``(n,)`` int cluster ids, ``-1`` = noise.
        words: ``m`` vocabulary entries;
        word_emb: ``(m, d)`` their unit text embeddings.
        n_keywords: keywords per cluster besides its name.
        score: ``margin`` (default), ``mean-margin`` or ``rank``;
        contrast: the weight of the other
            clusters (see :func:`contrastive_scores`).
        fixed: cluster id → a name that is kept (prototype prompts); those clusters still take part in
            the contrast and get keywords, and their names are not given to other clusters.
        noise_name: the name of ``-1``.

    Returns:
        A :class:`ClusterNaming`; every id in ``labels`` has a name and a keyword list.
    """
    words = [str(w) for w in words]
    E = np.asarray(word_emb, dtype=np.float32)
    if E.ndim != 2 or len(E) != len(words):
        raise ConfigError(f"got {len(words)} words but word embeddings of shape {E.shape}")
    if isinstance(n_keywords, bool) or not isinstance(n_keywords, int | np.integer) or n_keywords < 0:
        raise ConfigError(f"n_keywords must be a number >= 0, got {n_keywords!r}")
    fixed = {int(c): str(v) for c, v in (fixed or {}).items()}
    if len(labels) == 0:
        return ClusterNaming({}, {}, {}, score=score)
    ids, C = cluster_centroids(joint, labels)
    if C.shape[1] != E.shape[1]:
        raise ConfigError(f"word embeddings have {E.shape[1]} dimensions but the joint view has {C.shape[1]}")
    real = ids != -1
    rid = ids[real]
    names: dict[int, str] = {}
    keywords: dict[int, list[str]] = {}
    scores: dict[int, float] = {}
    top_words: dict[int, list[str]] = {}
    if real.any() and len(words):
        S = contrastive_scores(C[real], E, score, contrast)
        normed = _normed(tuple(words))
        taken = {_norm(v) for v in fixed.values()}
        banned = _among(normed, taken)
        free = np.array([int(c) not in fixed for c in rid])
        chosen = np.full(len(rid), -1, dtype=np.int64)
        chosen[free] = _assign_unique(S[free], banned)
        for r, c in enumerate(rid.tolist()):
            if c in fixed:
                names[c], scores[c] = fixed[c], float("nan")
            elif chosen[r] >= 0:
                names[c], scores[c] = words[chosen[r]], float(S[r, chosen[r]])
            else:  # more clusters than words
                names[c], scores[c] = default_name(c), float("nan")
        from .hypernyms import GENERAL_WORDS

        n_top = min(GENERAL_WORDS, len(words))
        for r, c in enumerate(rid.tolist()):
            part = np.argpartition(-S[r], n_top - 1)[:n_top]
            top_words[c] = [words[j] for j in part[np.argsort(-S[r, part], kind="stable")]]
        name_set = {_norm(v) for v in names.values()}
        owner = S.argmax(axis=0)
        drop = _among(normed, name_set)
        for r, c in enumerate(rid.tolist()):
            mine = np.flatnonzero((owner == r) & ~drop)
            best = mine[np.argsort(-S[r, mine], kind="stable")]
            kw: list[str] = []
            seen: set[str] = set()
            for j in best:
                if normed[j] not in seen:
                    seen.add(normed[j])
                    kw.append(words[j])
                if len(kw) == n_keywords:
                    break
            keywords[c] = kw
    else:
        for c in rid.tolist():
            names[c], keywords[c], scores[c] = fixed.get(c, default_name(c)), [], float("nan")
    if not real.all():
        names[-1], scores[-1] = noise_name, float("nan")
        noise_kw: list[str] = []
        if len(words):
            s_noise = C[~real][0] @ E.T
            if real.any():  # what the rest is about, compared with the clusters
                s_noise = s_noise - (C[real] @ E.T).max(axis=0)
            noise_kw = [words[j] for j in np.argsort(-s_noise, kind="stable")[:n_keywords]]
        keywords[-1] = noise_kw
    return ClusterNaming(names, keywords, scores, score=score, top_words=top_words)


def name_pipeline_clusters(
    emb,
    labels,
    cfg,
    *,
    caption_keywords: dict[int, list[str]],
    caption_names: dict[int, str],
    prototypes: Sequence[str] | None = None,
    prototype_emb: np.ndarray | None = None,
    own_texts: bool = False,
    info: dict | None = None,
) -> tuple[dict[int, str], dict[int, list[str]]]:
    """The names and keywords :func:`vlexplore.pipeline.cluster_embedded` shows, by ``cfg.naming``.

    With a text tower, every cluster gets a word name: ``vocabulary`` names and keywords come from
    :func:`name_clusters`; ``captions`` keeps the counting-based ones and names only the clusters they
    leave unnamed ("cluster N") from the vocabulary; ``auto`` is ``captions`` when the representation
    clustered on texts of its own (``own_texts``: answers, keywords, nouns), else ``vocabulary``.
    Prototype clusters keep their prompts. ``info`` receives ``naming`` (source, score, per-cluster
    scores), ``caption_keywords`` (kept whenever there were captions), ``vocabulary_keywords`` and
    ``drifted`` (prototype clusters whose members moved away from their prompt).

    Options (``cfg.options``, typed as :class:`vlexplore.options.NamingOptions`, defaults there):
    ``naming_words``, ``naming_nouns``, ``naming_vocabulary``, ``naming_general`` (WordNet hypernyms as
    short names; see :mod:`vlexplore.hypernyms`), ``naming_score``, ``naming_contrast``, ``naming_drift_top``.
    """
    source = getattr(cfg, "naming", "auto")
    if source not in NAMING_SOURCES:
        raise ConfigError(f"unknown naming source {source!r}; choose one of {', '.join(NAMING_SOURCES)}")
    info = info if info is not None else {}
    names, keywords = dict(caption_names), dict(caption_keywords)
    if caption_keywords:
        info["caption_keywords"] = caption_keywords
    encoder = getattr(emb, "encoder", None)
    joint = emb.views.get("joint")
    if joint is None or not has_text_tower(encoder):
        info["naming"] = {"source": "captions"}
        return names, keywords
    if source == "auto":
        source = "captions" if own_texts and caption_keywords else "vocabulary"
    opts = naming_options(getattr(cfg, "options", None))
    noise = noise_name(cfg.method)
    protos = list(prototypes or [])
    fixed = {i: p for i, p in enumerate(protos)}
    cache_dir = getattr(emb, "cache_dir", None) or getattr(encoder, "cache_dir", None)
    score = opts.naming_score
    bank = opts.naming_vocabulary or default_vocabulary(encoder)
    words, E = vocabulary_embeddings(
        encoder,
        words=opts.naming_nouns,
        extra_words=opts.naming_words or (),
        source=bank,
        cache_dir=cache_dir,
    )
    if E.shape[1] != np.shape(joint)[1]:
        log.warning(
            "vocabulary embeddings (%d-d) do not match the joint view (%d-d); clusters keep caption names",
            E.shape[1],
            np.shape(joint)[1],
        )
        info["naming"] = {"source": "captions"}
        return names, keywords
    contrast = float(opts.naming_contrast)
    voc = name_clusters(
        joint, labels, words, E, score=score, contrast=contrast, fixed=fixed, noise_name=noise
    )
    info["vocabulary_keywords"] = voc.keywords
    if protos and prototype_emb is not None:
        from .drift import prototype_drift

        info["drifted"] = prototype_drift(
            joint,
            labels,
            prototype_emb,
            words=words,
            word_emb=E,
            score=score,
            contrast=contrast,
            top=int(opts.naming_drift_top),
        )
    general: dict[int, str] = {}
    if source == "vocabulary":
        names, keywords = dict(voc.names), dict(voc.keywords)
        if opts.naming_general:  # "kite, grouse, stork" → bird (WordNet's hypernyms)
            from .hypernyms import general_names

            names, keywords, general = general_names(names, keywords, fixed=fixed, ranked=voc.top_words)
    else:
        for c, v in voc.names.items():
            if names.get(c, default_name(c)) == default_name(c):
                names[c] = v
                keywords.setdefault(c, voc.keywords.get(c, []))
                if not keywords[c]:
                    keywords[c] = voc.keywords.get(c, [])
    info["naming"] = {
        "source": source,
        "score": score,
        "contrast": contrast,
        "scores": voc.scores,
        "vocabulary": "user" if opts.naming_nouns else bank,
        "n_words": len(words),
        "general": general,
    }
    return names, keywords
