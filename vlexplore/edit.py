"""The user's edits of a clustering, as data: rename, merge, move, new cluster from a selection.

Pure functions on a label array ``int64 (n,)`` (``-1`` = noise / other) and a names dict
(cluster id → display name). They never modify their inputs: each returns new objects,
so the app can keep the library's result untouched and undo is a matter of keeping the old
ones; a notebook can replay the same edits. Bad input raises :class:`vlexplore.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .errors import ConfigError
from .labels import NOISE, default_name


def _labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"labels must be a 1-d integer array, got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64, copy=True)


def _indices(indices: Iterable[int], n: int) -> np.ndarray:
    idx = np.unique(
        np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
    )
    if idx.size and (idx[0] < 0 or idx[-1] >= n):
        raise ConfigError(f"image indices must lie in [0, {n}), got {idx[0]}…{idx[-1]}")
    return idx


def _clean_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise ConfigError("a cluster name cannot be empty")
    return cleaned[:80]


def cluster_sizes(labels: np.ndarray) -> dict[int, int]:
    """Cluster id → number of images."""
    ids, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts)}


def cluster_order(labels: np.ndarray) -> list[int]:
    """Cluster ids, largest first (ties by id), noise / other last."""
    sizes = cluster_sizes(labels)
    ids = sorted((c for c in sizes if c != NOISE), key=lambda c: (-sizes[c], c))
    return ids + ([NOISE] if NOISE in sizes else [])


def display_name(names: Mapping[int, str], cid: int, *, noise_name: str = "other") -> str:
    """The name shown for ``cid``: its edited name, else ``cluster <id>`` / the noise name."""
    if cid in names:
        return names[cid]
    return default_name(cid, noise=noise_name)


def prune_names(labels: np.ndarray, names: Mapping[int, str]) -> dict[int, str]:
    """Names of the clusters that still have images (noise keeps its name)."""
    present = set(cluster_sizes(labels))
    return {int(c): n for c, n in names.items() if c in present or c == NOISE}


def rename(names: Mapping[int, str], cid: int, new_name: str) -> dict[int, str]:
    """A copy of ``names`` with cluster ``cid`` called ``new_name`` (whitespace tidied, at most 80 characters)."""
    out = dict(names)
    out[int(cid)] = _clean_name(new_name)
    return out


def merge(
    labels: np.ndarray, names: Mapping[int, str], ids: Iterable[int], *, new_name: str | None = None
) -> tuple[np.ndarray, dict[int, str], int]:
    """Merge clusters ``ids`` into the smallest non-noise id among them.

    Returns:
        ``(labels, names, target)``. The merged cluster keeps the target's name unless
        ``new_name`` is given; the others' names are dropped. Merging "other" into a
        cluster moves its images into that cluster.
    """
    arr = _labels(labels)
    ids = sorted({int(i) for i in ids})
    if len(ids) < 2:
        raise ConfigError(f"choose at least two clusters to merge, got {len(ids)}")
    present = set(cluster_sizes(arr))
    missing = [i for i in ids if i not in present]
    if missing:
        raise ConfigError(f"no such cluster(s): {missing}")
    real = [i for i in ids if i != NOISE]
    target = real[0]
    arr[np.isin(arr, ids)] = target
    out = {c: n for c, n in names.items() if c not in ids or c in (target, NOISE)}
    out[target] = _clean_name(new_name) if new_name else display_name(names, target)
    return arr, prune_names(arr, out), target


def move(labels: np.ndarray, indices: Iterable[int], target: int) -> np.ndarray:
    """A copy of ``labels`` with the images at ``indices`` put in cluster ``target`` (``-1`` = other)."""
    arr = _labels(labels)
    target = int(target)
    if target < NOISE:
        raise ConfigError(f"cluster ids are >= -1, got {target}")
    idx = _indices(indices, len(arr))
    if idx.size == 0:
        raise ConfigError("no images selected to move")
    arr[idx] = target
    return arr


def next_cluster_id(labels: np.ndarray, names: Mapping[int, str]) -> int:
    """The smallest id not used by any image or name."""
    used = [int(np.max(labels))] if len(labels) else []
    used += [int(c) for c in names]
    return max([NOISE, *used]) + 1


def new_cluster(
    labels: np.ndarray, names: Mapping[int, str], indices: Iterable[int], name: str
) -> tuple[np.ndarray, dict[int, str], int]:
    """Put the images at ``indices`` in a new cluster called ``name``.

    Returns:
        ``(labels, names, new_id)``; clusters emptied by the move lose their names.
    """
    clean = _clean_name(name)
    new_id = next_cluster_id(labels, names)
    arr = move(labels, indices, new_id)
    out = dict(names)
    out[new_id] = clean
    return arr, prune_names(arr, out), new_id


def pages(n_items: int, page_size: int) -> int:
    """How many pages of ``page_size`` it takes to show ``n_items`` (at least 1)."""
    if page_size < 1:
        raise ConfigError(f"page_size must be >= 1, got {page_size}")
    return max(1, -(-n_items // page_size))


def page_slice(items: np.ndarray, page: int, page_size: int) -> np.ndarray:
    """Items on 1-based ``page`` (clamped to the valid range)."""
    last = pages(len(items), page_size)
    page = min(max(1, int(page)), last)
    return items[(page - 1) * page_size : page * page_size]
