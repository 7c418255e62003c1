"""What the app tells the user while and after it works.

Progress bars, error banners, flash messages, and user text made safe to show in them (:func:`md_escape`,
:func:`md_code`).

Imported by :mod:`ui.actions` (which reports progress and errors) and :mod:`ui.widgets` (which draws
the rest of the pages); it imports neither, so the two never import each other back.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from tqdm import tqdm

import vlexplore as vx
from ui.state import AppState

# Markdown (CommonMark + GFM + Streamlit's LaTeX) punctuation that can start markup anywhere in a line.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~$!])")
# ... and what only means something at the start of a line: a list item, a thematic break, a heading.
_MD_LINE_START = re.compile(r"^(\s*)(?:([-+=])|(\d+)([.)]))")


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
        show = {"error": st.error, "warning": st.warning, "info": st.info}.get(kind, st.success)
        show(md_escape(text))


class ProgressBar:
    """An ``on_progress(done, total)`` callback drawing ``st.progress`` with images/s and time left.

    The rate and the time left are tqdm's (:meth:`tqdm.format_meter`), measured from the first call.
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

    def text(self, done: int, total: int, now: float) -> str:
        """The bar's line: done/total, and rate and time left once they are meaningful."""
        elapsed = now - (self._t0 or now)
        if elapsed > 0.5 and done > self._d0:
            unit = self.unit.replace("{", "{{").replace("}", "}}")
            rate = tqdm.format_meter(
                done,
                total,
                elapsed,
                initial=self._d0,
                bar_format=f"{{rate:,.0f}} {unit}/s · {{remaining}} left",
            )
        else:
            rate = "starting…"
        return f"{md_escape(self.what)}: {done:,} / {total:,} {self.unit} · {rate}"

    def __call__(self, done: int, total: int) -> None:
        """Report ``done`` of ``total``; redraws at most every ``min_interval`` seconds."""
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
        """Remove the bar."""
        self.bar.empty()
