"""Evaluate.

Against the sub-folder labels when there are any (ACC/NMI/ARI, confusion, purity), label-free scores
otherwise. Scores follow the hand edits.
"""

from __future__ import annotations

import math

import streamlit as st

from ui import actions, state
from ui.feedback import show_flash
from ui.widgets import require_clusters
from vlexplore import heatmaps, tables

s = state.get()
require_clusters(s)
st.title("Evaluate")
show_flash(s)

scores = actions.scores(s)
table = actions.confusion(s)


def fmt(value, digits: int = 3) -> str:
    """A score with ``digits`` decimals, or a dash when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def table_height(rows: int) -> int:
    """Tall enough for every row, up to about 15 rows (then the table scrolls)."""
    return 38 + 35 * min(rows, 15)


def percent_column(label: str):
    """A bar with a whole-number percentage (the column holds 0–100)."""
    return st.column_config.ProgressColumn(label, format="%.0f%%", min_value=0.0, max_value=100.0)


if table is not None:
    n_folders = len(table.index)
    st.caption(
        f"The {n_folders} sub-folders are taken as the true classes. Scores are 1.0 for a perfect match; "
        + ("they include your hand edits." if s.edit_log else "they describe the clustering as computed.")
    )
    c = st.columns(5)
    c[0].metric(
        "Accuracy (ACC)",
        fmt(scores.get("acc")),
        help="Share of images in the cluster matched to their "
        "folder (Hungarian matching; noise and unmatched clusters count as errors).",
    )
    c[1].metric(
        "NMI", fmt(scores.get("nmi")), help="Normalised mutual information between folders and clusters."
    )
    c[2].metric(
        "ARI", fmt(scores.get("ari")), help="Adjusted Rand index: 0 = chance, 1 = identical partitions."
    )
    c[3].metric("Clusters", f"{s.n_clusters}", help=f"{n_folders} folders")
    c[4].metric("Noise / other", f"{scores.get('noise_share', 0.0):.1%}")
    st.subheader("Folders × clusters")
    st.plotly_chart(heatmaps.confusion_heatmap(table, {c: s.name(c) for c in s.order()}), width="stretch")
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Per folder")
        per_folder = tables.folder_purity(table, s.names)
        per_folder["share"] *= 100
        st.dataframe(
            per_folder,
            hide_index=True,
            width="stretch",
            height=table_height(len(per_folder)),
            column_config={"share": percent_column("share of the folder")},
        )
    with right:
        st.subheader("Per cluster (purity)")
        per_cluster = tables.cluster_purity(table, s.names)
        per_cluster["purity"] *= 100
        st.dataframe(
            per_cluster,
            hide_index=True,
            width="stretch",
            height=table_height(len(per_cluster)),
            column_config={"purity": percent_column("purity (majority share)")},
        )
else:
    st.caption(
        "The images are not sorted into sub-folders, so there are no labels to compare with; these scores "
        "judge the clusters by their shape alone (on a sample of up to 5,000 images)."
    )
    c = st.columns(4)
    c[0].metric("Silhouette", fmt(scores.get("silhouette")), help="-1 … 1, higher is better (cosine).")
    c[1].metric("Davies–Bouldin", fmt(scores.get("davies_bouldin")), help="≥ 0, lower is better.")
    c[2].metric("Calinski–Harabasz", fmt(scores.get("calinski_harabasz"), 1), help="Higher is better.")
    c[3].metric("Clusters", f"{s.n_clusters}")
