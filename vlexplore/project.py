"""2-d map coordinates: UMAP (cosine) for 30 points or more, PCA below; seeded and cached on disk.

UMAP's numba functions are compiled on first use (several seconds). Pointing
``NUMBA_CACHE_DIR`` at the vlexplore cache keeps the compiled code between runs, and
:func:`warm_up_umap` lets the app pay the rest in a background thread at start-up.

A cache that cannot be written (read-only, full, a path that is not a folder) costs only the
caching: the coordinates are computed in memory, numba compiles into a private temporary folder
(or keeps the code in memory), and the caller is told once through ``on_cache_error`` or a
:class:`CacheWriteWarning`.

Until UMAP's layout exists, :func:`~vlexplore.quickmap.quick_layout` gives a coarser one in seconds that
compiles nothing (the app's Map page shows it first).
"""

from __future__ import annotations

import atexit
import contextvars
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .cluster import check_matrix
from .errors import (
    CacheWriteWarning,  # re-exported: it used to be defined here
    ConfigError,
)
from .fsutil import atomic_writer
from .quickmap import quick_layout  # noqa: F401 - the map shown while UMAP is computed (no numba)

#: Below this many points UMAP's neighbour graph means little; PCA is used instead.
UMAP_MIN_POINTS = 30
#: Wider inputs are reduced to this many PCA dimensions before UMAP. On 10k Fashion-MNIST images
#: (1280-d) the layout took the same time (9.4 s warm) and its 2-d neighbourhoods kept more of the
#: classes (share of 2-d 10-NN in the same class 0.63 vs 0.55; of the 1280-d 10-NN kept 0.046 vs 0.041).
UMAP_PCA_DIMS = 50
#: Above this many points UMAP starts from the PCA of its input instead of its spectral layout. The spectral
#: layout (ARPACK on the neighbour graph) grows out of hand: 200,000 points took 122 s and 1.0 GB above the
#: input against 107 s and 0.4 GB from PCA (same-class 2-d 10-NN 0.378 against 0.356, random 512-d ViT on
#: Fashion-MNIST variants); at 1,000,000 in the app it ran 15 min without finishing and took the server
#: past 8 GB. On 200,000 full-rank synthetic 512-d rows in 50 groups: 197 s and 1.57 GB against 146 s and 1.21 GB,
#: same-group 2-d 10-NN 0.9984 against 0.9983 (``bench/umap_init.py``).
SPECTRAL_INIT_MAX = 250_000
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


CacheErrorHandler = Callable[[str], None] | None


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _tell(on_cache_error: CacheErrorHandler, message: str) -> None:
    if on_cache_error is None:
        warnings.warn(message, CacheWriteWarning, stacklevel=3)
    else:
        on_cache_error(message)


