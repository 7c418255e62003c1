"""The one k-means of the library, and the k-means estimator.

:func:`kmeans` is what every k-means call in vlexplore goes through (the estimator here, prototype
refinement, text-guided prompt ranking, TAC noun selection, micro-clusters at scale):

* **faiss** when it is installed (``pip install faiss-cpu``): Lloyd iterations with
  :func:`default_n_init` restarts, each fitted on a seeded sample of at most
  :data:`POINTS_PER_CENTRE` rows per centre (faiss's own default), in the sample's top
  :func:`restart_dim` principal directions, and judged by its loss on every row in the full space;
  the best is refined with up to :data:`REFINE_ITER` Lloyd steps on every row
  (:func:`vlexplore.cluster.lloyd.lloyd`: only the rows that may change centre are measured), which
  also give every row's label.
* **sklearn** otherwise: ``KMeans`` (k-means++, the same restarts) up to
  :data:`MINIBATCH_THRESHOLD` rows, ``MiniBatchKMeans`` on a sample above.

The objective is plain squared Euclidean distance on the rows as given; callers hand it unit rows, so
it is k-means in cosine geometry (centres are means, not re-normalised, as sklearn's are).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import numpy as np

from .. import largescale
from ..errors import ConfigError
from ..models.base import l2_normalize, unit_rows
from .checks import check_joint, check_k, check_matrix, check_prototypes, suggest_k
from .lloyd import lloyd, member_sums

#: Without faiss, above this many rows k-means switches to ``MiniBatchKMeans`` on a sample.
MINIBATCH_THRESHOLD = 50_000
#: Restarts (the lowest loss wins): about ``RESTART_ROWS / n``, clipped to ``MIN_N_INIT..MAX_N_INIT``,
#: so small folders get many (a stable answer costs nothing there) and large ones a few.
RESTART_ROWS = 100_000
MIN_N_INIT = 5
MAX_N_INIT = 50
#: faiss: Lloyd iterations per restart, rows per centre a restart is fitted on (faiss's default),
#: and the refinement steps on every row afterwards (stops early when no row changes centre).
FAISS_NITER = 25
POINTS_PER_CENTRE = 256
REFINE_ITER = 10
#: The refinement also stops when a step lowers the loss by less than this share of it. 5e-4 against 1e-4:
#: ACC within 0.2 points and the loss within 0.1 % on three data sets at k = 10 and 30 (5 seeds each), and
#: 70,000 × 512 at k = 30 in two thirds of the time (``bench/kmeans_tol.py``); fewer Lloyd iterations per
#: restart, or fewer sample rows per centre, lost 1-5 ACC points there.
REFINE_TOL = 5e-4
#: A faiss training step below this many multiply-adds (sample rows × k × d) runs on one thread: OpenMP's
#: start-up and barriers cost more than the work (70,000 × 512 with k = 12, a 3,072-row sample: 0.09-0.15 s
#: per restart on one thread against 0.46-0.65 s on two, 2 cores with other work running).
ONE_THREAD_WORK = 100_000_000
#: faiss restarts run on the sample's top principal directions, :func:`restart_dim` of them (at least
#: ``RESTART_MIN_DIM``, ``RESTART_DIM_PER_CENTRE`` per centre, never more than the rows have); each restart's
#: centres are then its members' means in the full space, judged and refined there. 0 = full dimensions.
#: Against full-dimensional restarts (``bench/kmeans_tol.py --pixels``, 5 seeds, k = 10, 30, 45): the final
#: loss was equal or lower on Fashion-MNIST-10k (1280-d CNN features) and on 70k raw pixels (784-d), NMI within
#: 0.6 points, 2-4x less time at k = 30-45. ACC at k = 10 on raw pixels: 0.535 against 0.549 (10 seeds),
#: with a 0.2 % lower loss.
RESTART_MIN_DIM = 128
RESTART_DIM_PER_CENTRE = 2
#: Restarts are judged on every row up to this many, above on a random subset of this size (the same rows for
#: every restart, so their losses are compared pairwise); the winner is then refined on every row.
JUDGE_ROWS = 20_000
#: Restarts and batch size of the mini-batch fallback.
MINIBATCH_N_INIT = 3
MINIBATCH_BATCH_SIZE = 4096
#: Kept for callers that imported it: the restarts of exact k-means at 10k rows.
KMEANS_N_INIT = 10


def default_n_init(n: int) -> int:
    """Restarts for ``n`` rows: ``RESTART_ROWS // n`` clipped to 5..50 (80 rows: 50, 10k: 10, 20k+: 5)."""
    return int(np.clip(RESTART_ROWS // max(1, n), MIN_N_INIT, MAX_N_INIT))


def default_backend(n: int) -> str:
    """``faiss`` when installed, else ``sklearn`` up to :data:`MINIBATCH_THRESHOLD` rows and ``minibatch`` above."""
    if largescale.faiss_module() is not None:
        return "faiss"
    return "sklearn" if n <= MINIBATCH_THRESHOLD else "minibatch"


def restart_dim(d: int, k: int) -> int:
    """Dimensions faiss's restarts run in for ``d``-dimensional rows and ``k`` centres (see :data:`RESTART_MIN_DIM`)."""
    if RESTART_MIN_DIM <= 0:
        return d
    return min(d, max(RESTART_MIN_DIM, RESTART_DIM_PER_CENTRE * k))


@dataclass
class KMeansFit:
    """What :func:`kmeans` returns.

    ``labels int64 (n,)``, ``centres float32 (k, d)``, the loss (weighted squared distance of every row to its
    centre), the backend and the restarts used.
    """

    labels: np.ndarray
    centres: np.ndarray
    inertia: float
    backend: str
    n_init: int


def _member_means(X: np.ndarray, labels: np.ndarray, w, C: np.ndarray) -> np.ndarray:
    """Each centre's (``w``-weighted) member mean of the rows of ``X``; a centre without members keeps ``C``'s row."""
    wt = np.ones(len(X), dtype=np.float32) if w is None else np.asarray(w, dtype=np.float32)
    sums, mass = member_sums(X, labels, wt, len(C))
    full = mass > 0
    out = np.array(C, dtype=np.float32)
    out[full] = (sums[full] / mass[full, None]).astype(np.float32)
    return out


def _principal_basis(S: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean ``(d,)`` and the top ``dims`` principal directions ``(d, dims)`` of the rows of ``S`` (float32)."""
    from threadpoolctl import threadpool_limits

    mu = S.mean(axis=0, dtype=np.float64)
    Sc = S - mu.astype(np.float32)
    # one BLAS thread: 0.1-0.2 s for 11,520 x 784; two threads on 2 busy cores took 0.7-7 s for the same eigh
    with threadpool_limits(limits=1, user_api="blas"):
        _, vecs = np.linalg.eigh((Sc.T @ Sc).astype(np.float64))  # ascending eigenvalues
    return mu.astype(np.float32), np.ascontiguousarray(vecs[:, ::-1][:, :dims], dtype=np.float32)


def _cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def _faiss_threads(faiss, threads: int | None) -> Iterator[None]:
    """Set faiss's OpenMP threads to ``threads`` inside the block (``None``: left as they are)."""
    before = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _faiss_centres(X, k, *, seed, n_init, init, w) -> tuple[np.ndarray, np.ndarray | None, float]:
    """The centres, with every row's labels and loss under them when the refinement has them (else ``None``)."""
    faiss = largescale.faiss_module()
    if faiss is None:
        raise ConfigError("the faiss backend needs faiss: pip install faiss-cpu")
    n, d = X.shape
    idx = largescale._sample(n, min(largescale.KMEANS_SAMPLE, max(k, POINTS_PER_CENTRE * k)), seed)
    S = np.ascontiguousarray(X[idx], dtype=np.float32)
    ws = None if w is None else np.ascontiguousarray(np.asarray(w, dtype=np.float32)[idx])
    refine = len(S) < n <= largescale.KMEANS_SAMPLE  # at scale the sample's centres stand
    Xf = np.asarray(X, dtype=np.float32) if refine else None
    xf_sq = (
        None if Xf is None else largescale.row_squares(Xf)
    )  # every row's loss, for the judge and refinement
    runs = 1 if init is not None else max(1, n_init)
    judge = largescale._sample(n, JUDGE_ROWS, int(seed) + 1) if refine and runs > 1 else None
    # judged on every row: the winner's labels are the refinement's first step
    whole = judge is not None and len(judge) == n
    Xj = None if judge is None or Xf is None else (Xf if whole else np.ascontiguousarray(Xf[judge]))
    xj_sq = None if judge is None or xf_sq is None else (xf_sq if whole else xf_sq[judge])
    wj = None if w is None or judge is None else np.asarray(w)[judge]
    workers = min(runs, _cores())
    # Restarts run side by side, one thread each, whenever there are several restarts and cores; one restart
    # alone runs on one thread when small (OpenMP would cost more). Side by side beat OpenMP at every size
    # measured (70k x 512, k = 35: 2.9 against 3.6 s; k = 60: 4.2-4.6 against 4.7-6.8 s; the same centres).
    one_thread = workers > 1 or len(S) * k * d <= ONE_THREAD_WORK
    init_c = None if init is None else np.ascontiguousarray(init, np.float32)
    # Restarts on the sample's top principal directions, when they are fewer than the rows' own: each is then
    # d / d_r times cheaper (70,000 x 512, k = 45: 128 dimensions), and its centres return to the full space as
    # its members' means. Given starting centres are one run in the full space.
    d_r = d if init_c is not None else restart_dim(d, k)
    if d_r < d:
        mu, V = _principal_basis(S, d_r)
        S_r = np.ascontiguousarray((S - mu) @ V)
    else:
        S_r = S

    def restart(r: int) -> tuple[np.ndarray, float, np.ndarray | None]:
        km = faiss.Kmeans(
            d_r,
            int(k),
            niter=FAISS_NITER,
            nredo=1,
            seed=int(seed) * 1009 + r + 1,
            max_points_per_centroid=len(S),
            min_points_per_centroid=1,
            spherical=False,
            verbose=False,
        )
        with _faiss_threads(faiss, 1 if one_thread else None):
            km.train(S_r, weights=ws, init_centroids=init_c)
        C = np.asarray(km.centroids, dtype=np.float32)
        if d_r < d:  # back to the full space: the members' means there (an empty centre: its own point)
            C = _member_means(S, largescale.assign(S_r, C, loss=False)[0], ws, mu + C @ V.T)
        # the restart is judged on rows beyond its sample: the sample's own loss picks a worse optimum on
        # Fashion-MNIST-10k for 3 seeds in 5 (ACC 0.65 against 0.73)
        if Xj is not None:
            labels, loss = largescale.assign(Xj, C, wj, x_sq=xj_sq)
            return C, loss, labels if whole else None
        return C, float(km.obj[-1]) if len(km.obj) else 0.0, None

    if workers > 1:  # single-threaded restarts side by side, one per core (faiss and BLAS free the GIL)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            fits = list(pool.map(restart, range(runs)))
    else:
        fits = [restart(r) for r in range(runs)]
    best, best_loss, best_labels = None, np.inf, None
    for C, loss, labels in fits:  # in restart order: the first of equal losses wins, as one after another
        if loss < best_loss:
            best, best_loss, best_labels = C, loss, labels
    centres = cast(np.ndarray, best)  # the first restart's (finite) loss is below inf, so it is kept
    if Xf is None or xf_sq is None:  # both are kept iff refine
        return centres, None, 0.0
    first = None if best_labels is None else (best_labels, best_loss)
    fit = lloyd(Xf, centres, w, REFINE_ITER, REFINE_TOL, xf_sq, first=first)
    return fit.centres, fit.labels, fit.loss


@contextmanager
def _quiet_convergence() -> Iterator[None]:
    """Sklearn's ConvergenceWarning ("found N distinct clusters < k") silenced.

    Fewer distinct rows than centres is a property of the data, visible in the labels (callers say it in their
    own words).
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def kmeans(
    X,
    k: int,
    *,
    seed: int = 0,
    n_init: int | None = None,
    init=None,
    sample_weight=None,
    backend: str | None = None,
) -> KMeansFit:
    """k-means of the rows of ``X`` — the library's one entry point for it.

    Args:
        X: ``(n, d)`` float32 rows (a memory-mapped array works above :data:`largescale.KMEANS_SAMPLE`).
        k: centres, ``1..n``.
        seed: sampling and initialisation.
        n_init: restarts; ``None`` = :func:`default_n_init`. One when ``init`` is given.
        init: ``(k, d)`` starting centres (e.g. text prototypes), kept in that order.
        sample_weight: ``(n,)`` row weights (e.g. counts of repeated rows).
        backend: ``faiss``, ``sklearn``, ``minibatch`` or ``None`` = :func:`default_backend`.

    Returns:
        A :class:`KMeansFit`.
    """
    n = len(X)
    k = check_k(k, n)
    backend = backend or default_backend(n)
    n_init = 1 if init is not None else int(n_init or default_n_init(n))
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    labels = None
    if backend == "faiss":
        C, labels, inertia = _faiss_centres(X, k, seed=seed, n_init=n_init, init=init, w=w)
    elif backend == "sklearn":
        from sklearn.cluster import KMeans

        # float64: sklearn computes float32 distances through a slow up-casting path (about 3× slower)
        with _quiet_convergence():
            km = KMeans(
                n_clusters=k,
                n_init=n_init,
                init="k-means++" if init is None else np.asarray(init, np.float64),
                random_state=seed,
            ).fit(np.asarray(X, dtype=np.float64), sample_weight=w)
        return KMeansFit(
            km.labels_.astype(np.int64),
            km.cluster_centers_.astype(np.float32),
            float(km.inertia_),
            backend,
            n_init,
        )
    elif backend == "minibatch":
        from sklearn.cluster import MiniBatchKMeans

        idx = largescale._sample(n, largescale.KMEANS_SAMPLE, seed)
        n_init = 1 if init is not None else min(n_init, MINIBATCH_N_INIT)
        with _quiet_convergence():
            mb = MiniBatchKMeans(
                n_clusters=k,
                n_init=n_init,
                batch_size=MINIBATCH_BATCH_SIZE,
                random_state=seed,
                init="k-means++" if init is None else np.asarray(init, np.float64),
            ).fit(np.ascontiguousarray(X[idx], dtype=np.float32), sample_weight=None if w is None else w[idx])
        C = mb.cluster_centers_
    else:
        raise ConfigError(f"k-means backend must be 'faiss', 'sklearn' or 'minibatch', got {backend!r}")
    if labels is None:  # the refinement has them
        labels, inertia = largescale.assign(X, C, w)
    return KMeansFit(labels, np.asarray(C, dtype=np.float32), inertia, backend, n_init)


def group_centres(Xn: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """Initial k-means centres in X's space from image–prototype similarities.

    Args:
        Xn: ``(n, d)`` L2-normalised rows.
        sim: ``(n, p)`` cosine of each image to each prototype.

    Returns:
        ``(p, d)`` normalised centres: centre ``i`` is the mean row of the images most similar
        to prototype ``i``, or the single image most similar to it when there is none.
    """
    nearest = np.argmax(sim, axis=1)
    centres = np.empty((sim.shape[1], Xn.shape[1]), dtype=np.float32)
    for i in range(sim.shape[1]):
        members = nearest == i
        centres[i] = Xn[members].mean(axis=0) if members.any() else Xn[int(np.argmax(sim[:, i]))]
    return l2_normalize(centres)


class KMeansClusterer:
    """k-means on L2-normalised rows (cosine geometry) through :func:`kmeans`, optionally seeded by prototypes.

    With ``prototype_embeddings`` the centres start from the prototypes (one restart) and ``k``
    must equal the number of prototypes: when X and the prototypes share a space (``joint`` is
    ``None`` or equals ``X``) the prototype vectors themselves are the initial centres; otherwise
    (e.g. the bundled model, whose ``image`` view is not text-comparable) each initial centre is
    the mean X-row of the images whose ``joint`` vector is nearest to that prototype (the single
    most similar image when none is).

    Attributes:
        labels_: ``int64 (n,)``. n_clusters_: k. inertia_: the k-means loss of the kept run.
        backend_: ``faiss``, ``sklearn`` or ``minibatch``. n_init_: restarts used.

    Args:
        n_init: restarts; ``None`` = :func:`default_n_init` (more for small folders).
        backend: force a backend (see :func:`kmeans`); ``None`` = automatic.
    """

    def __init__(
        self,
        *,
        k: int | None = None,
        seed: int = 0,
        prototype_embeddings=None,
        n_init: int | None = None,
        backend: str | None = None,
    ) -> None:
        self.k = k
        self.seed = seed
        self.prototype_embeddings = prototype_embeddings
        self.n_init = n_init
        self.backend = backend

    def _init_centres(self, Xn: np.ndarray, joint, same_space: bool) -> np.ndarray:
        P = check_prototypes(self.prototype_embeddings)
        if same_space:
            if P.shape[1] != Xn.shape[1]:
                raise ConfigError(
                    f"prototype embeddings have {P.shape[1]} dimensions but X has {Xn.shape[1]}; "
                    "they must come from the same model"
                )
            return P
        J = check_joint(joint, len(Xn), P.shape[1])
        return group_centres(Xn, J @ P.T)

    def fit(self, X, joint=None) -> KMeansClusterer:
        """Cluster ``X`` ``(n, d)``; ``joint`` ``(n, d_joint)`` is only used to place prototype seeds."""
        if self.n_init is not None and (isinstance(self.n_init, bool) or int(self.n_init) < 1):
            raise ConfigError(f"n_init must be a positive number of restarts, got {self.n_init!r}")
        X_in = X
        X = check_matrix(X)
        n = len(X)
        Xn = unit_rows(X)
        init = None
        if self.prototype_embeddings is not None:
            n_p = len(check_prototypes(self.prototype_embeddings))
            if self.k is not None and self.k != n_p:
                raise ConfigError(
                    f"{self.k} clusters asked for, but {n_p} prototypes were given to seed k-means; "
                    "ask for none (one per prototype) or give one prototype per cluster",
                    option="k",
                )
            k = check_k(n_p, n)
            same_space = (
                joint is None
                or joint is X_in
                or (np.shape(joint) == X.shape and np.array_equal(np.asarray(joint, dtype=np.float32), X))
            )
            init = self._init_centres(Xn, joint, same_space)
        else:
            k = check_k(self.k if self.k is not None else suggest_k(Xn, seed=self.seed), n)
        self.backend_ = "none"
        self.n_init_ = 0
        if k == 1:
            self.labels_ = np.zeros(n, dtype=np.int64)
            self.inertia_ = float(((Xn - Xn.mean(axis=0)) ** 2).sum())
        else:
            fit = kmeans(Xn, k, seed=self.seed, n_init=self.n_init, init=init, backend=self.backend)
            self.labels_, self.inertia_ = fit.labels, fit.inertia
            self.backend_, self.n_init_ = fit.backend, fit.n_init
        self.n_clusters_ = k
        return self
