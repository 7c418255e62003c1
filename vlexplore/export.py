"""The labelled table (one row per image) and its safe writers.

:func:`to_dataframe` builds the table with stable columns; :func:`write_table` writes
CSV or Parquet atomically, never overwrites unless asked, and neutralises spreadsheet
formula injection in every text cell of a CSV (captions and file names are untrusted; Parquet
and the provenance JSON keep the text as it is); :func:`csv_bytes` and :func:`parquet_bytes`
make the same files in memory (the app's downloads).

Provenance: :func:`build_provenance` is the one record of how a table was made (model, fallback
note, clustering config, counts, hand edits, versions, timestamp), for the CLI and the app alike;
:func:`provenance_path` the one naming rule (``<name>.provenance.json`` beside the table) and
:func:`write_provenance` writes it there.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError
from .fsutil import atomic_path, atomic_write_text
from .labels import default_name

#: Column order of :func:`to_dataframe` (``similarity`` only when given).
COLUMNS = (
    "path",
    "cluster_id",
    "cluster_label",
    "umap_x",
    "umap_y",
    "caption",
    "similarity",
    "folder_label",
    "fingerprint",
)
#: A text cell starting with one of these is read as a formula by spreadsheet programs.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: Inside a cell, a ``;``, ``,`` or tab then optional spaces then a formula character: a spreadsheet
#: that splits on that separator (semicolon locales, "tab" or "comma" import) starts a new cell there.
_FORMULA_AFTER_SEPARATOR = re.compile(r"([;,\t] *)(?=[=+\-@])")
TABLE_SUFFIXES = (".csv", ".parquet")
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


def _column(values, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if len(arr) != n:
        raise ConfigError(f"{name} has {len(arr)} entries but the collection has {n} images")
    return arr


def to_dataframe(collection, labels, names, coords, captions=None, similarity=None) -> pd.DataFrame:
    """One row per image of ``collection``, in its order.

    Args:
        collection: anything with an ``items`` DataFrame holding ``relpath``, ``folder_label``
            and ``fingerprint`` columns (a :class:`vlexplore.images.Collection`).
        labels: ``(n,)`` int cluster ids, ``-1`` = noise / other.
        names: cluster id → display name (missing ids get ``"cluster <id>"``, ``-1`` gets ``"other"``).
        coords: ``(n, 2)`` map coordinates.
        captions: ``n`` texts, or ``None`` (empty captions).
        similarity: ``(n,)`` cosine to the assigned prototype, or ``None`` (no column).

    Returns:
        DataFrame with columns ``path`` (relpath), ``cluster_id`` (int64), ``cluster_label``,
        ``umap_x``, ``umap_y`` (float32), ``caption``, [``similarity`` (float32)],
        ``folder_label``, ``fingerprint``.
    """
    items = collection.items
    n = len(items)
    missing = [c for c in ("relpath", "folder_label", "fingerprint") if c not in items.columns]
    if missing:
        raise ConfigError(f"collection.items lacks the column(s) {', '.join(missing)}")
    labels = _column(labels, n, "labels").astype(np.int64)
    coords = np.asarray(coords, dtype=np.float32)
    if coords.shape != (n, 2):
        raise ConfigError(f"coords must have shape ({n}, 2), got {coords.shape}")
    caps = (
        [""] * n
        if captions is None
        else ["" if c is None else str(c) for c in _column(list(captions), n, "captions")]
    )

    def name_of(c: int) -> str:
        return str(names[c]) if c in names else default_name(c)

    cols: dict[str, object] = {
        "path": items["relpath"].astype(str).to_numpy(),
        "cluster_id": labels,
        "cluster_label": [name_of(int(c)) for c in labels],
        "umap_x": coords[:, 0],
        "umap_y": coords[:, 1],
        "caption": caps,
    }
    if similarity is not None:
        cols["similarity"] = _column(similarity, n, "similarity").astype(np.float32)
    cols["folder_label"] = items["folder_label"].astype(str).to_numpy()
    cols["fingerprint"] = items["fingerprint"].astype(str).to_numpy()
    return pd.DataFrame(cols)


def safe_cell(value):
    """``value`` with a ``'`` before every part a spreadsheet could run as a formula.

    A string starting with ``= + - @``, tab or carriage return gets a leading ``'``; so does every
    segment that would start a cell if the text were split on ``;``, ``,`` or tab: the ``'`` goes
    right before the formula character (``x;=1+2.png`` → ``x;'=1+2.png``, ``a, -b`` → ``a, '-b``).
    Anything else (other strings, numbers, ``None``) is returned unchanged.
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_PREFIXES):
        value = "'" + value
    return _FORMULA_AFTER_SEPARATOR.sub(r"\1'", value)


def _formula_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_object_dtype(out[col]) or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(safe_cell)
    return out


def _exists_error(path: Path) -> ConfigError:
    return ConfigError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")


