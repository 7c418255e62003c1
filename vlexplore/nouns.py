"""The noun bank of language-assisted clustering: which nouns, embedded how, cached where.

TAC (Li et al., ICML 2024) describes images with WordNet nouns. This module provides

* the vocabulary: :func:`wordnet_nouns` (about 8,000 concrete, common nouns generated from
  WordNet 3.0 by ``bench/make_nouns.py``; licence in ``vlexplore/data/WORDNET_LICENSE``) plus
  the ImageNet class names, or a list the user gives;
* :func:`noun_embeddings`: each noun embedded through prompt templates (averaged), with the
  vectors cached on disk per model id and template set, so a vocabulary is embedded once per model;
* :func:`select_nouns`: TAC's "reverse classification" that picks the nouns this collection needs;
* the array steps built on image–noun similarities: :func:`text_counterparts` (TAC),
  :func:`relation_matrix` (the matrix C of Ma et al. 2026), :func:`auto_temperature`,
  :func:`top_nouns` and :func:`nearest_nouns` (texts that name images and centres);
* neighbourhoods: :func:`neighbourhood_consistency` (Ma et al.'s Figure 2 measure) and
  :func:`confident_mask` (their neighbourhood-consistency filter).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .models.base import l2_normalize

DATA_DIR = Path(__file__).resolve().parent / "data"
NOUNS_FILE = DATA_DIR / "nouns.txt"

#: TAC's seven prompt templates; a noun's embedding is the normalised mean over them.
TAC_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
VOCABULARIES = ("wordnet+imagenet", "wordnet", "imagenet")
RELATION_NORMS = ("zscore", "softmax", "none")
#: Nouns embedded (and cached) per chunk, so an interrupted first run keeps what it finished.
EMBED_CHUNK = 1024


@functools.lru_cache(maxsize=1)
def wordnet_nouns() -> tuple[str, ...]:
    """The packaged WordNet noun list (``vlexplore/data/nouns.txt``), in file order."""
    try:
        lines = NOUNS_FILE.read_text(encoding="utf-8").splitlines()
    except OSError as exc:  # pragma: no cover - a broken install
        raise ConfigError(f"the noun list {NOUNS_FILE} cannot be read ({exc}); reinstall vlexplore") from exc
    return tuple(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))


def imagenet_nouns() -> list[str]:
    """The first name of each of the 1,000 ImageNet classes (what the bundled model knows)."""
    from .models.bundled import imagenet_class_names

    return [names[0] for names in imagenet_class_names()]


def unique_texts(texts: Sequence[str]) -> list[str]:
    """Stripped, non-empty texts, repeats dropped ignoring case and whitespace, order kept."""
    out, seen = [], set()
    for t in texts:
        if not isinstance(t, str):
            raise ConfigError(f"nouns must be texts, got {t!r}")
        t = " ".join(t.split())
        if t and t.casefold() not in seen:
            seen.add(t.casefold())
            out.append(t)
    return out


def vocabulary(nouns: str | Sequence[str] | None = None, source: str = "wordnet+imagenet") -> list[str]:
    """The candidate nouns.

    Args:
        nouns: the user's own nouns (a list, or one text split on commas and new lines); when
            given, ``source`` is ignored.
        source: ``wordnet+imagenet`` (default), ``wordnet`` or ``imagenet``.

    Returns:
        Unique nouns, order kept.

    Raises:
        ConfigError: unknown source, or no nouns at all.
    """
    if nouns is not None:
        if isinstance(nouns, str):
            from .encode import parse_prompts

            nouns = parse_prompts(nouns)
        out = unique_texts(nouns)
        if not out:
            raise ConfigError("the noun vocabulary is empty; give some nouns, e.g. 'dog, cat, car'")
        return out
    if source not in VOCABULARIES:
        raise ConfigError(f"unknown noun vocabulary {source!r}; choose one of {', '.join(VOCABULARIES)}")
    parts: list[str] = []
    if "wordnet" in source:
        parts += wordnet_nouns()
    if "imagenet" in source:
        parts += imagenet_nouns()
    return unique_texts(parts)


def resolve_templates(templates: str | Sequence[str] | None, encoder) -> tuple[str, ...]:
    """``"tac"`` → :data:`TAC_TEMPLATES`.

    ``"encoder"`` → the encoder's own ``prompt_templates`` (else the default prompt templates); a sequence is
    used as given.
    """
    if templates is None or templates == "tac":
        return TAC_TEMPLATES
    if templates == "encoder":
        from .encode import PROMPT_TEMPLATES

        return tuple(getattr(encoder, "prompt_templates", PROMPT_TEMPLATES))
    if isinstance(templates, str):
        raise ConfigError(
            f"templates must be 'tac', 'encoder' or a list of texts with '{{}}', got {templates!r}"
        )
    out = tuple(templates)
    for t in out:
        if not isinstance(t, str) or "{}" not in t:
            raise ConfigError(f"prompt template {t!r} needs a '{{}}' where the noun goes")
    return out or ("{}",)


def noun_embeddings(
    nouns: Sequence[str],
    encoder,
    *,
    templates: Sequence[str] = TAC_TEMPLATES,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """Embed nouns through the templates (averaged, renormalised), reading and filling the disk cache.

    The cache namespace is ``encoder.model_id`` plus a hash of the templates; the key is the noun.

    Args:
        nouns: ``m`` unique nouns.
        encoder: any encoder with ``model_id`` and ``encode_texts``.
        templates: format strings with one ``{}``.
        cache_dir: the cache root; ``None`` = no disk cache.

    Returns:
        ``float32 (m, d_joint)``, rows L2-normalised, in noun order.
    """
    from .encode import encode_prompts

    nouns = list(nouns)
    if not nouns:
        raise ConfigError("the noun vocabulary is empty; give some nouns, e.g. 'dog, cat, car'")
    templates = tuple(templates)
    if cache_dir is None:
        return encode_prompts(nouns, encoder, templates)
    from .cache import store_for

    tag = hashlib.blake2b("\n".join(templates).encode(), digest_size=4).hexdigest()
    store = store_for(cache_dir, f"{encoder.model_id}:nouns:{tag}")
    found, values = store.lookup(nouns, ["emb"])
    missing = [n for n, hit in zip(nouns, found) if not hit]
    computed = []
    for start in range(0, len(missing), EMBED_CHUNK):
        chunk = missing[start : start + EMBED_CHUNK]
        emb = encode_prompts(chunk, encoder, templates).astype(np.float32)
        store.append_best_effort(chunk, {"emb": emb})
        computed.append(emb)
    d = np.asarray(values["emb"] if found.any() else computed[0]).shape[1]
    out = np.empty((len(nouns), d), dtype=np.float32)
    if found.any():
        out[found] = values["emb"]
    if missing:
        out[~found] = np.concatenate(computed)
    return l2_normalize(out)


def spherical_kmeans(
    X: np.ndarray, k: int, *, seed: int = 0, n_init: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """k-means on L2-normalised rows with normalised centres (cosine geometry).

    Returns:
        ``labels`` int64 ``(n,)`` and ``centres`` float32 ``(k, d)`` with unit rows.
    """
    from .cluster.kmeans import kmeans

    fit = kmeans(l2_normalize(np.asarray(X, dtype=np.float32)), k, seed=seed, n_init=n_init)
    return fit.labels, l2_normalize(fit.centres)


def select_nouns(
    joint: np.ndarray, noun_emb: np.ndarray, *, n_centres: int, per_centre: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """TAC's noun selection by "reverse classification".

    The images are clustered (spherical k-means, ``n_centres``); each noun goes to its most
    similar centre, and each centre keeps the ``per_centre`` nouns most similar to it. Nouns
    that are nobody's best match never enter, so generic words drop out.

    Args:
        joint: ``(n, d)`` images in the text-comparable space, unit rows.
        noun_emb: ``(m, d)`` candidate nouns, unit rows.
        n_centres: image centres (TAC: about n / 300).
        per_centre: nouns kept per centre.
        seed: k-means random state.

    Returns:
        ``selected`` int64 ``(s,)`` indices into the nouns (by centre, best first; ``s ≤ n_centres ×
        per_centre``), and ``centre_of`` int64 ``(s,)`` the centre each was kept for.
    """
    _, centres = spherical_kmeans(joint, n_centres, seed=seed)
    sim = noun_emb @ centres.T  # (m, c)
    best = sim.argmax(axis=1)
    selected, centre_of = [], []
    for c in range(n_centres):
        mine = np.flatnonzero(best == c)
        top = mine[np.argsort(-sim[mine, c], kind="stable")[:per_centre]]
        selected += top.tolist()
        centre_of += [c] * len(top)
    return np.asarray(selected, dtype=np.int64), np.asarray(centre_of, dtype=np.int64)


def auto_temperature(sims: np.ndarray) -> float:
    """A softmax temperature matched to the spread of the similarities: median row std / 5.

    TAC uses 0.005 with CLIP, whose image–noun cosines spread by about 0.02–0.025 per image, i.e.
    logits with a spread of about 5; dividing by the measured spread keeps that sharpness on any
    encoder's scale (see ``bench/results/language.json`` for the bundled model's value).

    Args:
        sims: ``(n, s)`` image–noun cosine similarities.
    """
    spread = float(np.median(np.std(sims, axis=1)))
    return max(spread / 5.0, 1e-4)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(n, m)`` scores."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def text_counterparts(sims: np.ndarray, noun_emb: np.ndarray, temperature: float) -> np.ndarray:
    """TAC's text counterpart of each image: ``softmax(sims / τ) @ nouns``, renormalised.

    Args:
        sims: ``(n, s)`` image–noun cosines;
        noun_emb: ``(s, d)`` unit rows;
        temperature: τ > 0.

    Returns:
        ``float32 (n, d)`` unit rows.
    """
    weights = softmax(np.asarray(sims, dtype=np.float64) / temperature)
    return l2_normalize((weights @ noun_emb).astype(np.float32))


def relation_matrix(sims: np.ndarray, norm: str = "zscore", temperature: float | None = None) -> np.ndarray:
    """Rows of C: each image's similarities to the nouns, normalised per row.

    Args:
        sims: ``(n, s)`` image–noun cosines.
        norm: ``zscore`` (minus the row mean, over the row std, then unit length — the row's profile
            across nouns, free of how similar the image is to nouns in general), ``softmax`` (with
            ``temperature``; then unit length) or ``none`` (unit length only).
        temperature: for ``softmax``; ``None`` = :func:`auto_temperature`.

    Returns:
        ``float32 (n, s)`` unit rows.
    """
    s = np.asarray(sims, dtype=np.float64)
    if norm == "zscore":
        s = (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-12)
    elif norm == "softmax":
        s = softmax(s / (temperature or auto_temperature(s)))
    elif norm != "none":
        raise ConfigError(f"relation norm must be one of {', '.join(RELATION_NORMS)}, got {norm!r}")
    return l2_normalize(s.astype(np.float32))


def top_nouns(sims: np.ndarray, names: list[str], n: int = 2) -> list[str]:
    """Per image, its ``n`` most similar nouns joined with ", " (texts for cluster keywords)."""
    n = min(n, sims.shape[1])
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :n]
    return [", ".join(names[j] for j in row) for row in idx]


def nearest_nouns(
    centres: np.ndarray, noun_emb: np.ndarray, names: list[str], n: int = 5
) -> dict[int, list[str]]:
    """Centre id → its ``n`` nearest nouns by cosine (the centres' explanation)."""
    sims = l2_normalize(centres) @ noun_emb.T
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :n]
    return {c: [names[j] for j in row] for c, row in enumerate(idx)}


