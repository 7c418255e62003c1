"""The app's only ``st.cache_*`` wrappers.

Loaded models, shared by every session, and the once-per-process background workers (imports, UMAP's compiled
kernels, map layouts).

Everything else that is expensive (embeddings, captions, map coordinates, thumbnails)
is cached on disk by the library, keyed by content, so it survives restarts.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import importlib
import os
import signal
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import streamlit as st

import vlexplore as vx


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def encoder(model: str, device: str, cache_dir: str | None):
    """The encoder ``model`` on ``device`` (weights loaded on first use), or the bundled one when it cannot be had.

    Returns:
        ``(encoder, fallback_note)`` — ``fallback_note`` is ``None`` or a sentence for the user.
        A failure is not cached: the next attempt tries again.
    """
    from vlexplore.pipeline import load_encoder_or_fallback

    cfg = vx.EncodeConfig(model=model, device=device, cache_dir=cache_dir)
    # lazy: a folder whose embeddings are all cached opens without torch, open_clip or the weights
    return load_encoder_or_fallback(cfg, lazy=True)


_warmed: weakref.WeakSet = weakref.WeakSet()
_warm_lock = threading.Lock()
#: The model warm-up waits until no page has run for this many seconds: importing torch and loading weights
#: hold the interpreter for seconds, which doubled what the user was waiting for when it overlapped it (on 2
#: cores, 70k images: the first thumbnails came 1.4-3 s late, and a re-cluster took 5.5-8.5 s instead of 3-4.5 s).
WARM_UP_DELAY_S = 5.0
_last_run = [time.monotonic()]


def note_activity() -> None:
    """A page started or finished running (app.py calls it at both ends): the model warm-up waits."""
    _last_run[0] = time.monotonic()


def start_model_warm_up(encoder) -> threading.Thread | None:
    """Once per encoder: load its weights in a background thread, once the app has been idle for a while.

    Call it once the clusters are on screen; :data:`WARM_UP_DELAY_S` after the last page ran it starts.

    The model then waits for no one at the first search or new image. A failure is said where the model is used.
    """
    warm_up = getattr(encoder, "warm_up", None)
    if not callable(warm_up) or os.environ.get("VLEXPLORE_WARM_MODEL", "1") == "0":
        return None
    with _warm_lock:
        if encoder in _warmed:
            return None
        _warmed.add(encoder)
    thread = threading.Thread(target=_later, args=(warm_up,), name="vx-model-warm-up", daemon=True)
    thread.start()
    return thread


#: The nice value background threads run at (Linux). On 2 cores a re-cluster of 70k images beside the model's
#: warm-up took 2.8-3.7 s with the warm-up at the same priority, 1.65-1.7 s with it at 19 (alone: 1.1-1.2 s); the
#: warm-up itself 5.8-6.8 s against 6.4-6.6 s. Threads they start inherit it; an idle machine runs them at full speed.
BACKGROUND_NICE = 19


def background_priority() -> bool:
    """Lower the calling thread's CPU priority to :data:`BACKGROUND_NICE`; ``True`` when it was lowered.

    Only on Linux, where each thread has its own nice value (elsewhere the same call would renice a process).
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(BACKGROUND_NICE, os.getpriority(os.PRIO_PROCESS, tid)))
    except OSError:
        return False
    return True


def _later(work) -> None:
    background_priority()
    while (quiet := time.monotonic() - _last_run[0]) < WARM_UP_DELAY_S:
        time.sleep(WARM_UP_DELAY_S - quiet)
    _quietly(work)
    freeze_long_lived()


def freeze_long_lived() -> None:
    """Take every object alive now out of the full garbage collection Streamlit runs after each page.

    Streamlit calls ``gc.collect(2)`` at the end of every page run (``runner.postScriptGC``). With torch,
    scikit-learn and a folder loaded, that walks about 570,000 objects, nearly all of them imported modules'
    functions, types and tables: 0.2 s of every click on 2 cores, twice per re-cluster (the run that clusters
    and the rerun that shows it). ``gc.freeze`` moves what survives a collection now into the permanent
    generation, which later collections skip; objects made after it are collected as before. Called after
    each background import or warm-up, which is when most long-lived objects appear.
    """
    gc.collect()
    gc.freeze()


def _quietly(work) -> None:
    with contextlib.suppress(Exception):  # the same error comes back, in one line, where the model is used
        work()


@st.cache_resource(show_spinner="Loading the captioner…", max_entries=2)
def captioner(name: str, device: str):
    """The captioner ``name`` (BLIP, BLIP-2, GIT, a hub id or a local directory) on ``device``.

    A failure is not cached (it raises): the next attempt tries again.
    """
    return vx.load_captioner(name, device=device)


# Slow imports that clustering, scoring and the plotly charts need (seconds on a small machine), made in a
# thread once the first page is drawn, so the next re-cluster does not wait for them. A clustering that
# comes sooner imports what it needs itself.
BACKGROUND_IMPORTS = (
    "sklearn.cluster",
    "sklearn.metrics",
    "sklearn.feature_extraction.text",
    "scipy.cluster.hierarchy",
    "plotly.graph_objects",
)


def _import_all(names: tuple[str, ...]) -> None:
    background_priority()
    for name in names:
        with contextlib.suppress(ImportError):  # the step that needs it will say so
            importlib.import_module(name)
    freeze_long_lived()


@st.cache_resource(show_spinner=False)
def start_background_imports() -> threading.Thread:
    """Once per server process: import scikit-learn and friends in a background thread (app.py: after a page)."""
    thread = threading.Thread(target=_import_all, args=(BACKGROUND_IMPORTS,), name="vx-imports", daemon=True)
    thread.start()
    return thread


def _warm_up_umap(cache_dir: str) -> None:
    background_priority()
    try:
        from vlexplore.project import warm_up_umap
    except ImportError:  # a library without it
        return
    with contextlib.suppress(OSError):  # only a head start: the map layout itself degrades and tells the user
        warm_up_umap(cache_dir)
    freeze_long_lived()


@st.cache_resource(show_spinner=False)
def start_umap_warm_up(cache_dir: str) -> threading.Thread:
    """Once per server process.

    Compile UMAP's numba kernels (or load them from the disk cache) in a background thread, so that the next
    new map is quick.
    """
    thread = threading.Thread(target=_warm_up_umap, args=(cache_dir,), name="vx-umap-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def map_executor() -> ThreadPoolExecutor:
    """One worker thread per server process that lays out maps (UMAP) while people look at clusters.

    It runs at :data:`BACKGROUND_NICE`: a page the user waits for goes first; alone it runs at full speed.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="vx-map", initializer=background_priority)


@st.cache_resource(show_spinner=False)
def thread_dumps_on_sigusr1() -> bool:
    """Once per server process: ``kill -USR1 <pid>`` prints every thread's stack to the server's stderr.

    For a page that seems stuck: the dump says which thread holds it up. ``False`` where there is no SIGUSR1.
    """
    if not hasattr(signal, "SIGUSR1"):
        return False
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    return True
