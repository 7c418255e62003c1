"""The Sessions section of the Load page.

The open session (undo, export, import) and the saved ones (reopen, delete). Drawing only; the work is
:mod:`ui.sessions`' and :mod:`ui.actions`'.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import actions
from ui import sessions as saved
from ui.feedback import md_code, md_escape
from ui.state import AppState
from vlexplore import paths
from vlexplore.errors import VlexploreError


def undo_button(state: AppState, *, key: str) -> None:
    """“Undo last edit”, naming the edit it undoes (disabled when there is none)."""
    edits = [] if state.session is None else state.session.edits
    st.button(
        "Undo last edit",
        key=key,
        icon=":material/undo:",
        disabled=not edits,
        help=md_escape(f"Undo: {edits[-1].get('log', '')}")
        if edits
        else "No edit since the last clustering.",
        on_click=saved.undo,
        args=(state,),
    )


def _when(utc: str) -> str:
    return utc.replace("T", " ").replace("+00:00", " UTC")


def open_session(state: AppState) -> None:
    """What is saved of the work open now, with undo, export and import."""
    sess = state.session
    if sess is None:
        if state.has_clusters:
            st.caption("Your edits are not being saved to disk; they last as long as this tab.")
        return
    n = len(sess.edits)
    st.markdown(
        f"Your work on {md_code(Path(sess.folder).name or sess.folder)} is saved as you go: "
        f"**{n}** edit{'s' if n != 1 else ''} since the clustering, last saved {md_escape(_when(sess.updated_utc))}."
    )
    c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    with c1:
        undo_button(state, key="session-undo")
    c2.download_button(
        "Export session",
        data=saved.export_bytes(state),
        file_name=f"{Path(sess.folder).name or 'session'}.vlexplore-session.json",
        mime="application/json",
        icon=":material/download:",
        key="session-export",
    )
    with c3, st.form("session-import", border=False, clear_on_submit=True):
        upload = st.file_uploader(
            "Import a session file (made on these images)", type=["json"], key="session-upload"
        )
        if st.form_submit_button("Import", icon=":material/upload:") and upload is not None:
            actions.import_session(state, upload.getvalue())
            st.rerun()


def saved_list(state: AppState, allowed: list[Path]) -> tuple[Path, str] | None:
    """The saved sessions with reopen and delete; returns ``(folder, model)`` when one is to be reopened."""
    infos = saved.saved_sessions(state)
    if not infos:
        st.caption("No saved sessions yet: they are made as you cluster and edit.")
        return None
    chosen = None
    for info in infos:
        row = st.container(border=True)
        text, reopen, delete = row.columns([6, 1, 1], vertical_alignment="center")
        if info.problem:
            text.markdown(f"{md_code(info.id)} — damaged: {md_escape(info.problem)}")
            delete.button(
                "Delete", key=f"session-del-{info.id}", on_click=saved.delete, args=(state, info.id)
            )
            continue
        current = state.session is not None and state.session.id == info.id
        try:
            folder: Path | None = paths.check_folder(info.folder, allowed)
        except VlexploreError:
            folder = None
        model = "bundled offline model" if info.model_name == "bundled" else info.model_name
        text.markdown(
            f"{md_code(info.folder)} · {md_escape(model)} · {info.images:,} images · {md_escape(info.method)} · "
            f"**{info.edits}** edit{'s' if info.edits != 1 else ''} · {md_escape(_when(info.updated_utc))}"
            + (" · **open now**" if current else "")
            + ("" if folder is not None else " · outside the allowed roots")
        )
        clicked = reopen.button("Reopen", key=f"session-open-{info.id}", disabled=current or folder is None)
        if clicked and folder is not None:
            chosen = (folder, info.model_name)
        delete.button(
            "Delete",
            key=f"session-del-{info.id}",
            disabled=current,
            help="The open session cannot be deleted." if current else None,
            on_click=saved.delete,
            args=(state, info.id),
        )
    return chosen