def _writable_dir(path: Path) -> None:
    """Make ``path`` and check that a file can be created in it (raises ``OSError`` otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    tempfile.TemporaryFile(dir=path).close()


def _set_numba_cache(cache_dir: str | Path | None, on_cache_error: CacheErrorHandler = None) -> None:
    """Point numba's disk cache at ``cache_dir/numba`` unless the user chose one (before importing umap).

    When that folder cannot be made or written, a private temporary folder is used instead (the
    compiled code is then not kept between runs) and the caller is told.
    """
    if cache_dir is None or os.environ.get("NUMBA_CACHE_DIR"):
        return
    path = Path(cache_dir) / "numba"
    try:
        _writable_dir(path)
    except OSError as exc:
        try:
            fallback = tempfile.mkdtemp(prefix="vlexplore-numba-")
        except OSError:  # nowhere to write: numba falls back to its own locations or to memory
            fallback = None
        if fallback is not None:
            atexit.register(shutil.rmtree, fallback, ignore_errors=True)  # of use to this process only
            os.environ["NUMBA_CACHE_DIR"] = fallback
        _tell(
            on_cache_error,
            f"cannot write to the cache folder {path} ({_why(exc)}); UMAP's compiled "
            "code is not kept between runs",
        )
        return
    os.environ["NUMBA_CACHE_DIR"] = str(path)


# The reporter of the _umap call running in this thread (numba compiles in the calling thread).
_numba_save_failed: contextvars.ContextVar[Callable[[OSError], None] | None] = contextvars.ContextVar(
    "vlexplore_numba_save_failed", default=None
)


def _tolerate_numba_cache_errors() -> None:
    """Once per process.

    A compiled function that numba cannot save to its disk cache (disk full, folder gone read-only) is kept in
    memory instead of failing the compile.

    numba compiles, keeps the result, then saves it; on Linux an ``OSError`` of that save propagates
    and fails the call — or ``import umap`` itself, whose layout functions compile at import. Here
    such a save turns that function's disk cache off and is reported to the running :func:`_umap_degrading`.
    """
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - umap needs numba
        return
    original = caching.Cache.save_overload
    if getattr(original, "_vlexplore_tolerant", False):
        return

    def save_overload(self, sig, data):
        try:
            original(self, sig, data)
        except OSError as exc:
            self.disable()
            report = _numba_save_failed.get()
            if report is not None:
                report(exc)

    patched: Any = save_overload  # marked, so a second call leaves numba's method as it is
    patched._vlexplore_tolerant = True
    cache_class: Any = caching.Cache  # numba's class, patched in place
    cache_class.save_overload = patched


def _umap_degrading(X: np.ndarray, on_cache_error: CacheErrorHandler = None, **kwargs) -> np.ndarray:
    """:func:`_umap`, with numba's disk-cache writes made non-fatal (told once per call)."""
    told: list[OSError] = []

    def report(exc: OSError) -> None:
        if not told:
            told.append(exc)
            _tell(
                on_cache_error,
                f"cannot write UMAP's compiled code to the cache ({_why(exc)}); "
                "it is compiled in memory and not kept between runs",
            )

    _tolerate_numba_cache_errors()
    token = _numba_save_failed.set(report)
    try:
        return _umap(X, **kwargs)
    finally:
        _numba_save_failed.reset(token)


