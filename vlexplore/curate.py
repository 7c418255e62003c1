"""Curation: duplicate groups and outlier scores over a collection's ``image`` view.

>>> from vlexplore.curate import duplicates, outlier_scores
>>> duplicates(emb, threshold=0.88)   # path, group, kind, similarity, keep
>>> outlier_scores(emb, k=10)         # high = far from everything else

Neighbours come from :class:`vlexplore.search.SearchIndex` (numpy up to
:data:`vlexplore.search.EXACT_MAX` rows, a faiss inner-product index beyond).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from .errors import ConfigError

#: Neighbours looked at per image when linking near duplicates (groups link further through union-find).
NEAR_NEIGHBOURS = 16
#: Default cosine from which two images are near duplicates: on copies of the demo's photos (resized,
#: recompressed, cropped; ``bench/near_duplicates.py``) the bundled model's image view gives pairwise
#: precision 0.955 and recall 0.88 at 0.88 (the best F1 of the sweep), 0.98 / 0.72 at 0.90, 1.00 / 0.17 at 0.95.
DEFAULT_THRESHOLD = 0.88
DUPLICATE_COLUMNS = ("path", "group", "kind", "similarity", "keep")


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _unit_view(emb, view: str) -> np.ndarray:
    vectors = emb.views.get(view)
    if vectors is None:
        raise ConfigError(f"these embeddings have no {view!r} view (views: {', '.join(emb.views)})")
    return vectors


def _neighbours(emb, view: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows: (``float32 (n, k)`` cosine, ``int64 (n, k)`` rows), nearest first."""
    from .search import EXACT_MAX, search_index

    index = search_index(emb, view)
    n = len(index)
    if n > EXACT_MAX:  # an exact all-pairs pass grows as n²: HNSW (faiss) or NN-descent instead
        from .largescale import knn_approximate

        found = knn_approximate(index.vectors, k)
        sims = np.einsum("nd,nkd->nk", index.vectors, index.vectors[found])
        order = np.argsort(-sims, axis=1, kind="stable")
        return np.take_along_axis(sims, order, 1), np.take_along_axis(found, order, 1)
    scores, rows = index.query(index.vectors, k + 1)
    own = rows == np.arange(n)[:, None]
    missing = ~own.any(axis=1)
    own[missing, -1] = True  # among exact ties the row itself may fall outside: drop the farthest instead
    return scores[~own].reshape(n, k), rows[~own].reshape(n, k)


