"""Saved work in the app: the thin layer between :class:`ui.state.AppState` and :mod:`vlexplore.sessions`.

Every clustering starts a session on disk (or takes up the saved one of the same folder and model),
and every hand edit is written to it as it happens (:func:`record`, called by :mod:`ui.actions`).
Failing to write is said once per edit as a warning; the edit itself still applies. This module
does not import :mod:`ui.actions` (which imports it); the Sessions section is :mod:`ui.session_panel`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from ui.feedback import md_escape
from ui.state import AppState
from vlexplore import sessions
from vlexplore.config import ClusterConfig
from vlexplore.errors import VlexploreError
from vlexplore.session_log import SessionError, config_dict


def _cache(state: AppState):
    return state.resolved_cache_dir


def find(state: AppState):
    """The saved session of the loaded folder and model when it fits these images.

    Else ``None`` (with a one-line flash saying why it is not reopened).
    """
    if state.emb is None or state.folder is None:
        return None
    try:
        saved = sessions.open_session(state.folder, state.emb.model_id, cache_dir=_cache(state))
    except SessionError as exc:
        state.say(
            "warning", f"Your saved work on this folder cannot be reopened: {exc}. It is kept as it was."
        )
        return None
    except OSError as exc:
        state.say("warning", f"Saved sessions cannot be read: {exc}.")
        return None
    if saved is None:
        return None
    if not saved.matches(state.emb.collection):
        state.say(
            "warning",
            f"Your saved work on this folder was made on other images ({saved.images:,} then, {state.n_images:,} "
            "now, or files changed); it is kept as an export, and this clustering starts afresh.",
        )
        return None
    return saved


def after_clustering(state: AppState, saved=None) -> None:
    """After ``state.set_clustered``.

    Take up ``saved`` (its labels, names and edit log), or start a new session on the fresh clustering.
    """
    if saved is not None:
        _take_state(state, saved)
        state.session = saved
        if saved.note:
            state.say("warning", f"Part of your saved work could not be read: {saved.note}.")
        # nothing to say of a default clustering without edits (configs compared as saved: tuples are lists there)
        if saved.edits or config_dict(saved.config) != config_dict(ClusterConfig()):
            edits = f"{len(saved.edits)} edit{'s' if len(saved.edits) != 1 else ''}"
            when = saved.updated_utc.replace("T", " ").replace("+00:00", " UTC")
            state.say("info", f"Reopened your saved work on this folder ({edits}, last saved {when}).")
        return
    state.session = None
    if state.emb is None or state.labels is None or state.clustered is None:
        return
    try:
        state.session = sessions.start_session(
            state.emb.collection,
            state.emb.model_id,
            state.clustered.config,
            state.labels,
            state.names,
            model_name=state.model,
            cache_dir=_cache(state),
        )
    except (OSError, VlexploreError) as exc:
        state.say("warning", f"Your edits cannot be saved to disk ({exc}); they last as long as this tab.")


def record(state: AppState, kind: str, log: str, **args: Any) -> None:
    """Write the edit just applied to ``state`` to its session (``args`` as in :mod:`vlexplore.session_log`)."""
    if state.session is None:
        return
    try:
        state.session.record(kind, log, **args)
    except (OSError, VlexploreError) as exc:
        state.say("warning", f"This edit could not be saved to disk: {exc}.")
        return
    if not np.array_equal(state.session.labels, state.labels) or state.session.names != state.names:
        _take_state(state, state.session)  # another tab edited this session meanwhile: its edits stay too


def undo(state: AppState) -> None:
    """Callback: undo the last hand edit (on disk too)."""
    saved = state.session
    if saved is None or not saved.edits:
        state.say("error", "There is no edit to undo since the last clustering.")
        return
    try:
        undone = saved.undo()
    except OSError as exc:
        state.say("error", f"Could not undo: the session cannot be written ({exc}).")
        return
    _take_state(state, saved)
    state.set_selection([])
    state.say("success", f"Undone: {undone}.")


def _take_state(state: AppState, saved) -> None:
    """The session's labels, names and edit log become the app's."""
    state.labels = np.asarray(saved.labels, dtype=np.int64).copy()
    state.names = dict(saved.names)
    state.edit_log = [str(e.get("log", e.get("kind"))) for e in saved.edits]
    state.memo = {}
    state.version += 1


def saved_sessions(state: AppState) -> list[sessions.SessionInfo]:
    """The saved sessions, most recent first (an unreadable store gives an empty list and a flash)."""
    try:
        return sessions.list_sessions(cache_dir=_cache(state))
    except OSError as exc:
        state.say("error", f"Saved sessions cannot be listed: {exc}.")
        return []


def delete(state: AppState, sid: str) -> None:
    """Callback: delete a saved session (not the open one)."""
    if state.session is not None and state.session.id == sid:
        state.say("error", "That is the session open now; load another folder first.")
        return
    try:
        gone = sessions.delete_session(sid, cache_dir=_cache(state))
    except (OSError, VlexploreError) as exc:
        state.say("error", f"Could not delete the session: {exc}.")
        return
    state.say(
        "success" if gone else "error", "Session deleted." if gone else "That session was already gone."
    )


def export_bytes(state: AppState) -> bytes:
    """The open session as one JSON file (empty when there is none)."""
    return b"" if state.session is None else sessions.export_session(state.session)


def read_import(state: AppState, data: bytes):
    """The session in an uploaded file.

    Filed under the loaded folder and model, or ``None`` with an error shown (the saved sessions are left as
    they were).
    """
    if state.emb is None:
        st.error("Load a folder first; a session file opens on the images it was made on.")
        return None
    try:
        return sessions.import_session(
            data, collection=state.emb.collection, model_id=state.emb.model_id, cache_dir=_cache(state)
        )
    except (SessionError, OSError) as exc:
        st.error(md_escape(f"Could not import the session: {exc}"), icon=":material/warning:")
        return None