def cosine_knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each row's ``k`` nearest rows by cosine.

    The row itself first, as UMAP's ``precomputed_knn`` takes them: ``(int64 indices, float32 cosine
    distances)``, both ``(n, k)``; ``None`` without faiss.

    faiss: exact inner product on unit rows up to :data:`~vlexplore.largescale.EXACT_KNN_MAX` rows,
    HNSW beyond. No numba is involved, so nothing compiles (pynndescent, UMAP's own search above ~4k
    points, compiles for tens of seconds in a new process with an empty numba cache).
    """
    from .largescale import ASSIGN_BLOCK, EXACT_KNN_MAX, faiss_module

    faiss = faiss_module()
    if faiss is None:
        return None
    Xn = np.ascontiguousarray(X, dtype=np.float32).copy()
    norms = np.linalg.norm(Xn, axis=1, keepdims=True)
    Xn /= np.where(norms > 0, norms, 1.0)
    n, d = Xn.shape
    if n <= EXACT_KNN_MAX:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = max(64, 2 * k)
    index.add(Xn)
    sims = np.empty((n, k), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, ASSIGN_BLOCK):
        sims[start : start + ASSIGN_BLOCK], idx[start : start + ASSIGN_BLOCK] = index.search(
            Xn[start : start + ASSIGN_BLOCK], k
        )
    # the row itself first (ties among duplicates may put another row there)
    own = idx == np.arange(n)[:, None]
    if not own[:, 0].all():
        rows = np.flatnonzero(~own[:, 0])
        idx[rows, 1:] = np.where(own[rows, 1:], idx[rows, :1], idx[rows, 1:])
        idx[rows, 0] = rows
        sims[rows, 0] = 1.0
    bad = idx < 0  # HNSW pads with -1 when it finds fewer than k
    if bad.any():
        idx = np.where(bad, idx[:, :1], idx)
        sims = np.where(bad, sims[:, :1], sims)
    dists = np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32)
    dists[:, 0] = 0.0
    return idx, dists


def layout_epochs_release_the_gil() -> bool:
    """Make UMAP's layout epochs run without Python's GIL; ``True`` when they now do (once per process).

    umap-learn compiles its per-epoch kernel with numba but without ``nogil``, so each epoch holds the GIL from
    start to end: 0.1 s at 70,000 points, over a second at 1,000,000. A map laid out in a background thread
    then stalls every other thread of the app (a page run, a re-cluster) for an epoch at a time, about 200
    times. The same kernel is compiled here with ``nogil=True`` (it only reads and writes its own arrays) and
    put where umap looks it up on every call. An umap without that kernel is left as it is (``False``).
    """
    from umap import layouts

    if hasattr(layouts, "_vlexplore_gil_kernel"):  # umap's own kernel, kept when it was replaced
        return True
    kernel = getattr(layouts, "_optimize_layout_euclidean_single_epoch", None)
    if kernel is None or not hasattr(layouts, "_nb_optimize_layout_euclidean_single_epoch"):
        return False
    import numba

    # the options umap itself gives it (fastmath, not parallel), plus nogil; umap caches neither on disk
    layouts._vlexplore_gil_kernel = layouts._nb_optimize_layout_euclidean_single_epoch
    layouts._nb_optimize_layout_euclidean_single_epoch = numba.njit(
        kernel, fastmath=True, parallel=False, nogil=True
    )
    return True


def _umap(
    X: np.ndarray, *, seed: int, n_neighbors: int, min_dist: float, knn: str = "umap", **kwargs
) -> np.ndarray:
    import umap

    layout_epochs_release_the_gil()

    if knn == "faiss" and "precomputed_knn" not in kwargs:
        found = cosine_knn(X, n_neighbors)
        if found is not None:
            kwargs["precomputed_knn"] = (found[0], found[1], None)

    if len(X) > SPECTRAL_INIT_MAX:
        kwargs.setdefault("init", "pca")
    model = umap.UMAP(
        n_components=2,
        metric="cosine",
        random_state=seed,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        low_memory=True,
        n_jobs=1,
        **kwargs,
    )
    with warnings.catch_warnings():  # a map is never transformed: no search index is needed
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
        return np.asarray(model.fit_transform(X), dtype=np.float32)


def _reduce(X: np.ndarray, seed: int) -> np.ndarray:
    """``X`` itself when it has at most :data:`UMAP_PCA_DIMS` columns (or rows), else its PCA to that many."""
    n, d = X.shape
    if d <= UMAP_PCA_DIMS or n <= UMAP_PCA_DIMS:
        return X
    from sklearn.decomposition import PCA

    return PCA(n_components=UMAP_PCA_DIMS, random_state=seed).fit_transform(X).astype(np.float32)


def _pca(X: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    n, d = X.shape
    out = np.zeros((n, 2), dtype=np.float32)
    n_comp = min(2, n, d)
    if n < 2 or np.allclose(X, X[0]):
        return out
    out[:, :n_comp] = PCA(n_components=n_comp, random_state=seed).fit_transform(X)
    return out


def _cache_path(cache_dir: str | Path, cache_key: str) -> Path:
    if not _KEY_RE.match(cache_key):
        raise ConfigError(
            "cache_key must be a plain file name (letters, digits, '.', '_', '-'; at most 200), "
            f"got {cache_key!r}"
        )
    return Path(cache_dir) / "projections" / f"{cache_key}.npy"


def _load(path: Path, n: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if arr.shape != (n, 2) or not np.isfinite(arr).all():
        return None
    return arr.astype(np.float32, copy=False)


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def project_2d(
    X,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    cache_dir: str | Path | None = None,
    cache_key: str | None = None,
    on_cache_error: CacheErrorHandler = None,
    knn: str = "faiss",
) -> np.ndarray:
    """Map ``X`` to 2-d for display.

    UMAP with the cosine metric (``n_neighbors`` capped at ``n - 1``; inputs wider than
    :data:`UMAP_PCA_DIMS` reduced to that many PCA dimensions first) when there are at
    least :data:`UMAP_MIN_POINTS` points, else PCA (one point → the origin). With both
    ``cache_dir`` and ``cache_key`` the result is read from / written to
    ``cache_dir/projections/<cache_key>.npy`` (atomic write); the key must cover everything
    that changes the output besides the row count (data, seed, parameters). When the cache
    cannot be written the coordinates are still returned, and the caller is told.

    Args:
        X: ``(n, d)`` vectors.
        seed: random state of UMAP / PCA.
        n_neighbors: UMAP neighbourhood size (>= 2).
        min_dist: UMAP's minimum distance between embedded points (>= 0).
        cache_dir: the vlexplore cache directory (also hosts numba's compiled code).
        cache_key: a file-name-safe key of this projection.
        on_cache_error: called with one sentence for the user per cache write that failed;
            ``None`` = a :class:`CacheWriteWarning`.
        knn: UMAP's neighbours: ``"faiss"`` (:func:`cosine_knn`, handed to UMAP; UMAP's own search when
            faiss is not installed) or ``"umap"`` (UMAP's own: pynndescent, compiled by numba on first use).
            ``bench/first_map.py`` measures the first map in a new process either way.

    Returns:
        ``float32 (n, 2)`` finite coordinates.
    """
    if n_neighbors < 2:
        raise ConfigError(f"n_neighbors must be >= 2, got {n_neighbors}")
    if knn not in ("faiss", "umap"):
        raise ConfigError(f"knn must be 'faiss' or 'umap', got {knn!r}")
    if min_dist < 0:
        raise ConfigError(f"min_dist must be >= 0, got {min_dist}")
    X = check_matrix(X)
    n = len(X)
    path = _cache_path(cache_dir, cache_key) if cache_dir is not None and cache_key is not None else None
    if path is not None:
        cached = _load(path, n)  # a missing or unreadable file is a miss
        if cached is not None:
            return cached
    if n >= UMAP_MIN_POINTS:
        _set_numba_cache(cache_dir, on_cache_error)
        coords = _umap_degrading(
            _reduce(X, seed),
            on_cache_error,
            seed=seed,
            n_neighbors=min(n_neighbors, n - 1),
            min_dist=min_dist,
            knn=knn,
        )
    else:
        coords = _pca(X, seed)
    coords = np.nan_to_num(coords, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)
    if path is not None:
        try:
            _save(path, coords)
        except OSError as exc:
            _tell(
                on_cache_error,
                f"cannot save the map to the cache ({path.parent}: {_why(exc)}); it was "
                "computed in memory and will be computed again next time",
            )
    return coords


def warm_up_umap(cache_dir: str | Path | None = None, *, seed: int = 0) -> None:
    """Compile UMAP's numba code now (a few seconds, once per process; faster with a warm disk cache).

    Runs UMAP on a tiny random array, once with exact neighbours (small data) and once with
    the approximate nearest-neighbour search used above ~4k points (that one alone compiles
    for tens of seconds on a small CPU). Meant for a background thread at app start-up.

    Args:
        cache_dir: the vlexplore cache directory; ``None`` = :func:`~vlexplore.config.default_cache_dir`.
            numba's disk cache goes under it unless ``NUMBA_CACHE_DIR`` is set (numba reads
            that once, when first imported).
        seed: random state of the dummy data.
    """
    from .config import default_cache_dir

    _set_numba_cache(default_cache_dir() if cache_dir is None else cache_dir)
    X = np.random.default_rng(seed).normal(size=(UMAP_MIN_POINTS + 10, 8)).astype(np.float32)
    _umap_degrading(X, seed=seed, n_neighbors=15, min_dist=0.1, n_epochs=10)
    _umap_degrading(
        X, seed=seed, n_neighbors=15, min_dist=0.1, n_epochs=10, force_approximation_algorithm=True
    )
