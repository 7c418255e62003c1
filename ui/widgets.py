"""Reusable pieces of the pages: thumbnail grid, pager, selection actions, cluster chips.

Progress bars, error banners and flash messages are :mod:`ui.feedback`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import streamlit as st

import vlexplore as vx
from ui import actions, grid, search
from ui.feedback import md_escape
from ui.state import AppState
from vlexplore import edit, plots

THUMB_SIZE = 192
METHODS = {
    "kmeans": "k-means",
    "agglomerative": "agglomerative",
    "hdbscan": "HDBSCAN",
    "prototypes": "text prototypes",
}


def method_summary(state: AppState) -> str:
    """How the current clusters were made, in words: "k-means, k = 6 (suggested from the data)"."""
    cfg = state.clustered.config
    name = METHODS.get(cfg.method, cfg.method)
    if cfg.method in ("kmeans", "agglomerative"):
        k = len({int(c) for c in np.unique(state.clustered.labels)} - {-1})
        return f"{name}, k = {k}" + (" (suggested from the data)" if cfg.k is None else "")
    if cfg.method == "hdbscan":
        return f"{name}, smallest cluster {cfg.min_cluster_size or 'automatic'}"
    extra = f", threshold {cfg.threshold:.2f}" if cfg.threshold is not None else ""
    return f"{name} ({', '.join(state.clustered.prototypes)}{extra}" + (
        ", rest discovered)" if cfg.discover_rest else ")"
    )


def require_clusters(state: AppState) -> None:
    """Stop the page with a pointer to the Load page when nothing is loaded or clustered yet."""
    if not state.has_data:
        st.info("No folder loaded yet. Choose one on the **Load** page.", icon=":material/folder_open:")
        st.page_link("views/load.py", label="Go to Load", icon=":material/folder_open:")
        st.stop()
    if not state.has_clusters:
        st.info("The images are embedded but not clustered yet. Choose a method on the **Cluster** page.")
        st.page_link("views/cluster.py", label="Go to Cluster", icon=":material/tune:")
        st.stop()


def chip(colour: str, text: str, *, bold: bool = True) -> str:
    """HTML of a coloured dot followed by (escaped) ``text``, for ``st.markdown(..., unsafe_allow_html=True)``."""
    label = md_escape(text)
    if bold:
        label = f"<b>{label}</b>"
    return (
        f'<span style="display:inline-block;width:0.8em;height:0.8em;border-radius:50%;'
        f'background:{colour};margin-right:0.4em;vertical-align:baseline"></span>{label}'
    )


def cluster_colours(state: AppState) -> dict[int, str]:
    """Cluster id → colour, stable for this clustering."""
    return state.cached("colours", lambda: plots.cluster_colours(state.order()))


def thumbnail_path(state: AppState, index: int) -> Path:
    """The cached thumbnail of image ``index`` (made on first use); raises what stopped it."""
    found = thumbnail_paths(state, [index])[0]
    if isinstance(found, Exception):
        raise found
    return found


def thumbnail_paths(state: AppState, indices: Sequence[int]) -> list[Path | vx.VlexploreError]:
    """The cached thumbnails of images ``indices`` (the missing ones made at once), or what stopped each.

    Found paths are remembered in ``state.thumbs`` for this collection.
    """
    memo = state.thumbs
    todo = [int(i) for i in indices if int(i) not in memo]
    made = vx.thumbnails_at(state.emb.collection, todo, size=THUMB_SIZE, cache_dir=state.resolved_cache_dir)
    failed = {}
    for i, found in zip(todo, made):
        if isinstance(found, Path):
            memo[i] = found
        else:
            failed[i] = found
    return [memo.get(int(i)) or failed[int(i)] for i in indices]


def short_file_name(relpath: str, limit: int = 28) -> str:
    """The file name of ``relpath``, cut to ``limit`` characters with an ellipsis."""
    name = relpath.rsplit("/", 1)[-1]
    return name if len(name) <= limit else name[: limit - 1] + "…"


def thumbnail_grid(
    state: AppState,
    indices: Sequence[int] | np.ndarray,
    *,
    columns: int = 8,
    selectable: bool = False,
    key: str = "grid",
    captions: Mapping[int, str] | None = None,
    more_like_this: bool = False,
) -> None:
    """Thumbnails (cached JPEGs, never full-size images) of ``indices`` in rows of ``columns``.

    With ``selectable`` a checkbox under each image adds it to / removes it from ``state.selection``.
    ``captions`` (index → text) replace the file names under the images; ``more_like_this`` adds a
    button under each image that searches for similar ones and opens the Search page.

    One :mod:`ui.grid` component (thumbnails inlined as ``data:`` URLs) when it can be used, else the
    native Streamlit grid (``st.image`` in ``st.columns``).
    """
    indices = [int(i) for i in indices]
    if not indices:
        return
    relpaths = state.emb.collection.items["relpath"]
    selected = set(state.selection.tolist())
    thumbs = dict(zip(indices, thumbnail_paths(state, indices)))
    if grid.use_component():
        items = grid.grid_items(
            indices,
            thumbs,
            relpaths.iat.__getitem__,
            captions=captions,
            selected=selected,
            short=short_file_name,
        )
        clicked = grid.component_grid(
            items,
            columns=columns,
            key=key,
            selectable=selectable,
            similar=more_like_this,
            on_toggle=lambda i: _toggle(state, i),
        )
        if clicked is not None:
            _open_similar(state, clicked)
        return
    _native_grid(
        state, indices, thumbs, relpaths, selected, columns, selectable, key, captions, more_like_this
    )


def _open_similar(state: AppState, index: int) -> None:
    search.more_like_this(state, index)
    st.switch_page("views/search.py")


def _native_grid(
    state, indices, thumbs, relpaths, selected, columns, selectable, key, captions, more_like_this
):
    """The grid as Streamlit elements: ``st.image`` in ``st.columns``, a checkbox and a button per image."""
    for start in range(0, len(indices), columns):
        cols = st.columns(columns, gap="small")
        for col, i in zip(cols, indices[start : start + columns]):
            relpath = relpaths.iat[i]
            with col:
                caption = (
                    captions.get(i, short_file_name(relpath))
                    if captions is not None
                    else short_file_name(relpath)
                )
                try:
                    thumb = thumbs[i]
                    if isinstance(thumb, Exception):
                        raise thumb
                    st.image(str(thumb), caption=caption, width="stretch")
                except (vx.VlexploreError, OSError) as exc:
                    st.caption(
                        f":material/broken_image: {md_escape(short_file_name(relpath))}: {md_escape(exc)}"
                    )
                if selectable:
                    st.checkbox(
                        "select",
                        value=i in selected,
                        key=f"{key}-sel-{i}-{state.version}",
                        label_visibility="collapsed",
                        on_change=_toggle,
                        args=(state, i),
                    )
                if more_like_this and st.button(
                    "Similar",
                    key=f"{key}-more-{i}-{state.version}",
                    icon=":material/image_search:",
                    type="tertiary",
                    help="More like this: search for the images most similar to this one",
                ):
                    _open_similar(state, i)


def _toggle(state: AppState, index: int) -> None:
    sel = set(state.selection.tolist())
    sel.symmetric_difference_update({index})
    state.set_selection(sel)


def pager(n_items: int, page_size: int, *, key: str) -> int:
    """``st.pagination`` over ``n_items`` in pages of ``page_size`` (nothing drawn for one page); 1-based page."""
    n_pages = edit.pages(n_items, page_size)
    if n_pages == 1:
        return 1
    return int(st.pagination(n_pages, key=f"{key}-{n_pages}", max_visible_pages=7))


def selection_actions(state: AppState, *, where: str) -> None:
    """What can be done with the selected images: clear, move to a cluster, make a new cluster."""
    n_sel = len(state.selection)
    if n_sel == 0:
        return
    with st.container(border=True):
        st.markdown(f"**{n_sel:,} image{'s' if n_sel != 1 else ''} selected**")
        c1, c2, c3 = st.columns([3, 3, 1], vertical_alignment="bottom")
        new_name = c1.text_input(
            "Name them as a new cluster",
            key=f"{where}-newname-{state.version}",
            placeholder="e.g. sandals on grass",
        )
        c1.button(
            "Create cluster",
            key=f"{where}-create",
            type="primary",
            disabled=not new_name.strip(),
            on_click=actions.new_cluster_from_selection,
            args=(state, new_name),
        )
        order = state.order()
        target = c2.selectbox(
            "…or move them to",
            order,
            format_func=state.name,
            key=f"{where}-target-{state.version}",
        )
        c2.button("Move", key=f"{where}-move", on_click=actions.move_selection, args=(state, target))
        c3.button("Clear selection", key=f"{where}-clear", on_click=state.set_selection, args=([],))
