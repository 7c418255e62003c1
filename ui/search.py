"""Search in the app: a text, an uploaded image or "more like this" → a ranked list of images.

Each function is one user intent and one facade call (:func:`vlexplore.search_images`); the hits are
kept in the session (``st.session_state[KEY]``) beside, not inside, :class:`ui.state.AppState`, and are
dropped when another folder is loaded. A bad query (empty text, an unreadable image) leaves the last
results where they are and records one sentence for the Search page to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

import vlexplore as vx
from ui import actions
from ui.state import AppState

KEY = "vx_search"
#: Hits per search (the Search page lets the user pick another number).
DEFAULT_TOP = 24
TOP_CHOICES = (12, 24, 48, 96)


@dataclass
class SearchHits:
    """The last search of this session.

    Attributes:
        query: what was asked, in words (“text: a red car”, “image: cat.jpg”, “more like …”).
        indices: ``int64 (k,)`` rows of the collection, best first; scores: ``float64 (k,)`` cosine.
        error: a sentence about the last query that could not be run (the hits are the previous ones).
        emb: the embeddings searched (results of another folder are never shown).
    """

    query: str = ""
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    error: str | None = None
    emb: object = field(default=None, repr=False)


def hits(state: AppState) -> SearchHits:
    """This session's search results for the loaded folder (empty when none, or another folder's)."""
    current = st.session_state.get(KEY)
    if not isinstance(current, SearchHits) or current.emb is not state.emb:
        current = SearchHits(emb=state.emb)
        st.session_state[KEY] = current
    return current


def rows_of(state: AppState, relpaths) -> np.ndarray:
    """The collection rows of ``relpaths`` (-1 for one not in the collection; relpaths are unique)."""
    index = state.cached("relpath-index", lambda: pd.Index(state.emb.collection.items["relpath"]))
    return np.asarray(index.get_indexer(pd.Index(relpaths)), dtype=np.int64)


def _run(state: AppState, query: str, **kwargs) -> bool:
    """Run one search; on a bad query keep the previous hits and record the message. True when it ran."""
    current = hits(state)
    try:
        table = vx.search_images(state.emb, **kwargs)
    except vx.VlexploreError as exc:
        current.error = str(exc)
        return False
    rows = rows_of(state, table["path"])
    keep = rows >= 0
    current.query, current.error = query, None
    current.indices = rows[keep]
    current.scores = table["score"].to_numpy(dtype=np.float64)[keep]
    return True


def search_text(state: AppState, text: str, *, top: int = DEFAULT_TOP) -> bool:
    """Images nearest to ``text`` in the joint space."""
    return _run(state, f"text: {' '.join(str(text).split())}", text=str(text), top=int(top))


def search_image(state: AppState, data: bytes | None, name: str, *, top: int = DEFAULT_TOP) -> bool:
    """Images nearest to an uploaded image file (its bytes)."""
    if not data:
        hits(state).error = "no query image: upload a JPEG, PNG or WebP file first"
        return False
    return _run(state, f"image: {name}", image=bytes(data), top=int(top))


def more_like_this(state: AppState, index: int, *, top: int = DEFAULT_TOP) -> bool:
    """Images nearest to image ``index`` of the collection (itself left out)."""
    relpath = state.emb.collection.items["relpath"].iat[int(index)]
    return _run(state, f"more like: {relpath}", image=int(index), top=int(top))


def show_on_map(state: AppState) -> None:
    """Select the hits, so the map highlights them (and the grid under it shows them)."""
    state.set_selection(hits(state).indices)


def cluster_of_hits(state: AppState, name_key: str) -> None:
    """Callback: the hits become a new cluster called ``st.session_state[name_key]`` (the usual edit)."""
    current = hits(state)
    if not len(current.indices):
        state.say("error", "there are no search results to make a cluster of")
        return
    state.set_selection(current.indices)
    name = st.session_state.get(name_key) or ""
    actions.new_cluster_from_selection(state, name, source=f"search: {current.query}")
    if len(state.selection):  # the edit failed (its message is in the flash): do not leave a selection
        state.set_selection([])
