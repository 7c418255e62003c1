"""Curate.

Duplicate groups (identical files and near-identical images, one marked to keep), outliers (the most isolated
images first), uncertain images of the clustering, and every prompt's clustering of a prompt-guided run side
by side with their AMI matrix.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import curation, state
from ui.feedback import md_escape, show_flash
from ui.widgets import (
    chip,
    cluster_colours,
    pager,
    require_clusters,
    selection_actions,
    short_file_name,
    thumbnail_grid,
)
from vlexplore import edit
from vlexplore.curate import DEFAULT_THRESHOLD
from vlexplore.export import csv_bytes
from vlexplore.heatmaps import ami_figure

GROUPS_PER_PAGE = 10
GRID_PAGE = 48
VIEWS = ("Duplicates", "Outliers", "Uncertain", "Prompts")

s = state.get()
require_clusters(s)
st.title("Curate")
show_flash(s)
view = st.radio("View", VIEWS, horizontal=True, key="curate-view", label_visibility="collapsed")
relpaths = s.emb.collection.items["relpath"]


def short(i: int, limit: int = 22) -> str:
    """Image ``i``'s file name, cut to fit under a thumbnail."""
    return short_file_name(relpaths.iat[int(i)], limit)


if view == "Duplicates":
    st.caption(
        "Exact duplicates are the same file content; near duplicates are different files whose images "
        "the model sees as nearly the same (resized, recompressed, lightly cropped). In each group the "
        "first file (by path) is marked to keep."
    )
    threshold = st.slider(
        "Near-duplicate threshold (cosine similarity)",
        min_value=0.70,
        max_value=1.00,
        value=DEFAULT_THRESHOLD,
        step=0.01,
        key="dup-threshold",
        help=f"Lower finds more (and looser) near duplicates; 1.00 keeps exact copies only. The default, "
        f"{DEFAULT_THRESHOLD:.2f}, gave the best precision and recall on resized, recompressed and cropped copies of real photos.",
    )
    groups = curation.duplicates(s, threshold)
    if not groups.n_groups:
        st.success(f"No duplicates among the {s.n_images:,} images at similarity ≥ {threshold:.2f}.")
        st.stop()
    n_extra = len(groups.table) - groups.n_groups
    st.markdown(
        f"**{groups.n_groups:,} groups** of {len(groups.table):,} images ({groups.count('exact'):,} of them "
        f"identical files) · keeping one per group, {n_extra:,} could go"
    )
    st.download_button(
        "Download the groups (CSV: path, group, kind, similarity, keep)",
        csv_bytes(groups.table),
        file_name="duplicates.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    page = pager(groups.n_groups, GROUPS_PER_PAGE, key="dup-page")
    for g in edit.page_slice(np.arange(groups.n_groups), page, GROUPS_PER_PAGE):
        members = groups.group(int(g))
        n_exact = int((members["kind"] == "exact").sum())
        parts = [f"{n_exact} identical files"] if n_exact else []
        parts += [f"{len(members) - n_exact} near duplicates"] if n_exact < len(members) else []
        with st.container(border=True):
            st.markdown(f"**Group {int(g) + 1}** · {len(members)} images: {', '.join(parts)}")
            captions = {
                int(r.row): (
                    "✔ keep" if r.keep else ("same file" if r.kind == "exact" else f"{r.similarity:.3f}")
                )
                + f" · {short(r.row)}"
                for r in members.itertuples()
            }
            thumbnail_grid(s, members["row"].to_numpy(), columns=8, key=f"dup{int(g)}", captions=captions)

elif view == "Outliers":
    st.caption(
        "The images least like the rest come first: the score is the cosine distance to each image's "
        f"{curation.OUTLIER_K}th nearest neighbour (0 = many look alike, higher = more isolated). "
        "Tick images to move them to a cluster or to make one of them."
    )
    rows, scores = curation.outliers(s)
    selection_actions(s, where="outliers")
    page = pager(len(rows), GRID_PAGE, key="outlier-page")
    shown = edit.page_slice(np.arange(len(rows)), page, GRID_PAGE)
    captions = {int(rows[j]): f"{scores[j]:.3f} · {short(rows[j])}" for j in shown}
    thumbnail_grid(s, rows[shown], columns=8, key="outliers", captions=captions, selectable=True)

elif view == "Uncertain":
    mask = curation.confident_mask(s)
    if mask is None:
        st.info(
            "Uncertain images are known when the clustering uses the *Image + nouns (TAC)*, *Image–noun "
            "relations* or *Learned semantic centres* representation: choose one on the **Cluster** page.",
            icon=":material/help:",
        )
        st.page_link("views/cluster.py", label="Go to Cluster", icon=":material/tune:")
        st.stop()
    n_unsure = int((~mask).sum())
    st.caption(
        "An image is confident when most of its nearest neighbours share its cluster; the others sit "
        "between clusters. Tick them to move them where they belong."
    )
    st.markdown(f"**{n_unsure:,} uncertain images** of {s.n_images:,} ({n_unsure / max(1, s.n_images):.0%})")
    clusters = [c for c in s.order() if c in set(s.labels[~mask].tolist())]
    pick = st.selectbox(
        "Cluster",
        [None, *clusters],
        format_func=lambda c: "all clusters" if c is None else s.name(c),
        key="uncertain-cluster",
    )
    rows = curation.uncertain(s, pick)
    selection_actions(s, where="uncertain")
    if not len(rows):
        st.success("Every image is confident.")
        st.stop()
    page = pager(len(rows), GRID_PAGE, key=f"uncertain-page-{pick}")
    shown = edit.page_slice(rows, page, GRID_PAGE)
    captions = {int(i): f"{s.name(s.labels[i])[:14]} · {short(i, 12)}" for i in shown}
    thumbnail_grid(s, shown, columns=8, key="uncertain", captions=captions, selectable=True)

else:
    views = curation.prompt_clusterings(s)
    if not views:
        st.info(
            "Prompt-guided clustering asks each image your questions and clusters the answers, once per "
            "question. Choose *Answers to your questions (prompt-guided)* on the **Cluster** page with two "
            "or more questions to compare them here.",
            icon=":material/help:",
        )
        st.page_link("views/cluster.py", label="Go to Cluster", icon=":material/tune:")
        st.stop()
    info = s.clustered.info
    st.caption(
        "Each column is one question's clustering of the same images (ranked by k-means loss; ✔ = the one "
        "in use). The matrix below says how much two of them agree (AMI: 1 = the same grouping, 0 = unrelated)."
    )
    per_cluster = st.select_slider("Thumbnails per cluster", [2, 4, 6, 8], value=4, key="prompt-thumbs")
    colours = cluster_colours(s)
    for start in range(0, len(views), 3):
        for col, pv in zip(st.columns(3, gap="medium"), views[start : start + 3]):
            with col.container(border=True):
                st.markdown(
                    f"**{pv.rank}. {md_escape(pv.prompt)}**" + (" ✔" if pv.chosen else ""),
                    help="the clustering in use" if pv.chosen else None,
                )
                st.caption(f"{len(pv.clusters)} clusters")
                for c in pv.clusters:
                    words = ", ".join(c["words"]) or f"cluster {c['id']}"
                    st.markdown(
                        chip(colours.get(c["id"], "#888"), f"{words} ({c['size']})", bold=False),
                        unsafe_allow_html=True,
                    )
                    thumbnail_grid(
                        s,
                        c["members"][:per_cluster],
                        columns=per_cluster,
                        key=f"prompt{start}-{pv.rank}-{c['id']}",
                        captions={int(i): "" for i in c["members"][:per_cluster]},
                    )
    if len(info.get("ami_prompts") or []) > 1:
        st.markdown("**Agreement between the questions' clusterings (AMI)**")
        st.plotly_chart(ami_figure(info["ami"], info["ami_prompts"]), width="stretch")