# ----------------------------------------------------------------------------------- neighbourhoods


def knn_indices(X: np.ndarray, k: int, *, chunk: int = 1024) -> np.ndarray:
    """Each row's ``k`` nearest other rows by cosine: ``int64 (n, k)``, nearest first (ties: lower index).

    Exact up to :data:`vlexplore.largescale.EXACT_KNN_MAX` rows: blocks of ``chunk`` rows are multiplied
    with all rows (float32 BLAS, memory ``chunk × n``). Above, approximate
    (:func:`vlexplore.largescale.knn_approximate`: HNSW with faiss, else NN-descent).
    A row is never its own neighbour.
    """
    from .cluster import check_matrix
    from .largescale import EXACT_KNN_MAX, knn_approximate

    X = l2_normalize(check_matrix(X))
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive number of neighbours, got {k!r}")
    n = len(X)
    if k >= n:
        raise ConfigError(f"k={k} neighbours asked for, but there are only {n} rows; choose k < {n}")
    if n > EXACT_KNN_MAX:
        return knn_approximate(X, int(k))
    out = np.empty((n, int(k)), dtype=np.int64)
    for start in range(0, n, chunk):
        sims = X[start : start + chunk] @ X.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf
        part = np.argpartition(-sims, k, axis=1)[:, : k + 1]  # k+1 so a tie at the boundary is seen
        order = np.lexsort((part, -np.take_along_axis(sims, part, axis=1)), axis=1)[:, :k]
        out[start : start + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def _agreement(
    X: np.ndarray | None, labels, k: int, neighbours: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    if X is None and neighbours is None:
        raise ConfigError("give the vectors or their neighbours")
    n = len(X) if X is not None else len(np.asarray(neighbours))
    if labels.ndim != 1 or len(labels) != n:
        raise ConfigError(f"labels must have shape ({n},), got {labels.shape}")
    idx = np.asarray(neighbours)[:, :k] if neighbours is not None else knn_indices(np.asarray(X), k)
    return labels, (labels[idx] == labels[:, None]).mean(axis=1)


def neighbourhood_consistency(X: np.ndarray, y, k: int = 10) -> float:
    """Share of each row's ``k`` nearest neighbours (cosine) with its own label, averaged over rows.

    Ma et al. (2026, Figure 2) compare it between image features and the relation matrix C.

    Args:
        X: ``(n, d)``;
        y: ``(n,)`` labels (any hashable values);
        k: neighbours (``< n``).
    """
    return float(_agreement(X, y, k, None)[1].mean())


def confident_mask(
    X: np.ndarray | None, labels, k: int = 10, agree: float = 0.5, *, neighbours: np.ndarray | None = None
) -> np.ndarray:
    """Neighbourhood-consistency filter.

    An image is confident when at least ``agree`` of its ``k`` nearest neighbours (cosine in ``X``) share its
    label. Noise (``-1``) is never confident.

    Args:
        X: ``(n, d)``, or ``None`` when ``neighbours`` is given.
        labels: ``int (n,)``.
        k: neighbours.
        agree: share in ``(0, 1]``.
        neighbours: ``int (n, ≥k)`` precomputed :func:`knn_indices` (rounds re-use them: the features
            are frozen, only the labels change).

    Returns:
        ``bool (n,)``.
    """
    if not isinstance(agree, int | float) or not 0 < agree <= 1:
        raise ConfigError(f"agree is a share of neighbours in (0, 1], got {agree!r}")
    if X is None and neighbours is None:
        raise ConfigError("confident_mask needs X or precomputed neighbours")
    labels, share = _agreement(X, labels, k, neighbours)
    return (share >= agree - 1e-9) & (labels != -1)


def confident_for_training(
    labels, neighbours: np.ndarray, k: int, agree: float, n_clusters: int, notes: list[str], round_: int = 0
) -> tuple[np.ndarray, int]:
    """:func:`confident_mask` that adapts to a small folder.

    When no image is confident on ``k`` neighbours, it asks only as many as fit in an average cluster (``n /
    n_clusters - 1``, at least one).

    Returns:
        The mask and the neighbours used; a plain line is added to ``notes`` for each adaptation (once),
        and when still no image is confident (the caller then keeps the clusters of ``round_``).
    """
    mask = confident_mask(None, labels, k, agree, neighbours=neighbours)
    small = max(1, min(k, len(neighbours) // max(1, int(n_clusters)) - 1))
    if not mask.any() and small < k:
        k = small
        note = f"clusters this small are judged confident on {k} neighbour(s)"
        notes += [] if note in notes else [note]
        mask = confident_mask(None, labels, k, agree, neighbours=neighbours)
    if not mask.any():
        kept = "starting k-means clusters" if round_ == 0 else f"clusters of round {round_}"
        notes.append(f"no image is confident, so the centres were not trained; the {kept} are kept")
    return mask, k
