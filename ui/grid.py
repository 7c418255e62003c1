"""The thumbnail grid as one Streamlit component (v2) per grid: a CSS grid of ``<img>`` with ``data:`` URLs.

Why: a grid of ``st.image`` in ``st.columns`` costs the browser one HTTP request per thumbnail (Streamlit's
media endpoint) and one React subtree per cell, widget and button; on a page of 12 cards × 8 images that
took ~2 s after the script had finished. Here each grid is one element; its thumbnails (the cached JPEGs
of :func:`vlexplore.thumbnail`, never full-size files) travel inside its data as ``data:`` URLs and the
page has them when the script ends.

The frontend is the plain ES module ``ui/grid_frontend/grid.js`` (no build step). Out of it come two
triggers: ``similar`` (the index whose "Similar" was clicked; the script body acts on it, since
``st.switch_page`` cannot run in a callback) and ``toggle`` (the index whose checkbox was ticked; a
callback flips it in the selection before the script runs).

:func:`ui.widgets.thumbnail_grid` uses this when :func:`use_component` says so, else the native grid.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import streamlit as st

from ui import components

FRONTEND = Path(__file__).resolve().parent / "grid_frontend" / "grid.js"
NAME = "vlexplore.grid"
NATIVE_KEY = "grid-native"  # session state: True draws the native Streamlit grid (AppTest runs no JS)
MAX_THUMB_BYTES = 512 * 1024  # a cached thumbnail is ~10 kB; anything larger is not a thumbnail


def thumb_data_url(path: str | Path) -> str:
    """A cached JPEG thumbnail as a ``data:image/jpeg;base64,…`` URL (refused when it is not a small JPEG)."""
    p = Path(path)
    if p.suffix.lower() not in (".jpg", ".jpeg"):
        raise ValueError(f"{p.name} is not a cached JPEG thumbnail")
    data = p.read_bytes()
    if len(data) > MAX_THUMB_BYTES:
        raise ValueError(f"{p.name} is too large for a thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def available() -> bool:
    """Whether the component can be used: the frontend file is there and Streamlit has components v2."""
    return components.available(FRONTEND)


def use_component() -> bool:
    """Whether grids are drawn by the component: :func:`available` and not switched off (:data:`NATIVE_KEY`)."""
    return available() and not st.session_state.get(NATIVE_KEY, False)


def _component() -> Callable:
    return components.component(NAME, FRONTEND)


def grid_items(
    indices: Sequence[int],
    thumbs: Mapping[int, object],
    relpaths: Mapping[int, str] | Callable[[int], str],
    *,
    captions: Mapping[int, str] | None = None,
    selected: set[int] | frozenset[int] = frozenset(),
    short: Callable[[str], str] = lambda relpath: relpath.rsplit("/", 1)[-1],
) -> list[dict]:
    """The component's items, in order: ``{i, src, caption, title, selected, error}``.

    ``thumbs`` maps an index to its cached thumbnail's path, or to the exception that stopped it; a path
    that is not a readable small JPEG gives an ``error`` too (``src`` is then empty).
    """
    relpath_of = relpaths if callable(relpaths) else relpaths.__getitem__
    items = []
    for i in indices:
        relpath = str(relpath_of(i))
        name = short(relpath)
        caption = captions.get(i, name) if captions is not None else name
        src, error = "", ""
        found = thumbs.get(i)
        try:
            if isinstance(found, Exception):
                raise found
            if found is None:
                raise ValueError("no thumbnail")
            src = thumb_data_url(found)
        except Exception as exc:  # an unreadable image: the cell says why, the page stays
            error = f"{name}: {exc}"
        items.append(
            {
                "i": int(i),
                "src": src,
                "caption": caption,
                "title": relpath,
                "selected": i in selected,
                "error": error,
            }
        )
    return items


def _on_toggle(key: str, toggle: Callable[[int], object], allowed: frozenset[int]) -> None:
    value = (st.session_state.get(key) or {}).get("toggle")
    if isinstance(value, dict):
        value = value.get("i")
    if isinstance(value, (int, float)) and int(value) in allowed:
        toggle(int(value))


def _noop() -> None:
    return None


def component_grid(
    items: list[dict],
    *,
    columns: int,
    key: str,
    selectable: bool = False,
    similar: bool = False,
    on_toggle: Callable[[int], object] | None = None,
) -> int | None:
    """Mount one grid of ``items`` (from :func:`grid_items`) in rows of ``columns``.

    A ticked checkbox calls ``on_toggle(index)`` (in a callback, before the script reruns).

    Returns:
        The index whose "Similar" button was clicked in the run this click caused, else ``None``.
    """
    allowed = frozenset(int(it["i"]) for it in items)
    ckey = f"vxgrid-{key}"
    result = _component()(
        key=ckey,
        data={
            "items": items,
            "columns": int(columns),
            "selectable": bool(selectable),
            "similar": bool(similar),
            "similarHelp": "More like this: search for the images most similar to this one",
        },
        height="content",
        on_toggle_change=(lambda: _on_toggle(ckey, on_toggle, allowed)) if on_toggle else _noop,
        on_similar_change=_noop,
    )
    value = getattr(result, "similar", None)
    if isinstance(value, dict):
        value = value.get("i")
    if isinstance(value, (int, float)) and int(value) in allowed:
        return int(value)
    return None
