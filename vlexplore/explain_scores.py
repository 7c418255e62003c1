"""How good are a clustering's keywords?

Against folder names (hits after a one-to-one matching) and without labels (coverage, distinctiveness), as
Stephan et al. (2024) score explanations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConfigError
from .models.base import l2_normalize

#: A keyword "hits" its matched class when their sentence-embedding cosine is at least this (Stephan et al.).
MATCH_COSINE = 0.4


def _class_text(value, class_names) -> str:
    name = class_names[value] if class_names is not None else value
    return re.sub(r"[\s_/]+", " ", str(name)).strip().lower()


def _mentions(pattern: re.Pattern[str] | None, text) -> bool:
    """Whether a cluster's keyword pattern (``None`` when it has no keywords) occurs in a text."""
    return pattern is not None and pattern.search(str(text or "").lower()) is not None


def explanation_scores(
    keywords: dict[int, list[str]],
    labels,
    y_true=None,
    class_names=None,
    texts: Sequence[str] | None = None,
    sentence_embedder=None,
) -> dict:
    """How good are a clustering's keywords? With folder names and without.

    Against classes (``y_true`` given): clusters are matched one-to-one to classes (Hungarian on the
    contingency table, noise ``-1`` left out). A cluster *hits* when one of its keywords contains its
    class's name or is contained in it (lower case; ``_`` and ``/`` read as spaces: "ankle boot" hits
    "boot"), or, with a ``sentence_embedder``, when their cosine is ≥ 0.4 (Stephan et al.).
    ``hit_rate`` = hits / non-noise clusters (unmatched clusters miss).

    Label-free (``texts`` given): ``coverage`` = share of non-noise images whose text contains one of
    its cluster's keywords (whole words, lower case); ``distinctiveness`` = 1 − the mean Jaccard
    overlap of the clusters' keyword *word* sets over all pairs of non-noise clusters (1 = no cluster
    shares a word with another; NaN with fewer than 2 clusters).

    Args:
        keywords: cluster id → keywords (e.g. :func:`vlexplore.explain.cluster_keywords`).
        labels: ``(n,)`` int cluster ids.
        y_true: ``(n,)`` classes.
        class_names: class → display
            name (mapping or sequence indexed by class).
        texts: ``n`` texts the keywords came from.
        sentence_embedder: has ``encode(texts) -> (m, d)`` L2-normalised.

    Returns:
        ``{"n_clusters", "coverage", "distinctiveness", "per_cluster": {id: {...}}}`` plus, with
        ``y_true``, ``"hit_rate"``, ``"hits_by_string"`` and ``"hits_by_similarity"``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or (len(labels) and not np.issubdtype(labels.dtype, np.integer)):
        raise ConfigError(f"labels must be 1-d integer cluster ids, got {labels.dtype} {labels.shape}")
    ids = [int(c) for c in np.unique(labels) if c != -1]
    kw = {c: [str(w).lower() for w in keywords.get(c, [])] for c in ids}
    per: dict[int, dict[str, Any]] = {c: {"keywords": kw[c]} for c in ids}
    out: dict = {"n_clusters": len(ids), "coverage": float("nan"), "distinctiveness": float("nan")}
    if texts is not None:
        if len(texts) != len(labels):
            raise ConfigError(f"got {len(texts)} texts for {len(labels)} labels")
        pats = {
            c: re.compile("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in kw[c])) if kw[c] else None
            for c in ids
        }
        covered = np.array(
            [labels[i] != -1 and _mentions(pats[int(labels[i])], texts[i]) for i in range(len(labels))]
        )
        if (labels != -1).any():
            out["coverage"] = float(covered[labels != -1].mean())
        for c in ids:
            per[c]["coverage"] = float(covered[labels == c].mean())
    words = [set(" ".join(kw[c]).split()) for c in ids if kw[c]]
    if len(words) >= 2:
        jac = [len(a & b) / len(a | b) for i, a in enumerate(words) for b in words[i + 1 :]]
        out["distinctiveness"] = 1.0 - float(np.mean(jac))
    if y_true is not None:
        out.update(_class_hits(kw, per, labels, np.asarray(y_true), class_names, sentence_embedder))
    out["per_cluster"] = per
    return out


def _class_hits(kw, per, labels, y_true, class_names, embedder) -> dict:
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    if y_true.shape != labels.shape:
        raise ConfigError(f"y_true has shape {y_true.shape} but labels {labels.shape}; they must match")
    keep = labels != -1
    classes, clusters = np.unique(y_true[keep]), np.unique(labels[keep])
    match = {}
    if keep.any():
        rows, cols = linear_sum_assignment(contingency_matrix(y_true[keep], labels[keep]), maximize=True)
        match = {int(clusters[j]): _class_text(classes[i], class_names) for i, j in zip(rows, cols)}
    by_string = by_sim = 0
    pending = [c for c in kw if c in match and kw[c]]
    for c in kw:
        name = match.get(c)
        per[c].update({"class": name, "hit": False, "match": None})
        if name and any(name in w or w in name for w in kw[c]):
            per[c].update(hit=True, match="string")
            by_string += 1
            pending.remove(c)
    if embedder is not None and pending:
        names = sorted({match[c] for c in pending})
        all_kw = sorted({w for c in pending for w in kw[c]})
        vec = np.asarray(embedder.encode(names + all_kw), dtype=np.float32)
        vec = l2_normalize(vec)
        nv, kv = dict(zip(names, vec[: len(names)])), dict(zip(all_kw, vec[len(names) :]))
        for c in pending:
            best = max(float(nv[match[c]] @ kv[w]) for w in kw[c])
            per[c]["best_cosine"] = best
            if best >= MATCH_COSINE:
                per[c].update(hit=True, match="similarity")
                by_sim += 1
    n = len(kw)
    return {
        "hit_rate": (by_string + by_sim) / n if n else float("nan"),
        "hits_by_string": by_string,
        "hits_by_similarity": by_sim,
    }
