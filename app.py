"""vlexplore — the browser app. ``streamlit run app.py`` (``make run`` opens it on the demo folder).

This file sets the page up, picks the page, loads the start-up folder once per session
(``VLEXPLORE_FOLDER``, with the model ``VLEXPLORE_MODEL``: scan → embed → cluster with defaults,
all disk-cached) and draws the
shared sidebar. It computes nothing itself. Without a start-up folder it compiles UMAP's
kernels in a background thread while the user picks a folder (``VLEXPLORE_WARM_UMAP=0`` turns that off).
"""

from __future__ import annotations

import os

import streamlit as st

from ui import actions, cached, hosts, search, state
from ui.feedback import error_banner, md_code, md_escape
from vlexplore import paths

st.set_page_config(
    page_title="vlexplore",
    page_icon=":material/travel_explore:",
    layout="wide",
    initial_sidebar_state="expanded",
)
hosts.enforce()  # DNS rebinding: refuse requests and sessions whose Host is not this machine's (docs/security.md)
cached.note_activity()  # background work (the model warm-up) waits while pages run
cached.thread_dumps_on_sigusr1()  # kill -USR1 <server pid>: every thread's stack to stderr

s = state.get()
with error_banner():  # VLEXPLORE_FOLDER is not a usable path, or is the file-system root
    start = paths.startup_folder()
auto_start = start is not None and not s.auto_started and not s.has_data

PAGES = {
    "load": st.Page(
        "views/load.py",
        title="Load",
        icon=":material/folder_open:",
        default=not (s.has_clusters or auto_start),
    ),
    "cluster": st.Page("views/cluster.py", title="Cluster", icon=":material/tune:"),
    "clusters": st.Page(
        "views/clusters.py",
        title="Clusters",
        icon=":material/grid_view:",
        default=s.has_clusters or auto_start,
    ),
    "map": st.Page("views/map.py", title="Map", icon=":material/scatter_plot:"),
    "search": st.Page("views/search.py", title="Search", icon=":material/search:"),
    "curate": st.Page("views/curate.py", title="Curate", icon=":material/cleaning_services:"),
    "evaluate": st.Page("views/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    "export": st.Page("views/export.py", title="Export", icon=":material/download:"),
}
page = st.navigation(list(PAGES.values()))

if auto_start:
    s.auto_started = True
    with st.container():
        st.markdown(f"### Opening {md_code(start)}")
        st.caption("First time: every image goes through the model once; later starts read the cache.")
        if start.is_dir():
            # stops the page with an error banner on failure
            actions.load_folder(s, start, model=paths.startup_model())
            st.rerun()
        st.error(
            md_escape(
                f"The start-up folder {start} (VLEXPLORE_FOLDER) is not a folder; choose one on the Load page."
            )
        )

elif not s.has_data and os.environ.get("VLEXPLORE_WARM_UMAP", "1") != "0":
    # Nobody is waiting for a map yet (with a start-up folder, its layout job compiles UMAP anyway).
    cached.start_umap_warm_up(str(s.resolved_cache_dir))

with st.sidebar:
    if s.has_clusters:  # the search box of every page: Enter opens the Search page with the results
        with st.form("sidebar-search", border=False, enter_to_submit=True):
            query = st.text_input(
                "Search images", placeholder="search images, e.g. a red car", label_visibility="collapsed"
            )
            if st.form_submit_button("Search", icon=":material/search:"):
                search.search_text(s, query)
                st.switch_page(PAGES["search"])
    if s.has_data:
        folder = s.folder.name if s.folder else "?"
        st.markdown(f"**Folder** {md_code(folder)}", help=md_escape(s.folder))
        # people read the description ("CLIP ViT-B-32 (openai)"); the id (with its content hashes) is in the help
        bundled = s.emb.model_id.startswith("bundled")
        model = "bundled offline model" if bundled else (s.emb.model_description or s.emb.model_id)
        st.markdown(
            f"**Model** {md_escape(model)}", help=md_escape(f"{s.emb.model_description} · {s.emb.model_id}")
        )
        line = f"**{s.n_images:,}** images"
        if s.has_clusters:
            line += f" · **{s.n_clusters}** clusters"
        st.markdown(line)
        if s.edit_log:
            st.caption(f"{len(s.edit_log)} hand edit(s) — kept in the export")
        if s.emb.fallback_note:
            st.warning(md_escape(s.emb.fallback_note), icon=":material/warning:")
    else:
        st.caption("No folder loaded.")

try:
    page.run()
finally:
    # Once a page is drawn (also one that stopped early): clustering's slow imports in a background thread.
    # Not sooner: on 2 cores they held the interpreter while a 70k folder was scanned (3.9 s instead of 1.7 s).
    cached.start_background_imports()
    cached.note_activity()

# the clusters are on screen: the model's weights load in the background, ready for a first search
if s.has_clusters:
    cached.start_model_warm_up(s.emb.encoder)
