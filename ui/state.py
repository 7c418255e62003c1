"""Typed access to ``st.session_state``: one :class:`AppState` per browser session.

Pages read and change the session through this object only. The library's results
(:class:`vlexplore.Embedded`, :class:`vlexplore.Clustered`) are kept as returned; hand
edits live beside them (``labels``, ``names``) and bump ``version``, which keys the
memo of derived values (representatives, scores, figures) so they are computed once
per edit, not once per rerun.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import streamlit as st

from vlexplore import edit, paths

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future

    from vlexplore.results import Clustered, Embedded
    from vlexplore.sessions import Session

KEY = "vx"
T = TypeVar("T")


@dataclass
class AppState:
    """Everything one session knows.

    Attributes:
        folder: the loaded folder (resolved), or ``None``.
        model, device, captioner: what the user asked for on the Load page (``captioner`` ``""`` = none).
        cache_dir: where embeddings and thumbnails are kept (``None`` = the library's default).
        emb: the embedded collection; clustered: the library's last clustering of it.
        labels, names: the clustering as edited by hand (``int64 (n,)``; id → name).
        selection: indices of the images selected on the map.
        version: bumped by every change of ``labels``/``names``/``clustered``.
        edit_log: one line per hand edit, for the provenance record.
        timings: seconds per step of the last load (``scan``, ``embed``, ``cluster``).
        auto_started: the start-up folder has been loaded once in this session.
        suggested_k: k suggested from the data for this ``emb``.
        flash: ``(kind, text)`` messages left by callbacks, shown once by the next page render.
        thumbs: image index → its cached thumbnail file (for this ``emb``).
        map_job: the ``Future`` laying out the map in the background, while ``clustered.coords`` is pending.
        session: the saved session (:class:`vlexplore.sessions.Session`) every edit is written to, or ``None``.
    """

    folder: Path | None = None
    model: str = "bundled"
    device: str = "auto"
    captioner: str = ""
    cache_dir: Path | None = None
    emb: Embedded | None = None
    clustered: Clustered | None = None
    labels: np.ndarray | None = None
    names: dict[int, str] = field(default_factory=dict)
    selection: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    version: int = 0
    edit_log: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    auto_started: bool = False
    suggested_k: int | None = None
    flash: list[tuple[str, str]] = field(default_factory=list)
    thumbs: dict[int, Path] = field(default_factory=dict, repr=False)
    map_job: Future | None = field(default=None, repr=False)
    session: Session | None = field(default=None, repr=False)
    memo: dict[tuple, Any] = field(default_factory=dict, repr=False)

    # -- reading ---------------------------------------------------------
    @property
    def has_data(self) -> bool:
        """A folder is loaded and embedded."""
        return self.emb is not None

    @property
    def has_clusters(self) -> bool:
        """A clustering exists for the loaded folder."""
        return self.emb is not None and self.clustered is not None and self.labels is not None

    @property
    def n_images(self) -> int:
        """Images in the loaded folder (0 when none)."""
        return 0 if self.emb is None else int(self.emb.n)

    @property
    def map_ready(self) -> bool:
        """The clustering has real map coordinates (not the NaN placeholder of a layout still running)."""
        return self.clustered is not None and bool(np.isfinite(self.clustered.coords).all())

    @property
    def resolved_cache_dir(self) -> Path:
        """The cache root this session uses."""
        from vlexplore.config import default_cache_dir

        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()

    @property
    def noise_name(self) -> str:
        """The display name of the noise / other cluster."""
        return self.names.get(edit.NOISE, "other")

    def name(self, cid: int) -> str:
        """The display name of cluster ``cid``."""
        return edit.display_name(self.names, int(cid))

    def order(self) -> list[int]:
        """Cluster ids as shown: largest first, noise / other last."""
        return [] if self.labels is None else self.cached("order", lambda: edit.cluster_order(self.labels))

    def sizes(self) -> dict[int, int]:
        """Cluster id → number of images (cached per edit)."""
        return {} if self.labels is None else self.cached("sizes", lambda: edit.cluster_sizes(self.labels))

    @property
    def n_clusters(self) -> int:
        """Clusters, not counting noise / other."""
        return len([c for c in self.sizes() if c != edit.NOISE])

    def cached(self, name: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per (name, version); older entries of the same name are dropped."""
        key = (name, self.version)
        if key not in self.memo:
            for old in [k for k in self.memo if k[0] == name]:
                del self.memo[old]
            self.memo[key] = compute()
        return self.memo[key]

    # -- changing --------------------------------------------------------
    def set_embedded(self, emb, *, folder: Path, model: str, device: str, captioner: str = "") -> None:
        """A newly loaded folder: forget the clustering, the edits and the selection."""
        self.emb, self.folder, self.model, self.device = emb, folder, model, device
        self.captioner = captioner
        self.clustered, self.labels, self.names = None, None, {}
        self.suggested_k = None
        self.thumbs = {}
        self.map_job = None
        self.session = None
        self._reset_edits()

    def set_clustered(self, clustered) -> None:
        """A new clustering of the current images: the edits start over from it."""
        self.clustered = clustered
        self.labels = np.asarray(clustered.labels, dtype=np.int64).copy()
        self.names = {int(k): str(v) for k, v in clustered.names.items()}
        self._reset_edits()

    def apply(self, labels: np.ndarray | None, names: dict[int, str], log: str) -> None:
        """Store the result of an edit from :mod:`vlexplore.edit`."""
        if labels is not None:
            self.labels = labels
        self.names = names
        self.edit_log.append(log)
        self.version += 1

    def say(self, kind: str, text: str) -> None:
        """Queue a message (``kind``: success, info, warning, error) for the next render."""
        self.flash.append((kind, text))

    def set_selection(self, indices) -> None:
        """Select the images ``indices`` (sorted, unique)."""
        self.selection = np.unique(np.asarray(list(indices), dtype=np.int64))

    def _reset_edits(self) -> None:
        self.selection = np.zeros(0, dtype=np.int64)
        self.edit_log = []
        self.memo = {}
        self.version += 1


def get() -> AppState:
    """This session's :class:`AppState` (created on first use)."""
    if KEY not in st.session_state:
        st.session_state[KEY] = AppState()
    return st.session_state[KEY]


def allowed_roots() -> list[Path]:
    """Roots from ``VLEXPLORE_ROOTS``, else the ``roots`` secret, else demo + home (+ the start-up folder).

    Fails closed like :func:`vlexplore.paths.allowed_roots`: bad configuration raises ``ConfigError``.
    """
    secret = None if paths.ROOTS_ENV in os.environ else paths.secret_roots(st.secrets)
    return paths.allowed_roots(secrets_roots=secret)