def write_table(
    df: pd.DataFrame, path: str | Path, *, overwrite: bool = False, formula_safe: bool = True
) -> Path:
    """Write ``df`` as CSV (UTF-8, no index) or Parquet, chosen by the suffix of ``path``.

    In a CSV every text column goes through :func:`safe_cell` first (``formula_safe=False`` skips
    that); Parquet is typed and keeps the text as it is (as the app's Parquet download does).
    The file appears complete or not at all (temp file + rename); missing parent folders are made.

    Args:
        df: the table (e.g. from :func:`to_dataframe`).
        path: ``*.csv`` or ``*.parquet``.
        overwrite: replace an existing file.
        formula_safe: neutralise spreadsheet formulas in the text cells of a CSV.

    Returns:
        The path written.

    Raises:
        ConfigError: unknown suffix, or the file exists and ``overwrite`` is false.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"cannot write {path.name!r}: the file name must end in .csv or .parquet")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give a file name ending in .csv or .parquet")
    if path.exists() and not overwrite:
        raise _exists_error(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        out = _formula_safe(df) if formula_safe else df
        # RFC 4180 line ends: with "\n" alone a cell holding a bare "\r" (a file name can) is left
        # unquoted, and spreadsheets split the row there — the rest of the cell becomes a new row whose
        # first cell escapes safe_cell ("x\r=HYPERLINK(...)").
        try:
            with atomic_path(path, overwrite=overwrite) as tmp:
                out.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\r\n")
        except FileExistsError:
            raise _exists_error(path) from None
    else:
        try:
            with atomic_path(path, overwrite=overwrite) as tmp:
                df.to_parquet(tmp, index=False)
        except FileExistsError:
            raise _exists_error(path) from None
    return path


def csv_bytes(df: pd.DataFrame, *, formula_safe: bool = True) -> bytes:
    """The CSV :func:`write_table` writes, in memory: UTF-8, RFC 4180 line ends, text cells formula-safe."""
    out = _formula_safe(df) if formula_safe else df
    return out.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """The Parquet file :func:`write_table` writes, in memory (typed, so no formula escaping needed)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def sanitize_filename(name: str, *, max_length: int = 120) -> str:
    """``name`` made usable as a file name on every common OS (e.g. a cluster name as a file stem).

    Unicode is normalised (NFKC); runs of white space become one space; path separators,
    control and reserved characters become ``_``; leading/trailing dots and spaces go;
    Windows device names (``CON``, ``NUL``…) get a ``_`` prefix; the result is cut to
    ``max_length`` characters; an empty result becomes ``"untitled"``.
    """
    text = unicodedata.normalize("NFKC", str(name))
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r'[\x00-\x1f\x7f<>:"/\\|?*]', "_", text).strip(" .")
    text = text[:max_length].rstrip(" .")
    if not text:
        return "untitled"
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return text


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
        emb: the :class:`vlexplore.Embedded` the table came from;
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
    )
    return to_jsonable(record)


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


def write_embeddings(
    collection,
    views: dict[str, np.ndarray],
    path: str | Path,
    *,
    model_id: str = "",
    captions=None,
    overwrite: bool = False,
) -> Path:
    """Write one Parquet file with a row per image.

    Columns: ``path``, ``fingerprint``, ``folder_label``, optional ``caption``, and one ``fixed_size_list<float32>[d]``
    column per view (``emb_image``, ``emb_joint``…).

    The file reads directly in pandas (``pd.read_parquet``), DuckDB (``SELECT * FROM 'file.parquet'``),
    Ray (``ray.data.read_parquet``) or Arrow; ``model_id`` is stored in the schema metadata.

    Raises:
        ConfigError: the name does not end in ``.parquet``, a view's row count differs, or the file
            exists and ``overwrite`` is false.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix.lower() != ".parquet":
        raise ConfigError(f"cannot write embeddings to {path.name!r}: the file name must end in .parquet")
    if path.exists() and not overwrite:
        raise _exists_error(path)
    n = len(collection)
    items = collection.items
    columns = {
        "path": pa.array(items["relpath"].astype(str).tolist(), pa.string()),
        "fingerprint": pa.array(items["fingerprint"].astype(str).tolist(), pa.string()),
        "folder_label": pa.array(items["folder_label"].astype(str).tolist(), pa.string()),
    }
    if captions is not None:
        columns["caption"] = pa.array([str(c) for c in _column(captions, n, "captions")], pa.string())
    for view, array in views.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.ndim != 2 or len(array) != n:
            raise ConfigError(f"view {view!r} has shape {array.shape}, expected ({n}, d)")
        flat = pa.array(array.ravel(), type=pa.float32())
        columns[f"emb_{view}"] = pa.FixedSizeListArray.from_arrays(flat, array.shape[1])
    table = pa.table(columns).replace_schema_metadata({"vlexplore.model_id": model_id})
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    except FileExistsError:
        raise _exists_error(path) from None
    return path
