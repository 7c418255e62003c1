"""What the pages ask the library to do.

Each function is one user intent, one facade call (with a progress bar where it takes time), and the result
stored in :class:`ui.state.AppState`.

Edits (rename, merge, move, new cluster) are callbacks: they run before the page renders,
so everything on the page (and the sidebar) shows the edited clustering; their messages go
through ``state.flash``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import streamlit as st
from threadpoolctl import threadpool_limits

import vlexplore as vx
from ui import cached
from ui import sessions as saved
from ui.feedback import ProgressBar, error_banner
from ui.state import AppState
from vlexplore import edit
from vlexplore.pipeline import project_embedded

# Up to this many images, clustering runs BLAS/OpenMP on one thread: it takes well under a second
# either way, and on a small, busy machine (2 cores, other processes) the spinning worker threads
# made it 5-10x slower (bench/app_start.py: k-means + suggest_k on the demo, 0.2-0.3 s vs 1.6-3 s).
SINGLE_THREAD_MAX_N = 20_000


def load_folder(
    state: AppState, folder: Path, *, model: str = "bundled", device: str = "auto", captioner: str = ""
) -> None:
    """Scan → embed → cluster with the defaults (k-means, k suggested); stops the page on error.

    Captions too when a captioner is chosen; every step is disk-cached.
    """
    timings: dict[str, float] = {}
    cache_dir = state.resolved_cache_dir
    with error_banner("Could not load the folder"):
        t0 = time.perf_counter()
        bar = ProgressBar(f"Scanning {folder.name or folder}", unit="files")
        collection = vx.scan(folder, cache_dir=cache_dir, on_progress=bar)
        bar.clear()
        timings["scan"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        encoder, note = cached.encoder(model, device, str(cache_dir))
        cap = cached.captioner(captioner, device) if captioner else None
        cfg = vx.EncodeConfig(model=model, device=device, cache_dir=cache_dir)
        bar = ProgressBar("Embedding")
        cap_bar = ProgressBar("Captioning") if cap is not None else None
        emb = vx.embed(
            collection, cfg, encoder=encoder, captioner=cap, on_progress=bar, on_caption_progress=cap_bar
        )
        bar.clear()
        if cap_bar is not None:
            cap_bar.clear()
        if note:
            emb = dataclasses.replace(emb, fallback_note=note)
        timings["embed"] = time.perf_counter() - t0
    state.set_embedded(emb, folder=folder, model=model, device=device, captioner=captioner)
    state.timings = timings
    if emb.n == 0:
        return
    found = saved.find(state)  # the saved work on this folder with this model, when it fits these images
    cfg = found.config if found is not None else vx.ClusterConfig()
    # The clusters go on screen first; the map (UMAP: the slowest step on a cold cache) is laid
    # out in the background and waited for only by the pages that show it.
    state.map_job = cached.map_executor().submit(layout_map, emb, seed=cfg.seed, cache_dir=cache_dir)
    recluster(state, cfg, coords=no_map(emb.n), session=found)


def no_map(n: int) -> np.ndarray:
    """NaN map coordinates for ``n`` images: the placeholder while no layout exists (``AppState.map_ready``)."""
    return np.full((n, 2), np.nan, dtype=np.float32)


def recluster(state: AppState, cfg, *, coords: np.ndarray | None = None, session=None) -> None:
    """Cluster the stored embeddings again (no image goes through a model; the map is reused).

    The clustering starts a new saved session, or takes up ``session`` (a saved one made with ``cfg``).
    """
    if coords is None and state.clustered is not None:
        coords = state.clustered.coords
    t0 = time.perf_counter()
    with (
        error_banner("Could not cluster"),
        st.spinner("Clustering…" if coords is not None else "Clustering and laying out the map…"),
        threadpool_limits(limits=1 if state.n_images <= SINGLE_THREAD_MAX_N else None),
    ):
        try:
            clustered = vx.cluster_embedded(state.emb, cfg, coords=coords, cache_dir=state.resolved_cache_dir)
        except vx.VlexploreError as exc:
            if session is None:
                raise
            # The saved clustering cannot be made again here (its captioner or option is gone, say): the
            # defaults instead, and the saved work is kept as a file to import (sessions/replaced).
            state.say(
                "warning",
                f"Your saved work on this folder could not be reopened ({exc}); clustered with the defaults.",
            )
            cfg, session = vx.ClusterConfig(), None
            clustered = vx.cluster_embedded(state.emb, cfg, coords=coords, cache_dir=state.resolved_cache_dir)
    state.timings["cluster"] = time.perf_counter() - t0
    if cfg.method == "kmeans" and cfg.k is None and not cfg.prototypes:
        state.suggested_k = len(set(np.unique(clustered.labels).tolist()) - {-1})
    state.set_clustered(clustered)
    saved.after_clustering(state, session)


def layout_map(emb, *, seed: int, cache_dir: Path) -> tuple[np.ndarray, list[str]]:
    """The map coordinates of ``emb`` and the sentences about cache writes that failed.

    When the cache cannot be written the map is computed in memory. Runs in the map worker thread,
    so it collects instead of warning.
    """
    notes: list[str] = []
    coords = project_embedded(emb, seed=seed, cache_dir=cache_dir, on_cache_error=notes.append)
    return coords, notes


def ensure_map(state: AppState, *, quick: bool = False, wait_s: float = 0.5) -> bool:
    """Make sure the clustering has map coordinates: wait for the background layout, or make one.

    With ``quick`` (the Map page), a background UMAP layout that is still running is not waited for: a quick
    layout (:func:`vlexplore.quickmap.quick_layout`, seconds, nothing to compile) goes into
    ``state.clustered.coords`` at once, so the map drawn and a lasso on it use the same coordinates, and a later
    call takes up UMAP's layout when the job is done. ``wait_s``: how long a pending job is waited for before
    the quick layout is drawn (a layout read from the cache arrives in well under a second). Without ``quick``
    the UMAP layout is waited for (the Export page calls it only once the job is done: :func:`export_clustering`).

    A background layout that failed is dropped, so the next rerun lays the map out again (after
    space was freed, say) instead of showing the same error forever.

    Returns:
        Whether the coordinates are the quick layout (the UMAP layout is still being computed).
    """
    job = state.map_job
    if state.map_ready and job is None:
        return False
    if quick and job is not None and not job.done():
        if not state.map_ready:  # the NaN placeholder: nothing drawn yet
            from concurrent.futures import wait

            wait([job], timeout=wait_s)
        if not job.done():
            if not state.map_ready:
                from vlexplore.quickmap import quick_layout

                t0 = time.perf_counter()
                with error_banner("Could not draw a first map"), st.spinner("Drawing a first map…"):
                    x = state.emb.views.get("image")
                    coords = (
                        np.zeros((state.n_images, 2), np.float32)
                        if x is None
                        else quick_layout(x, seed=state.clustered.config.seed)
                    )
                state.clustered = dataclasses.replace(state.clustered, coords=coords)
                state.timings["quick_map"] = time.perf_counter() - t0
                state.memo = {}
                state.version += 1
            return True
    if job is not None and job.done() and (job.cancelled() or job.exception() is not None):
        # failed: the quick layout goes with it, so that the next rerun lays the map out again
        state.clustered = dataclasses.replace(state.clustered, coords=no_map(state.n_images))
    t0 = time.perf_counter()
    try:
        with (
            error_banner("Could not lay out the map"),
            st.spinner(
                "Laying out the map (UMAP)… the first time takes a while, later it is read from the cache"
            ),
        ):
            if job is not None:
                try:
                    coords, notes = job.result()
                finally:
                    if job.done():  # finished, failed or cancelled: never wait for it again
                        state.map_job = None
            else:
                coords, notes = layout_map(
                    state.emb, seed=state.clustered.config.seed, cache_dir=state.resolved_cache_dir
                )
    except OSError as exc:  # not a VlexploreError, so not error_banner's: still one line, no traceback
        st.error(f"Could not lay out the map: {exc}", icon=":material/warning:")
        st.stop()
        return False  # (st.stop() only raises inside a running app)
    state.map_job = None
    for note in dict.fromkeys(notes):
        st.warning(f"The cache cannot be written: {note}.", icon=":material/warning:")
    state.clustered = dataclasses.replace(state.clustered, coords=np.asarray(coords, dtype=np.float32))
    state.timings["map"] = time.perf_counter() - t0
    state.memo = {}
    state.version += 1
    return False


def export_clustering(state: AppState):
    """The clustering the Export page writes, and whether its map is still being laid out.

    The table never waits for UMAP: while the background layout runs (an hour for a million images on a
    small CPU), ``umap_x`` and ``umap_y`` are left empty (NaN), also when the Map page shows the quick first
    layout, which is not UMAP's. Otherwise the map is made sure of first (:func:`ensure_map`).
    """
    job = state.map_job
    if job is not None and not job.done():
        return dataclasses.replace(state.clustered, coords=no_map(state.n_images)), True
    ensure_map(state)
    return state.clustered, False


def suggested_k(state: AppState) -> int:
    """K suggested from the data (once per loaded folder; a large one's is remembered in the cache)."""
    if state.suggested_k is None:
        with error_banner("Could not suggest k"):
            state.suggested_k = vx.suggest_k_embedded(state.emb, seed=0, cache_dir=state.resolved_cache_dir)
    return state.suggested_k


def representatives(state: AppState) -> dict[int, np.ndarray]:
    """Per cluster, member indices nearest to the centre first (once per edit)."""
    return state.cached("reps", lambda: vx.representatives(state.emb.views["image"], state.labels))


def scores(state: AppState) -> dict:
    """Scores of the clustering as edited: ACC/NMI/ARI with folder labels, label-free ones otherwise."""
    if not state.edit_log:
        return dict(state.clustered.metrics)

    from vlexplore.evaluate import evaluate_labels, label_free_scores

    def compute() -> dict:
        y = state.emb.collection.labels
        if y is not None:
            return evaluate_labels(y, state.labels)
        return label_free_scores(state.emb.views["image"], state.labels, seed=0)

    with error_banner("Could not score the clustering"):
        return state.cached("scores", compute)


def confusion(state: AppState):
    """Folder × cluster counts (``None`` without folder labels)."""
    y = state.emb.collection.labels
    if y is None:
        return None
    return state.cached("confusion", lambda: vx.confusion_table(y, state.labels))


# -- edits (callbacks) ------------------------------------------------------------------------
def _edit(state: AppState, fn, success) -> None:
    try:
        message = fn()
    except vx.VlexploreError as exc:
        state.say("error", str(exc))
        return
    if success:
        state.say("success", message)


def rename(state: AppState, cid: int, key: str) -> None:
    """Rename cluster ``cid`` to the text in widget ``key`` (a no-op when unchanged)."""
    new = st.session_state.get(key, "")
    old = state.name(cid)
    if " ".join(str(new).split()) == old:
        return

    def go() -> str:
        names = edit.rename(state.names, cid, new)
        log = f"renamed cluster {cid} {old!r} → {names[cid]!r}"
        state.apply(None, names, log)
        saved.record(state, "rename", log, cid=cid, name=new)
        return f"Renamed “{old}” to “{names[cid]}”."

    _edit(state, go, True)


def merge(state: AppState, ids_key: str, name_key: str) -> None:
    """Merge the clusters chosen in widget ``ids_key`` under the name in ``name_key``."""
    ids = list(st.session_state.get(ids_key) or [])
    name = (st.session_state.get(name_key) or "").strip() or None

    def go() -> str:
        before = [state.name(c) for c in ids]
        labels, names, target = edit.merge(state.labels, state.names, ids, new_name=name)
        log = f"merged clusters {sorted(ids)} into {target} ({names[target]!r})"
        state.apply(labels, names, log)
        saved.record(state, "merge", log, ids=ids, name=name)
        return f"Merged {', '.join(f'“{b}”' for b in before)} into “{names[target]}”."

    _edit(state, go, True)


def move_selection(state: AppState, target: int) -> None:
    """Move the selected images to cluster ``target``."""
    sel = state.selection

    def go() -> str:
        labels = edit.move(state.labels, sel, target)
        names = edit.prune_names(labels, state.names)
        log = f"moved {len(sel)} images to cluster {target}"
        state.apply(labels, names, log)
        saved.record(state, "move", log, indices=sel, target=target)
        state.set_selection([])
        return f"Moved {len(sel):,} images to “{state.name(target)}”."

    _edit(state, go, True)


def new_cluster_from_selection(state: AppState, name: str, *, source: str = "selection") -> None:
    """The selected images become a cluster called ``name``; ``source`` (``"search: a red car"``) is saved with it."""
    sel = state.selection

    def go() -> str:
        labels, names, new_id = edit.new_cluster(state.labels, state.names, sel, name)
        log = f"new cluster {new_id} {names[new_id]!r} from {len(sel)} selected images"
        state.apply(labels, names, log)
        saved.record(state, "new_cluster", log, indices=sel, name=name, source=source)
        state.set_selection([])
        return f"Created cluster “{names[new_id]}” with {len(sel):,} images."

    _edit(state, go, True)


def import_session(state: AppState, data: bytes) -> None:
    """Open a session file (from Export session) on the loaded images: its clustering, then its edits."""
    session = saved.read_import(state, data)
    if session is not None:
        recluster(state, session.config, session=session)
