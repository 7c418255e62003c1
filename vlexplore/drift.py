"""Prototype drift: prototype clusters whose members moved away from their prompt (refinement moves centres)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .models.base import l2_normalize
from .naming import CONTRAST, DRIFT_TOP, cluster_centroids, contrastive_scores


def prototype_drift(
    joint,
    labels,
    prototype_emb: np.ndarray,
    *,
    words: Sequence[str] | None = None,
    word_emb: np.ndarray | None = None,
    top: int = DRIFT_TOP,
    score: str = "margin",
    contrast: float = CONTRAST,
) -> list[int]:
    """Prototype clusters (id ``i`` ↔ prompt ``i``) whose members drifted away from their prompt.

    Cluster ``i`` is flagged when

    * its members' mean similarity to prompt ``i`` is below their mean similarity to another prompt
      (zero-shot assignment never fails this: every member is nearest its own prompt; refined centres can);
    * prompt ``i`` fits another cluster's centre better than its own (its pure margin is negative):
      "yellow" given to the blue images while the red ones are nearer yellow;
    * (with a vocabulary) prompt ``i`` is not among the cluster's ``top`` words by contrastive score,
      the prompts counting as words.

    Every comparison is of cosine means or margins, so SigLIP's ``scale · cos + bias`` changes no flag
    (see :mod:`vlexplore.cluster.prototypes`, "One scale for every model").

    Returns:
        Sorted cluster ids.
    """
    P = l2_normalize(np.asarray(prototype_emb, dtype=np.float32))
    J = l2_normalize(np.asarray(joint, dtype=np.float32))
    labels = np.asarray(labels)
    p = len(P)
    present = [i for i in range(p) if (labels == i).any()]
    if not present:
        return []
    drifted: set[int] = set()
    for i in present:
        mean_sim = J[labels == i].mean(axis=0) @ P.T
        if p > 1 and mean_sim[i] < np.delete(mean_sim, i).max():
            drifted.add(i)
    ids, C = cluster_centroids(J, labels)
    real = ids != -1
    rows = {int(c): r for r, c in enumerate(ids[real])}
    margin = contrastive_scores(C[real], P, "margin", 1.0)
    for i in present:
        if real.sum() > 1 and margin[rows[i], i] < 0:
            drifted.add(i)
    if word_emb is not None and top:
        E = np.concatenate([P, np.asarray(word_emb, dtype=np.float32)])
        S = contrastive_scores(C[real], E, score, contrast)
        for i in present:
            s = S[rows[i]]
            if int((s > s[i]).sum()) >= top:
                drifted.add(i)
    return sorted(drifted)
