"""k-means' refinement: weighted Lloyd steps on every row that measure only the rows that may change centre.

After its restarts, :func:`vlexplore.cluster.kmeans.kmeans` runs up to ten Lloyd steps on every row. In those
steps 1-3 % of the rows change centre (100,000 × 512, k = 45), yet a plain step measures every row against
every centre, and sums every centre's members again. Here:

* each row keeps an upper bound on the distance to its own centre and a lower bound on the distance to each
  other centre (C. Elkan, "Using the triangle inequality to accelerate k-means", ICML 2003). When the centres
  move, each bound moves by at most how far its centre moved; a row whose upper bound stays below all its
  lower bounds, or below half the distance from its centre to the nearest other one, keeps its centre. The
  other rows are measured against every centre in one matrix product (BLAS), which is faster in numpy than
  Elkan's per-centre tests. The bounds cost ``4 n k`` bytes, so above :data:`BOUND_CELLS` every row is measured;
* the member sums are summed once, then moved by the rows that changed centre;
* the loss is followed without a pass over the rows: moving each centre to its members' mean lowers it by
  ``Σ mass · shift²``, and each row that changes centre by the drop in its own squared distance.

Written here because no installed library offers it: faiss's k-means has no bounds and takes no starting
labels; scikit-learn's Elkan k-means is float64 with its own initialisation and loop. The labels are those
of plain Lloyd steps from the same centres, up to float32 ties.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import largescale

#: Rows × centres above which the per-centre bounds (float32) are not kept and every row is measured each step.
BOUND_CELLS = 1 << 24


class Refined(NamedTuple):
    """What :func:`lloyd` returns.

    ``centres float32 (k, d)``, the rows' ``labels int64 (n,)`` under them, their ``loss``, and the ``steps``
    that assigned rows (the caller's ``first`` labels not counted).
    """

    centres: np.ndarray
    labels: np.ndarray
    loss: float
    steps: int


def member_sums(X: np.ndarray, labels: np.ndarray, wt: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per centre, the ``wt``-weighted sum of its member rows of ``X`` and their total weight (float64)."""
    from scipy.sparse import csr_matrix

    # float32 weights: float64 ones would make scipy copy the rows to float64 first
    member = csr_matrix((wt.astype(np.float32), (labels, np.arange(len(X)))), shape=(k, len(X)))
    return np.asarray(member @ X, dtype=np.float64), np.bincount(labels, weights=wt, minlength=k)


def _distances(
    X: np.ndarray, rows: np.ndarray | None, C: np.ndarray, c_sq: np.ndarray, x_sq: np.ndarray
) -> np.ndarray:
    """``float32 (m, k)`` distances of ``X[rows]`` (every row when ``None``) to the centres, in blocks."""
    m = len(X) if rows is None else len(rows)
    out = np.empty((m, len(C)), dtype=np.float32)
    step = largescale.block_rows(len(C))
    for s in range(0, m, step):
        pick = slice(s, s + step) if rows is None else rows[s : s + step]
        B = np.asarray(X[pick], dtype=np.float32)
        d = out[s : s + len(B)]
        np.matmul(B, C.T, out=d)
        d *= -2.0
        d += c_sq
        d += x_sq[pick][:, None]
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
    return out


def lloyd(
    X: np.ndarray,
    C: np.ndarray,
    w: np.ndarray | None,
    iters: int,
    tol: float,
    x_sq: np.ndarray,
    first: tuple[np.ndarray, float] | None = None,
) -> Refined:
    """Up to ``iters`` weighted Lloyd steps on every row of ``X`` from centres ``C``; an empty centre stays put.

    Stops when no row changes centre, or when a step lowers the loss by less than ``tol`` of it. ``x_sq``: the
    rows' squared lengths (:func:`vlexplore.largescale.row_squares`). ``first``: the rows' labels and loss
    under ``C`` when the caller has them (the first assignment is skipped).

    Returns:
        A :class:`Refined`.
    """
    n, k = len(X), len(C)
    C = np.ascontiguousarray(C, dtype=np.float32)
    wt = np.ones(n, dtype=np.float64) if w is None else np.asarray(w, dtype=np.float64)
    keep_bounds = n * k <= BOUND_CELLS and k > 1
    lower: np.ndarray | None = None  # (n, k) lower bounds, +inf in each row's own column
    upper = np.empty(0, dtype=np.float32)
    ar = np.arange(n)

    def measure_all(C: np.ndarray) -> tuple[np.ndarray, float]:
        nonlocal lower, upper
        if not keep_bounds:
            return largescale.assign(X, C, w, x_sq=x_sq)
        D = _distances(X, None, C, np.einsum("ij,ij->i", C, C), x_sq)
        labels = D.argmin(axis=1)
        upper = D[ar, labels]
        D[ar, labels] = np.inf
        lower = D
        return labels, float(wt @ np.square(upper, dtype=np.float64))

    labels, loss = (np.asarray(first[0], dtype=np.int64), first[1]) if first else measure_all(C)
    steps = 0 if first else 1
    sums, mass = member_sums(X, labels, wt, k)
    for _ in range(iters - 1):
        full = np.bincount(labels, minlength=k) > 0
        C_new = C.copy()
        C_new[full] = (sums[full] / mass[full, None]).astype(np.float32)
        shift = np.sqrt(np.square(C_new.astype(np.float64) - C).sum(axis=1))
        if lower is None:  # no bounds yet (or none kept): every row is measured
            new_labels, new_loss = measure_all(C_new)
            moved = np.flatnonzero(new_labels != labels)
            gain = loss - new_loss
        else:
            lower -= shift.astype(np.float32)
            upper += shift[labels].astype(np.float32)
            c_sq = np.einsum("ij,ij->i", C_new, C_new)
            between = np.sqrt(np.maximum(c_sq[:, None] + c_sq[None, :] - 2.0 * (C_new @ C_new.T), 0.0))
            np.fill_diagonal(between, np.inf)
            half = 0.5 * between.min(axis=1)
            maybe = np.flatnonzero((upper > half[labels]) & (lower.min(axis=1) < upper))
            D = _distances(X, maybe, C_new, c_sq, x_sq)
            got = D.argmin(axis=1)
            am = np.arange(len(maybe))
            changed = got != labels[maybe]
            moved = maybe[changed]
            d_old, d_new = D[am, labels[maybe]][changed], D[am, got][changed]
            # the centres' move to their members' means, then each moved row's own drop
            gain = float(mass @ np.square(shift)) + float(
                wt[moved] @ (np.square(d_old, dtype=np.float64) - np.square(d_new, dtype=np.float64))
            )
            new_loss = loss - gain
            new_labels = labels.copy()
            new_labels[maybe] = got
            upper[maybe] = D[am, got]
            D[am, got] = np.inf
            lower[maybe] = D
        if len(moved):
            B = np.asarray(X[moved], dtype=np.float32)
            s_out, m_out = member_sums(B, labels[moved], -wt[moved], k)
            s_in, m_in = member_sums(B, new_labels[moved], wt[moved], k)
            sums += s_out + s_in
            mass += m_out + m_in
        stop = not len(moved) or gain < tol * loss
        C, labels, loss, steps = C_new, new_labels, new_loss, steps + 1
        if stop:
            break
    return Refined(C, labels, float(loss), steps)
