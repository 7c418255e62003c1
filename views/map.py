"""Map: the UMAP layout coloured by cluster; lasso/box-select images to see them and name them.

While the UMAP layout is still being computed in the background (minutes in a new process whose numba cache
is empty), a quick layout is shown at once and replaced by UMAP's when it is done, without the user doing anything.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import actions, state
from ui.feedback import md_escape, show_flash
from ui.widgets import (
    cluster_colours,
    pager,
    require_clusters,
    selection_actions,
    thumbnail_grid,
)
from vlexplore import edit, plots

GRID_PAGE = 48
#: Seconds between looks at the background UMAP layout while the quick layout is on screen.
POLL_S = 2.0

s = state.get()
require_clusters(s)
quick = actions.ensure_map(s, quick=True)
st.title("Map")
show_flash(s)


@st.fragment(run_every=POLL_S)
def swap_in_umap() -> None:
    """Rerun the page once the background UMAP layout is done: ``ensure_map`` then puts it on screen."""
    job = s.map_job
    if job is None or job.done():
        st.rerun()


if quick:
    st.caption(
        ":material/hourglass_top: A quick first layout: the UMAP layout is being computed and will replace it "
        "by itself."
    )
    swap_in_umap()


from ui import scatter as webgl_map  # noqa: E402 - the WebGL map (ui/scatter.py), when its bundle is there

if webgl_map.use_webgl():  # every point, thumbnails on hover, lasso/box/click: selection → grid below
    webgl_map.map_section(s)
else:  # the plotly map (a random sample above 200,000 points)

    def build() -> plots.MapFigure:
        """The plotly figure of the current layout and clustering."""
        hover = None
        if (
            s.n_images <= plots.MAX_HOVER_POINTS
        ):  # (escaped by plots: plotly renders a subset of HTML, links too)
            hover = plots.hover_texts(s.emb.collection.items["relpath"].tolist(), s.emb.captions)
        names = {c: s.name(c) for c in s.order()}
        return plots.scatter_map(
            s.clustered.coords, s.labels, names, s.order(), cluster_colours(s), hover=hover
        )

    fig = s.cached("map", build)
    st.caption(
        "Each dot is an image; similar images lie close together. Drag to lasso-select (box select is in the "
        "toolbar); click a legend entry to hide a cluster, double-click to show only it."
        + (f" Showing a random {fig.n_shown:,} of {s.n_images:,} images." if fig.n_shown < s.n_images else "")
    )
    chart_key = f"map-{s.version}"
    event = st.plotly_chart(
        fig.figure,
        key=chart_key,
        on_select="rerun",
        selection_mode=("lasso", "box"),
        config={"displaylogo": False, "scrollZoom": True},
        width="stretch",
    )

    # The chart's selection is applied when it changes (a fresh chart starts empty and must not wipe
    # a selection made elsewhere, e.g. ticked on the Clusters page).
    points = list(event.selection.points) if event is not None and event.selection else []
    signature = (chart_key, tuple((p.get("curve_number"), p.get("point_index")) for p in points))
    previous = st.session_state.get("map_signature")
    if (previous is not None and previous[0] == chart_key and previous != signature) or (
        (previous is None or previous[0] != chart_key) and points
    ):
        s.set_selection(fig.indices(points))
    st.session_state["map_signature"] = signature

selection_actions(s, where="map")
sel = s.selection
if len(sel):
    sizes = edit.cluster_sizes(s.labels[sel])
    st.caption(
        "Selected images by cluster: "
        + ", ".join(
            f"{md_escape(s.name(c))} ({n:,})" for c, n in sorted(sizes.items(), key=lambda kv: -kv[1])
        )
    )
    page = pager(len(sel), GRID_PAGE, key="map-grid-page")
    thumbnail_grid(s, edit.page_slice(np.asarray(sel), page, GRID_PAGE), columns=8, key="map")
else:
    st.info("Select points on the map (lasso or box) to see those images here and name them as a cluster.")
