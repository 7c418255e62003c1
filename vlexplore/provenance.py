"""Provenance: the one record of how a labelled table was made, and where it is written.

:func:`build_provenance` records model, fallback note, clustering config, counts, hand edits, the
users' own captions, the curation columns' settings, versions and a timestamp, for the CLI and the app
alike; :func:`provenance_path` is the one naming rule (``<name>.provenance.json`` beside the table) and
:func:`write_provenance` writes it there. (Re-exported by :mod:`vlexplore.export`.)
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from .curate import DEFAULT_THRESHOLD as DUPLICATE_THRESHOLD
from .fsutil import atomic_write_text
from .labels import default_name

#: The outlier score's neighbour (:func:`vlexplore.curate.curation_columns`).
OUTLIER_K = 10


#: Packages whose versions a provenance record lists besides vlexplore, Python, numpy, scikit-learn, pandas.
OPTIONAL_PACKAGES = (
    ("torch", "torch"),
    ("umap-learn", "umap"),
    ("open-clip-torch", "open_clip"),
    ("timm", "timm"),
    ("sentence-transformers", "sentence_transformers"),
    ("plotly", "plotly"),
    ("streamlit", "streamlit"),
)


def _version(dist: str, module: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        mod = sys.modules.get(module)
        return getattr(mod, "__version__", None) if mod is not None else None


def versions(optional: Iterable[tuple[str, str]] = OPTIONAL_PACKAGES) -> dict[str, str]:
    """Python's and the packages' versions.

    Vlexplore, numpy, scikit-learn, pandas, then each ``(distribution, module)`` of ``optional`` (``"not
    installed"`` when it is not).
    """
    import sklearn

    from . import __version__

    out = {
        "vlexplore": _version("vlexplore", "vlexplore") or __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
    }
    for dist, module in optional:
        out[dist] = _version(dist, module) or "not installed"
    return out


def to_jsonable(value):
    """``value`` made of what JSON holds.

    Dict keys as text, tuples/sets/arrays as lists, numpy scalars as numbers, non-finite floats as ``None``,
    paths as text, configs (``to_dict``) as dicts, else ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return to_jsonable(value.to_dict())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, set | frozenset):
        return [to_jsonable(v) for v in sorted(value, key=str)]
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def json_text(record) -> str:
    """``record`` as indented JSON (UTF-8 text as it is), through :func:`to_jsonable`; ends with a newline."""
    return json.dumps(to_jsonable(record), indent=2, ensure_ascii=False) + "\n"


def provenance(**info) -> dict:
    """``info`` plus what a reader needs to reproduce it: versions (:func:`versions`) and a UTC timestamp.

    Returns:
        ``{**info, "versions": {"vlexplore", "python", "numpy", "scikit-learn", "pandas", "torch",
        "umap-learn", …}, "created_utc": ISO 8601}``.
    """
    return {
        **info,
        "versions": versions(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def build_provenance(
    emb,
    clustered,
    *,
    labels: np.ndarray | None = None,
    names: Mapping[int, str] | None = None,
    edits: Sequence[str] = (),
    metrics: Mapping | None = None,
    requested_model: str | None = None,
    device: str | None = None,
) -> dict:
    """The record of how a labelled table was made, the same from the CLI, the app and a notebook.

    Args:
        emb: the :class:`vlexplore.Embedded` the table came from.
        clustered: its :class:`vlexplore.Clustered`.
        labels: the cluster ids as edited by hand (default: ``clustered``'s own).
        names: the cluster names as edited by hand (default: ``clustered``'s own).
        edits: one line per hand edit, in order.
        metrics: the scores to record (default: ``clustered.metrics``; after edits, the edited ones).
        requested_model: the model asked for, when it may differ from the one used (fallback).
        device: where the model ran, when the encoder does not say.

    Returns:
        ``{"folder", "model": {"id", "description", "requested", "device", "fallback_note"},
        "cluster": <ClusterConfig as dict>, "prototypes", "counts": {"images", "skipped", "clusters"},
        "clusters": {id: {"name", "size"}}, "edits", "metrics", "versions", "created_utc"}``, JSON-ready.
    """
    labels = np.asarray(clustered.labels if labels is None else labels, dtype=np.int64)
    names = dict(clustered.names if names is None else names)
    ids, sizes = np.unique(labels, return_counts=True)
    collection = emb.collection
    root = getattr(collection, "root", None)
    record = provenance(
        folder=str(root) if root is not None else None,
        model={
            "id": emb.model_id,
            "description": emb.model_description,
            "requested": requested_model if requested_model is not None else emb.model_id,
            "device": getattr(emb.encoder, "device", None) or device,
            "fallback_note": emb.fallback_note,
        },
        cluster=clustered.config.to_dict(),
        prototypes=list(clustered.prototypes),
        counts={
            "images": int(emb.n),
            "skipped": len(getattr(collection, "skipped", ())),
            "clusters": int(sum(1 for c in ids if c != -1)),
        },
        clusters={
            str(int(c)): {
                "name": str(names[int(c)]) if int(c) in names else default_name(int(c)),
                "size": int(n),
            }
            for c, n in zip(ids, sizes)
        },
        edits=list(edits),
        metrics=dict(clustered.metrics if metrics is None else metrics),
        captions=_caption_record(collection),
        curation={
            "duplicate_group": f"exact content key, or image cosine >= {DUPLICATE_THRESHOLD}",
            "outlier_score": f"cosine distance to the {OUTLIER_K}th nearest other image",
            "confident": "neighbourhood consistency of the representation"
            if isinstance((clustered.info or {}).get("confident"), np.ndarray)
            else None,
        },
    )
    return to_jsonable(record)


def _caption_record(collection) -> dict:
    """Where the users' own captions came from (sources with counts) and what was wrong with them."""
    user = getattr(collection, "user_captions", None)
    if user is None:
        return {"user": 0, "sources": {}, "notes": []}
    return {"user": len(user.texts), "sources": dict(user.sources), "notes": list(user.notes)}


def provenance_path(table_path: str | Path) -> Path:
    """Where the provenance of a table goes: ``clusters.csv`` → ``clusters.provenance.json``."""
    path = Path(table_path)
    return path if path.suffix.lower() == ".json" else path.with_suffix(".provenance.json")


def write_provenance(path: str | Path, info: dict) -> Path:
    """Write ``info`` (completed by :func:`provenance` unless it already was) as JSON beside a table.

    Args:
        path: the table's path (or a ``.json`` path to write to directly).
        info: what to record (e.g. :func:`build_provenance`); configs with ``to_dict``, numpy values
            and paths are converted (:func:`to_jsonable`).

    Returns:
        The JSON file written (atomically; replaces an earlier one).
    """
    record = dict(info) if "created_utc" in info else provenance(**info)
    target = provenance_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json_text(record), durable=True)
    return target
