"""Tables of a clustering as edited by hand: the labelled table, and purity per folder and per cluster.

Why a module of its own and not :mod:`vlexplore.evaluate`: ``evaluate`` computes scores (numbers
from label arrays, no names); these tables are for people to read: their columns are named in
words and their rows name the clusters as the user renamed them (:mod:`vlexplore.edit`). The
Evaluate and Export pages of the app and a notebook show the same tables from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .edit import cluster_sizes, display_name


def full_names(labels: np.ndarray, names: Mapping[int, str]) -> dict[int, str]:
    """A name for every cluster id present in ``labels``."""
    return {c: display_name(names, c) for c in cluster_sizes(labels)}


def labelled_frame(
    emb, clustered, labels: np.ndarray, names: Mapping[int, str], *, curation: bool = True
) -> pd.DataFrame:
    """The library's labelled table (:func:`vlexplore.to_dataframe`) with the edited labels and names.

    ``curation=False`` leaves out ``duplicate_group``, ``outlier_score`` and ``confident`` (they need every
    image's nearest neighbours).
    """
    from .pipeline import to_dataframe

    edited = dataclasses.replace(
        clustered, labels=np.asarray(labels, dtype=np.int64), names=full_names(labels, names)
    )
    return to_dataframe(emb, edited, curation=curation)


def folder_purity(table: pd.DataFrame, names: Mapping[int, str]) -> pd.DataFrame:
    """Per folder (row of a confusion table): how many images, the cluster holding most of them, and its share."""
    counts = table.to_numpy(dtype=float)
    best = counts.argmax(axis=1) if counts.size else np.zeros(len(table), dtype=int)
    total = counts.sum(axis=1)
    cols = list(table.columns)
    return pd.DataFrame(
        {
            "folder": [str(r) for r in table.index],
            "images": total.astype(int),
            "mostly in cluster": [_name(cols[b], names) for b in best],
            "share": np.where(total > 0, counts[np.arange(len(best)), best] / np.maximum(total, 1), np.nan),
        }
    )


def cluster_purity(table: pd.DataFrame, names: Mapping[int, str]) -> pd.DataFrame:
    """Per cluster (column of a confusion table): size, majority folder and purity (majority share)."""
    counts = table.to_numpy(dtype=float)
    size = counts.sum(axis=0)
    best = counts.argmax(axis=0) if counts.size else np.zeros(len(table.columns), dtype=int)
    rows = [str(r) for r in table.index]
    df = pd.DataFrame(
        {
            "cluster": [_name(c, names) for c in table.columns],
            "images": size.astype(int),
            "majority folder": [rows[b] for b in best],
            "purity": np.where(size > 0, counts[best, np.arange(len(best))] / np.maximum(size, 1), np.nan),
        }
    )
    return df.sort_values(["purity", "images"], ascending=[False, False], ignore_index=True)


def _name(col, names: Mapping[int, str]) -> str:
    try:
        return display_name(names, int(col))
    except (TypeError, ValueError):
        return str(col)
