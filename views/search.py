"""Search.

Find images by a text or an example image (or "more like this" from a grid) in the joint space of the current
model; a ranked grid with scores, the hits on the map, the hits as a new cluster.
"""

from __future__ import annotations

import streamlit as st

from ui import search, state
from ui.feedback import md_escape, show_flash
from ui.widgets import require_clusters, short_file_name, thumbnail_grid

s = state.get()
require_clusters(s)
found = search.hits(s)

st.title("Search")
show_flash(s)
st.caption(
    "Type what you are looking for, or upload an example image: the images nearest to it in the model's "
    "joint image–text space come first (score = cosine similarity). "
    + (
        "The bundled offline model knows ImageNet's 1,000 things, so plain object words work best."
        if s.emb.model_id.startswith("bundled")
        else ""
    )
)

by_text, by_image = st.columns([3, 2], gap="medium")
with by_text.form("search-text", border=True):
    text = st.text_input("Describe what to look for", placeholder="e.g. a red car", key="search-query")
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    top = c1.selectbox("Results", search.TOP_CHOICES, index=1, key="search-top")
    go_text = c2.form_submit_button("Search", type="primary", icon=":material/search:")
with by_image.form("search-image", border=True):
    upload = st.file_uploader(
        "…or find images like this one", type=["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
    )
    go_image = st.form_submit_button("Search by this image", icon=":material/image_search:")

if go_text:
    search.search_text(s, text, top=top)
elif go_image:
    search.search_image(s, upload.getvalue() if upload else None, upload.name if upload else "", top=top)

if found.error:
    st.error(md_escape(f"Could not search: {found.error}"), icon=":material/warning:")
    found.error = None  # shown once; the results below are the previous ones

if not len(found.indices):
    st.info("No search yet: type a few words above, upload an image, or press “Similar” under any image.")
    st.stop()

st.markdown(f"**{len(found.indices)} images** nearest to *{md_escape(found.query)}*")
with st.container(border=True):
    c1, c2, c3 = st.columns([3, 1, 2], vertical_alignment="bottom")
    name_key = f"search-cluster-name-{s.version}"
    c1.text_input("Make a cluster of these", key=name_key, placeholder="name of the new cluster")
    c2.button(
        "Create cluster",
        key="search-create",
        type="primary",
        on_click=search.cluster_of_hits,
        args=(s, name_key),
    )
    if c3.button("Show them on the map", key="search-map", icon=":material/scatter_plot:"):
        search.show_on_map(s)
        st.switch_page("views/map.py")

relpaths = s.emb.collection.items["relpath"]


def short(i: int) -> str:
    """Image ``i``'s file name, cut to fit under a thumbnail."""
    return short_file_name(relpaths.iat[int(i)], 20)


captions = {
    int(i): f"{rank}. {score:.3f} · {short(i)}"
    for rank, (i, score) in enumerate(zip(found.indices, found.scores), 1)
}
thumbnail_grid(s, found.indices, columns=6, key="search", captions=captions, more_like_this=True)
