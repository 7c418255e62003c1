"""The Map page's WebGL scatter plot: a Streamlit custom component (v2) over regl-scatterplot.

Every point is drawn (no sampling): the points go to the browser as one binary payload
(:func:`vlexplore.mapdata.encode`: float32 x, y, uint16 cluster code, uint32 selection), sent once
per map version; later reruns send the selection only, while the browser says (state ``have``) it
still holds those points.

Hover shows the point's thumbnail beside the cursor. Thumbnails are the cached JPEGs of
:func:`vlexplore.thumbnail` (never the full-size file), sent as ``data:`` URLs through a second,
tiny component mounted in an ``st.fragment``: the browser asks for a few indices (trigger
``want``), a callback reads those thumbnails from the cache and the fragment (only it) reruns with
them. Nothing is served from disk by URL, so this works with ``enableStaticServing = false`` and
only files the caller's ``thumb`` function returns are ever read.

Where frames are slow (WebGL on the CPU: a million points take a second or more per frame, and the page
waits for each), the frame that highlights a new lasso or box selection is held until the app has rerun
and the page (the grid of the selected images) has settled, so the grid does not wait for the map.

The bundle ``ui/scatter_frontend/dist/scatter.js`` is committed (users need no node);
``npm ci && npm run build`` in ``ui/scatter_frontend`` rebuilds it from ``src/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from ui import components
from ui.grid import thumb_data_url
from vlexplore import mapdata

BUNDLE = Path(__file__).resolve().parent / "scatter_frontend" / "dist" / "scatter.js"
NAME = "vlexplore.scatter"
THUMBS_NAME = "vlexplore.scatter_thumbs"
MAX_THUMBS_PER_ASK = 6


def available() -> bool:
    """Whether the component can be used: the bundle is there and Streamlit has components v2."""
    return components.available(BUNDLE)


def _component(name: str) -> Callable:
    return components.component(name, BUNDLE)


@dataclass
class MapEvent:
    """What the user did on the map in the run that caused this rerun.

    Attributes:
        selection: indices of a new lasso/box selection (empty when cleared), ``None`` when unchanged.
        clicked: the index of the point clicked last (kept until another click), ``None`` before any.
    """

    selection: np.ndarray | None
    clicked: int | None


def _noop() -> None:
    return None


def _k(key: str, what: str) -> str:
    return f"_vx_scatter:{key}:{what}"


def _on_selection(key: str, n: int, on_select: Callable[[np.ndarray], object] | None) -> None:
    value = st.session_state[key].get("selection")
    if value is None:
        return
    indices = mapdata.decode_indices(value, n)
    st.session_state[_k(key, "selection")] = indices
    if on_select is not None:
        on_select(indices)


def _on_click(key: str, n: int, on_click: Callable[[int], object] | None) -> None:
    value = st.session_state[key].get("click")
    if isinstance(value, (int, float)) and 0 <= int(value) < n:
        st.session_state[_k(key, "clicked")] = int(value)
        if on_click is not None:
            on_click(int(value))


def _on_have(key: str) -> None:
    st.session_state[_k(key, "have")] = st.session_state[key].get("have")


def _on_want(
    key: str, n: int, thumb: Callable[[int], str | Path], caption: Callable[[int], str] | None
) -> None:
    want = st.session_state[key].get("want") or []
    out: dict[str, dict] = {}
    for v in list(want)[-MAX_THUMBS_PER_ASK:]:
        if not isinstance(v, (int, float)) or not 0 <= int(v) < n:
            continue
        i = int(v)
        try:
            src = thumb_data_url(thumb(i))
        except Exception:  # an unreadable image: say so in the tooltip rather than fail the page
            src = ""
        out[str(i)] = {"src": src, "caption": caption(i) if caption is not None else ""}
    st.session_state[_k(key, "answer")] = out


def _thumb_channel(key: str, channel: str, n: int, thumb, caption) -> None:
    answer = st.session_state.get(_k(key, "answer"), {})
    _component(THUMBS_NAME)(
        key=key,
        data={"channel": channel, "thumbs": answer},
        height="content",
        on_want_change=lambda: _on_want(key, n, thumb, caption),
    )


_thumb_fragment = st.fragment(_thumb_channel)


def scatter_map(
    points: mapdata.MapPoints,
    *,
    selection: Sequence[int] | np.ndarray = (),
    thumb: Callable[[int], str | Path],
    caption: Callable[[int], str] | None = None,
    on_select: Callable[[np.ndarray], object] | None = None,
    on_click: Callable[[int], object] | None = None,
    height: int = 640,
    mode: str = "lasso",
    key: str = "map",
) -> MapEvent:
    """Draw ``points`` (from :func:`vlexplore.mapdata.map_points`) with WebGL; lasso, box, click, hover.

    Args:
        points: the layout, colours and names to draw.
        selection: the indices shown selected (e.g. the app's current selection).
        thumb: index → path of its cached thumbnail JPEG (called on hover, a few at a time).
        caption: index → a short text shown under the hover thumbnail (e.g. the file name).
        on_select: called (before the rerun's script) with a new selection.
        on_click: called (before the rerun's script) with a clicked index.
        height: the map's height in pixels.
        mode: the initial drag mode, ``"lasso"``, ``"rectangle"`` (box) or ``"pan"``.
        key: the component's key; change it to start a fresh map.

    Returns:
        A :class:`MapEvent`: the new selection of this rerun, if any, and the last clicked point.
    """
    n = points.n
    have = st.session_state.get(_k(key, "have"))
    payload = mapdata.encode(
        points,
        selection,
        with_points=have != points.version,
        extra={"height": height, "channel": key, "mode": mode},
    )
    _component(NAME)(
        key=key,
        data=payload,
        height=height + 44,
        on_selection_change=lambda: _on_selection(key, n, on_select),
        on_click_change=lambda: _on_click(key, n, on_click),
        on_have_change=lambda: _on_have(key),
    )
    _thumb_fragment(f"{key}-thumbs", key, n, thumb, caption)
    new_selection = st.session_state.pop(_k(key, "selection"), None)
    return MapEvent(new_selection, st.session_state.get(_k(key, "clicked")))


# ---------------------------------------------------------------- the Map page's use of it


def use_webgl() -> bool:
    """Whether the Map page draws this map.

    The bundle is there and the page's toggle is on (the default; off brings back the plotly map, which
    bench/map_webgl.py measures slower at every size it draws).
    """
    if not available():
        return False
    return st.toggle(
        "WebGL map: every point, thumbnails on hover",
        value=True,
        key="map-use-webgl",
        help="Every point drawn with WebGL (no sampling), the image beside the cursor on hover, click to open, "
        "lasso or box selection. Off: the plotly map (a random sample above 200,000 points, text on hover).",
    )


def map_section(state) -> None:
    """The Map page's map.

    Every point of ``state``'s layout coloured by cluster; a lasso or box selection becomes
    ``state.selection`` (the grid below shows it), a click shows that image under the map.
    """
    from ui.widgets import cluster_colours, thumbnail_path

    def build() -> mapdata.MapPoints:
        order = state.order()
        names = {c: state.name(c) for c in order}
        return mapdata.map_points(state.clustered.coords, state.labels, cluster_colours(state), names, order)

    points = state.cached("map-webgl", build)
    relpaths = state.emb.collection.items["relpath"]
    st.caption(
        "Each dot is an image; similar images lie close together. Hover a dot to see it, click it to open it; "
        "drag to lasso-select (or pick Box), scroll to zoom, Pan to move; double-click or Esc clears the selection."
    )
    event = scatter_map(
        points,
        selection=state.selection,
        thumb=lambda i: thumbnail_path(state, i),
        caption=lambda i: str(relpaths.iat[i]).rsplit("/", 1)[-1],
        on_select=state.set_selection,
        key="map-webgl",
    )
    clicked = event.clicked
    if clicked is not None and 0 <= clicked < points.n:
        left, right = st.columns([1, 3], gap="small")
        with left:
            try:
                st.image(str(thumbnail_path(state, clicked)), width="stretch")
            except Exception as exc:  # an unreadable file: say so, keep the page
                st.caption(f"cannot show this image: {exc}")
        with right:
            cid = int(state.labels[clicked])
            st.markdown(f"**{_md(relpaths.iat[clicked])}**  \ncluster: {_md(state.name(cid))}")
            captions = getattr(state.emb, "captions", None)
            if captions is not None and clicked < len(captions) and captions[clicked]:
                st.caption(_md(captions[clicked]))


def _md(text: object) -> str:
    from ui.feedback import md_escape

    return md_escape(text)
