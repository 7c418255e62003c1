"""Reusable pieces of the pages: error banner, progress bar, thumbnail grid, cluster chips."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import streamlit as st

import vlexplore as vx
from ui import edits, figures
from ui.state import AppState

THUMB_SIZE = 192
# Markdown (CommonMark + GFM + Streamlit's LaTeX) punctuation that can start markup anywhere in a line.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~$!])")
# ... and what only means something at the start of a line: a list item, a thematic break, a heading.
_MD_LINE_START = re.compile(r"^(\s*)(?:([-+=])|(\d+)([.)]))")
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


def md_escape(text: object) -> str:
    """``text`` as Markdown that renders as exactly that text: no image, link, emphasis, heading or HTML.

    For every user-controlled string (folder and file names, captions, cluster names, prompts, error
    messages) passed to ``st.markdown``, ``st.caption``, ``st.error``… or a widget's label or ``help``.
    Markdown punctuation gets a backslash, ``& < >`` become entities (also safe inside
    ``unsafe_allow_html`` markup), and line breaks become spaces (one line stays one line).
    """
    value = " ".join(str(text).replace("\x00", "").splitlines())
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _MD_SPECIAL.sub(r"\\\1", value)
    return _MD_LINE_START.sub(
        lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"), value
    )


def md_code(text: object) -> str:
    """``text`` as an inline code span (nothing inside is Markdown), fenced with more backticks than it holds."""
    value = " ".join(str(text).replace("\x00", "").splitlines())
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"


@contextmanager
def error_banner(what: str | None = None) -> Iterator[None]:
    """Show a :class:`vlexplore.VlexploreError` as ``st.error`` and stop the page — never a traceback."""
    try:
        yield
    except vx.VlexploreError as exc:
        message = md_escape(f"{what}: {exc}" if what else str(exc))
        st.error(message, icon=":material/warning:")
        st.stop()


def show_flash(state: AppState) -> None:
    """Messages left by callbacks (edits run before the page renders)."""
    while state.flash:
        kind, text = state.flash.pop(0)
        (st.error if kind == "error" else st.success)(md_escape(text))


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


def _eta(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "estimating time left"
    if seconds < 60:
        return f"{seconds:.0f} s left"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min left"
    return f"{seconds / 3600:.1f} h left"


class ProgressBar:
    """An ``on_progress(done, total)`` callback drawing ``st.progress`` with images/s and time left.

    Updates are throttled (the library may call it once per image); it may be called from a
    worker thread: the script's context is attached to that thread so the bar still updates.
    """

    def __init__(
        self, what: str, *, unit: str = "images", min_interval: float = 0.25, container=None
    ) -> None:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        self.what, self.unit, self.min_interval = what, unit, min_interval
        self.bar = (container or st).progress(0.0, text=f"{md_escape(what)}…")
        self._ctx = get_script_run_ctx()
        self._t0: float | None = None
        self._d0 = 0
        self._last = 0.0
        self.rate = 0.0

    def text(self, done: int, total: int, now: float) -> str:
        elapsed = now - (self._t0 or now)
        self.rate = (done - self._d0) / elapsed if elapsed > 0 else 0.0
        left = (total - done) / self.rate if self.rate > 0 else None
        rate = (
            f"{self.rate:,.0f} {self.unit}/s · {_eta(left)}"
            if elapsed > 0.5 and done > self._d0
            else "starting…"
        )
        return f"{md_escape(self.what)}: {done:,} / {total:,} {self.unit} · {rate}"

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._d0 = now, done
        if done < total and now - self._last < self.min_interval:
            return
        self._last = now
        if self._ctx is not None:
            from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

            if get_script_run_ctx() is None:
                add_script_run_ctx(threading.current_thread(), self._ctx)
        frac = min(1.0, done / total) if total else 1.0
        self.bar.progress(frac, text=self.text(done, total, now))

    def clear(self) -> None:
        self.bar.empty()


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
    return state.cached("colours", lambda: figures.cluster_colours(state.order()))


def thumbnail_path(state: AppState, index: int) -> Path:
    """The cached thumbnail of image ``index`` (made on first use by :func:`vlexplore.thumbnail`).

    The library looks an item up by relpath with a scan of the whole table; with a million images
    that is slow for a page of thumbnails, so it gets a one-row view of the collection instead.
    """
    paths = state.thumbs
    if index in paths:
        return paths[index]
    col = state.emb.collection
    row = col.items.iloc[[int(index)]]
    one = dataclasses.replace(col, items=row)
    path = Path(vx.thumbnail(one, row["relpath"].iat[0], size=THUMB_SIZE, cache_dir=state.resolved_cache_dir))
    paths[index] = path
    return path


def _short(relpath: str, limit: int = 28) -> str:
    name = relpath.rsplit("/", 1)[-1]
    return name if len(name) <= limit else name[: limit - 1] + "…"


def thumbnail_grid(
    state: AppState,
    indices: Sequence[int] | np.ndarray,
    *,
    columns: int = 8,
    selectable: bool = False,
    key: str = "grid",
) -> None:
    """Thumbnails (cached JPEGs, never full-size images) of ``indices`` in rows of ``columns``.

    With ``selectable`` a checkbox under each image adds it to / removes it from ``state.selection``.
    """
    indices = [int(i) for i in indices]
    if not indices:
        return
    relpaths = state.emb.collection.items["relpath"]
    selected = set(state.selection.tolist())
    for start in range(0, len(indices), columns):
        cols = st.columns(columns, gap="small")
        for col, i in zip(cols, indices[start : start + columns]):
            relpath = relpaths.iat[i]
            with col:
                try:
                    st.image(str(thumbnail_path(state, i)), caption=_short(relpath), width="stretch")
                except (vx.VlexploreError, OSError) as exc:
                    st.caption(f":material/broken_image: {md_escape(_short(relpath))}: {md_escape(exc)}")
                if selectable:
                    st.checkbox(
                        "select",
                        value=i in selected,
                        key=f"{key}-sel-{i}-{state.version}",
                        label_visibility="collapsed",
                        on_change=_toggle,
                        args=(state, i),
                    )


def _toggle(state: AppState, index: int) -> None:
    sel = set(state.selection.tolist())
    sel.symmetric_difference_update({index})
    state.set_selection(sel)


def pager(n_items: int, page_size: int, *, key: str) -> int:
    """``st.pagination`` over ``n_items`` in pages of ``page_size`` (nothing drawn for one page); 1-based page."""
    n_pages = edits.pages(n_items, page_size)
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
            on_click=actions_new_cluster,
            args=(state, new_name),
        )
        order = state.order()
        target = c2.selectbox(
            "…or move them to",
            order,
            format_func=state.name,
            key=f"{where}-target-{state.version}",
        )
        c2.button("Move", key=f"{where}-move", on_click=actions_move, args=(state, target))
        c3.button("Clear selection", key=f"{where}-clear", on_click=state.set_selection, args=([],))


def actions_new_cluster(state: AppState, name: str) -> None:
    from ui import actions

    actions.new_cluster_from_selection(state, name)


def actions_move(state: AppState, target: int) -> None:
    from ui import actions

    actions.move_selection(state, target)
