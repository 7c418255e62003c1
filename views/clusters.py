"""Clusters.

One card per cluster — name, size, keywords, representative thumbnails (nearest to the centre first, paged);
rename, merge, and move selected images between clusters.
"""

from __future__ import annotations

import streamlit as st

from ui import actions, state
from ui.feedback import md_escape, show_flash
from ui.session_panel import undo_button
from ui.widgets import (
    chip,
    cluster_colours,
    method_summary,
    pager,
    require_clusters,
    selection_actions,
    thumbnail_grid,
)
from vlexplore import edit

CARDS_PER_PAGE = 12

s = state.get()
require_clusters(s)
colours = cluster_colours(s)
sizes = s.sizes()
order = s.order()
reps = actions.representatives(s)
cfg = s.clustered.config

st.title("Clusters")
show_flash(s)
noise_n = sizes.get(edit.NOISE, 0)
summary = f"**{s.n_clusters} clusters** of {s.n_images:,} images"
if noise_n:
    summary += f" · {noise_n:,} in “{md_escape(s.noise_name)}” (not in any cluster)"
summary += f" · {md_escape(method_summary(s))}" + (f" · {len(s.edit_log)} hand edit(s)" if s.edit_log else "")
st.markdown(summary)
st.caption(
    "Each card shows the images nearest to the cluster's centre first. Names are the words that fit a "
    "cluster better than the others (what they have in common, from WordNet, as the short name); rename them "
    "to what you see."
)
if s.edit_log:
    undo_button(s, key="clusters-undo")  # every edit is saved as it happens; this takes the last one back

with st.container(border=True):
    c1, c2, c3, c4 = st.columns([4, 3, 2, 2], vertical_alignment="bottom")
    c1.multiselect(
        "Merge clusters",
        order,
        format_func=s.name,
        key=f"merge_ids-{s.version}",
        placeholder="pick two or more",
    )
    c2.text_input("Name of the merged cluster (optional)", key=f"merge_name-{s.version}")
    c3.button(
        "Merge",
        disabled=len(st.session_state.get(f"merge_ids-{s.version}") or []) < 2,
        width="stretch",
        on_click=actions.merge,
        args=(s, f"merge_ids-{s.version}", f"merge_name-{s.version}"),
    )
    per_card = c4.selectbox("Thumbnails per cluster", [8, 16, 32, 64], key="per_card")
    select_mode = st.toggle(
        "Select images (tick them, then move them to another cluster or make a new one)",
        key="select_mode",
    )

actions_box = st.container()

card_page = pager(len(order), CARDS_PER_PAGE, key="card-page")

for cid in edit.page_slice(order, card_page, CARDS_PER_PAGE):
    cid = int(cid)
    members = reps.get(cid)
    with st.container(border=True):
        head, tools = st.columns([5, 1], vertical_alignment="center")
        title = s.name(cid) if cid != edit.NOISE else f"{s.noise_name} — not in any cluster"
        keywords = ", ".join(k for k in s.clustered.keywords.get(cid, [])[:6] if k not in title)
        head.markdown(
            chip(colours.get(cid, "#888"), title)
            + f" &nbsp;<span style='opacity:0.7'>{sizes[cid]:,} images"
            + (f" · {md_escape(keywords)}" if keywords else "")
            + "</span>",
            unsafe_allow_html=True,
        )
        with tools.popover("Rename", width="stretch"):
            key = f"rename-{cid}-{s.version}"
            st.text_input(
                "New name", value=s.name(cid), key=key, on_change=actions.rename, args=(s, cid, key)
            )
            st.caption("Press Enter to apply.")
        if members is None or len(members) == 0:
            st.caption("no images")
            continue
        grid = st.container()
        page = pager(len(members), per_card, key=f"cardpage-{cid}")
        with grid:
            thumbnail_grid(
                s,
                edit.page_slice(members, page, per_card),
                columns=8,
                selectable=select_mode,
                key=f"c{cid}",
                more_like_this=True,  # "Similar" under each image: the Search page with its nearest images
            )

with actions_box:
    selection_actions(s, where="clusters")
