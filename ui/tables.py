"""Tables and files the app offers: the labelled table, CSV/Parquet bytes, provenance, purity.

Pure functions (no Streamlit); the Export and Evaluate pages call them.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

import vlexplore as vx
from ui import edits

EXPORT_COLUMNS = ("path", "cluster_id", "cluster_label", "umap_x", "umap_y", "caption", "similarity")


def full_names(labels: np.ndarray, names: Mapping[int, str]) -> dict[int, str]:
    """A name for every cluster id present in ``labels``."""
    return {c: edits.display_name(names, c) for c in edits.cluster_sizes(labels)}


def labelled_frame(emb, clustered, labels: np.ndarray, names: Mapping[int, str]) -> pd.DataFrame:
    """The library's labelled table (:func:`vlexplore.to_dataframe`) with the edited labels and names."""
    edited = dataclasses.replace(
        clustered, labels=np.asarray(labels, dtype=np.int64), names=full_names(labels, names)
    )
    return vx.to_dataframe(emb, edited)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """UTF-8 CSV with every text cell made formula-safe (:func:`vlexplore.export.safe_cell`)."""
    safe = df.copy()
    for col in safe.columns:
        if pd.api.types.is_object_dtype(safe[col]) or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(vx.safe_cell)
    return safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """Parquet (typed, so no formula escaping needed)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


APP_PACKAGES = (
    "streamlit",
    "plotly",
    "torch",
    "timm",
    "open-clip-torch",
    "sentence-transformers",
    "umap-learn",
)


def app_versions(packages: Sequence[str] = APP_PACKAGES) -> dict[str, str]:
    """Versions of the packages the app adds to the library's own list."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def provenance(
    emb,
    clustered,
    labels: np.ndarray,
    names: Mapping[int, str],
    *,
    folder: Path | str | None,
    requested_model: str,
    device: str,
    edit_log: Sequence[str] = (),
    metrics: Mapping | None = None,
) -> dict:
    """What produced an export: data, model, clustering parameters, seed, hand edits, versions.

    Built on :func:`vlexplore.export.provenance` (library versions, UTC timestamp).
    """
    from vlexplore.export import provenance as library_provenance

    cfg = clustered.config
    sizes = edits.cluster_sizes(labels)
    record = library_provenance(
        folder=str(folder) if folder else None,
        images=int(emb.n),
        skipped=int(len(emb.collection.skipped)),
        model={
            "requested": requested_model,
            "id": emb.model_id,
            "description": emb.model_description,
            "device": getattr(emb.encoder, "device", device),
            "fallback_note": emb.fallback_note,
        },
        clustering={
            "method": cfg.method,
            "parameters": cfg.to_dict(),
            "seed": cfg.seed,
            "prototypes": list(clustered.prototypes),
        },
        clusters={str(c): {"name": edits.display_name(names, c), "size": s} for c, s in sizes.items()},
        hand_edits=list(edit_log),
        metrics=dict(metrics if metrics is not None else clustered.metrics),
    )
    record["versions"] = {**record.get("versions", {}), **app_versions()}
    return _jsonable(record)


def provenance_bytes(record: Mapping) -> bytes:
    return json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8")


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
        return edits.display_name(names, int(col))
    except (TypeError, ValueError):
        return str(col)
