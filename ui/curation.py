"""Curation in the app: duplicate groups, outlier scores, uncertain images, the prompts' clusterings.

Thin wrappers around the library (:func:`vlexplore.duplicates`, :func:`vlexplore.outlier_scores`,
:func:`vlexplore.representatives`, :func:`vlexplore.cluster_keywords`), each computed once per loaded
folder (per threshold for duplicates) and kept in the session beside :class:`ui.state.AppState`:
hand edits of the clusters do not change any of them, so they are not keyed on the edit version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

import vlexplore as vx
from ui.feedback import error_banner
from ui.search import rows_of
from ui.state import AppState

KEY = "vx_curate"
OUTLIER_K = 10
T = TypeVar("T")


def _memo(state: AppState, key: tuple, compute: Callable[[], T]) -> T:
    """``compute()`` once per loaded folder and ``key`` (another folder drops the lot)."""
    store = st.session_state.get(KEY)
    if not isinstance(store, dict) or store.get("emb") is not state.emb:
        store = {"emb": state.emb}
        st.session_state[KEY] = store
    if key not in store:
        store[key] = compute()
    return store[key]


@dataclass
class DuplicateGroups:
    """The duplicate groups of the collection at one threshold.

    Attributes:
        table: :func:`vlexplore.duplicates`' table (``path, group, kind, similarity, keep``).
        rows: ``int64`` collection row of each table row.
    """

    table: pd.DataFrame
    rows: np.ndarray

    @property
    def n_groups(self) -> int:
        """Number of duplicate groups."""
        return int(self.table["group"].nunique()) if len(self.table) else 0

    def group(self, g: int) -> pd.DataFrame:
        """Group ``g``'s rows, the one to keep first (with a ``row`` column: the collection row)."""
        part = self.table[self.table["group"] == g].assign(
            row=self.rows[(self.table["group"] == g).to_numpy()]
        )
        return part.sort_values("keep", ascending=False, kind="stable")

    def count(self, kind: str) -> int:
        """Images in a group of this ``kind`` (``exact`` / ``near``), the kept ones included."""
        return int((self.table["kind"] == kind).sum())


def duplicates(state: AppState, threshold: float) -> DuplicateGroups:
    """Exact (same file content) and near (cosine ≥ ``threshold``) duplicate groups."""
    t = round(float(threshold), 3)

    def compute() -> DuplicateGroups:
        with st.spinner("Looking for duplicates…"), error_banner("Could not look for duplicates"):
            table = vx.duplicates(state.emb, threshold=t)
        return DuplicateGroups(table, rows_of(state, table["path"]))

    return _memo(state, ("duplicates", t), compute)


def outliers(state: AppState) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, scores)``: every image, the most isolated first (cosine distance to its 10th neighbour)."""

    def compute() -> tuple[np.ndarray, np.ndarray]:
        with st.spinner("Scoring outliers…"), error_banner("Could not score outliers"):
            scores = vx.outlier_scores(state.emb, k=OUTLIER_K)
        order = np.argsort(-scores, kind="stable")
        return order.astype(np.int64), scores[order]

    return _memo(state, ("outliers", OUTLIER_K), compute)


def confident_mask(state: AppState) -> np.ndarray | None:
    """``bool (n,)`` confident images of the clustering (``None`` when its representation gives none)."""
    mask = (state.clustered.info or {}).get("confident") if state.clustered is not None else None
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    return mask if mask.shape == (state.n_images,) else None


def uncertain(state: AppState, cluster: int | None = None) -> np.ndarray:
    """Rows of the images that are not confident, in cluster order (only ``cluster``'s when given)."""
    mask = confident_mask(state)
    if mask is None:
        return np.zeros(0, dtype=np.int64)
    rows = np.flatnonzero(~mask)
    if cluster is not None:
        return rows[state.labels[rows] == int(cluster)]
    rank = {c: r for r, c in enumerate(state.order())}
    return rows[np.argsort([rank.get(int(c), len(rank)) for c in state.labels[rows]], kind="stable")]


@dataclass
class PromptClustering:
    """One prompt's clustering: its clusters, largest first, each with words and representatives."""

    prompt: str
    rank: int
    chosen: bool
    clusters: list[dict[str, Any]]  # {"id", "size", "words", "members" (nearest the centre first)}


def prompt_clusterings(state: AppState) -> list[PromptClustering]:
    """Every prompt's clustering of a prompt-guided run, best ranked first (empty for other runs)."""
    info = (state.clustered.info or {}) if state.clustered is not None else {}
    labels_of = info.get("prompt_labels") or {}
    if not labels_of:
        return []

    def compute() -> list[PromptClustering]:
        ranks = {r["prompt"]: int(r["rank"]) for r in info.get("prompt_ranking") or []}
        answers = info.get("prompt_answers") or {}
        image = state.emb.views["image"]
        out = []
        for prompt, labels in labels_of.items():
            labels = np.asarray(labels, dtype=np.int64)
            reps = vx.representatives(image, labels)
            words = vx.cluster_keywords(answers[prompt], labels, top_n=3) if prompt in answers else {}
            ids, sizes = np.unique(labels, return_counts=True)
            clusters = [
                {"id": int(c), "size": int(n), "words": words.get(int(c), []), "members": reps[int(c)]}
                for c, n in sorted(zip(ids, sizes), key=lambda cn: (-cn[1], cn[0]))
            ]
            out.append(
                PromptClustering(prompt, ranks.get(prompt, 0), prompt == info.get("chosen_prompt"), clusters)
            )
        return sorted(out, key=lambda p: (p.rank or len(out) + 1, p.prompt))

    clustered, views = _memo(state, ("prompts", id(state.clustered)), lambda: (state.clustered, compute()))
    return views if clustered is state.clustered else compute()