def duplicates(emb, *, threshold: float = DEFAULT_THRESHOLD, view: str = "image") -> pd.DataFrame:
    """Groups of identical files and of near-identical images.

    Identical files share their content key (``collection.items["fingerprint"]``); near duplicates
    have cosine ≥ ``threshold`` between their ``view`` embeddings (each image's nearest
    :data:`NEAR_NEIGHBOURS` are linked, and linked pairs are joined into groups by union-find).

    Args:
        emb: a :class:`vlexplore.pipeline.Embedded`.
        threshold: cosine similarity in (0, 1] from which two images are near duplicates.
        view: the embedding compared (default ``image``).

    Returns:
        One row per image in a group of two or more, sorted by group then path: ``path`` (relpath),
        ``group`` (0, 1, … in the order of each group's first path), ``kind`` (``exact`` when another
        member is the same file content, else ``near``), ``similarity`` (cosine to the group's kept
        member) and ``keep`` (True for the first member by relpath, the one to keep).

    Raises:
        ConfigError: ``threshold`` outside (0, 1], or a missing view.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be a cosine similarity in (0, 1], got {threshold!r}")
    items = emb.collection.items
    n = len(items)
    empty = pd.DataFrame(
        {c: pd.Series(dtype=t) for c, t in zip(DUPLICATE_COLUMNS, (object, "int64", object, "float64", bool))}
    )
    if n < 2:
        return empty
    vectors = _unit_view(emb, view)
    relpaths = items["relpath"].to_numpy()
    fingerprints = items["fingerprint"].to_numpy()
    uf = _UnionFind(n)
    first_of: dict[str, int] = {}
    for i, fp in enumerate(fingerprints):
        uf.union(first_of.setdefault(fp, i), i)
    k = min(NEAR_NEIGHBOURS, n - 1)
    scores, rows = _neighbours(emb, view, k)
    for i, j in zip(*np.nonzero(scores >= threshold)):
        uf.union(int(i), int(rows[i, j]))
    roots = np.fromiter((uf.find(i) for i in range(n)), dtype=np.int64, count=n)
    _, inverse, counts = np.unique(roots, return_inverse=True, return_counts=True)
    members = np.nonzero(counts[inverse] > 1)[0]
    if not len(members):
        return empty
    fp_counts = Counter(zip(roots[members].tolist(), fingerprints[members].tolist()))
    records = []
    for root in np.unique(roots[members]):
        group = members[roots[members] == root]
        group = group[np.argsort(relpaths[group], kind="stable")]
        kept = group[0]
        sims = np.clip(vectors[group] @ vectors[kept], -1.0, 1.0)
        for pos, (i, sim) in enumerate(zip(group, sims)):
            exact = fp_counts[(int(root), fingerprints[i])] > 1
            records.append((relpaths[i], "exact" if exact else "near", float(sim), pos == 0))
    df = pd.DataFrame(records, columns=["path", "kind", "similarity", "keep"])
    first_paths = df["path"].where(df["keep"]).ffill()
    order = {p: g for g, p in enumerate(sorted(set(first_paths)))}
    df.insert(1, "group", first_paths.map(order).astype("int64"))
    df.loc[df["keep"] & (df["kind"] == "exact"), "similarity"] = 1.0
    return df.sort_values(["group", "path"], kind="stable").reset_index(drop=True)[list(DUPLICATE_COLUMNS)]


def outlier_scores(emb, k: int = 10, *, view: str = "image") -> np.ndarray:
    """How far each image is from the rest: cosine distance to its ``k``-th nearest other image.

    Args:
        emb: a :class:`vlexplore.pipeline.Embedded`.
        k: which neighbour (clipped to ``n - 1``).
        view: the embedding compared (default ``image``).

    Returns:
        ``float64 (n,)`` in ``[0, 2]``, high = an outlier; zeros for fewer than two images.

    Raises:
        ConfigError: ``k < 1``, or a missing view.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a whole number ≥ 1, got {k!r}")
    _unit_view(emb, view)
    n = emb.n
    if n < 2:
        return np.zeros(n, dtype=np.float64)
    k = min(int(k), n - 1)
    scores, _ = _neighbours(emb, view, k)
    return np.clip(1.0 - scores[:, k - 1].astype(np.float64), 0.0, 2.0)


def curation_columns(
    emb, clustered=None, *, threshold: float = DEFAULT_THRESHOLD, k: int = 10
) -> dict[str, object]:
    """The export's curation columns, computed once per ``emb`` (kept on it) and threshold.

    Returns:
        ``{"duplicate_group": Int64 (n,) group of :func:`duplicates` (missing = in no group),
        "outlier_score": float64 (n,) (:func:`outlier_scores`), "confident": boolean (n,) from
        ``clustered.info["confident"]`` when the representation gives a mask, else all missing}``.
    """
    n = emb.n
    memo = emb.__dict__.setdefault("_curation", {})
    key = (threshold, k, id(emb.views.get("image")))
    if key not in memo:
        groups = pd.Series(pd.NA, index=range(n), dtype="Int64")
        if n >= 2 and "image" in emb.views:
            dups = duplicates(emb, threshold=threshold)
            where = pd.Series(range(n), index=emb.collection.items["relpath"].to_numpy())
            groups.iloc[where[dups["path"]].to_numpy()] = dups["group"].to_numpy()
        scores = outlier_scores(emb, k) if "image" in emb.views else np.full(n, np.nan)
        memo.clear()
        memo[key] = (groups.to_numpy(), scores)
    groups, scores = memo[key]
    mask = (getattr(clustered, "info", None) or {}).get("confident")
    confident = pd.array([pd.NA] * n, dtype="boolean")
    if isinstance(mask, np.ndarray) and mask.shape == (n,):
        confident = pd.array(mask.astype(bool), dtype="boolean")
    return {
        "duplicate_group": pd.array(groups, dtype="Int64"),
        "outlier_score": scores,
        "confident": confident,
    }
