"""The labelled table (one row per image) and its safe writers.

:func:`to_dataframe` builds the table with stable columns; :func:`write_table` writes
CSV or Parquet atomically, never overwrites unless asked, and neutralises spreadsheet
formula injection in every text cell of a CSV (captions and file names are untrusted; Parquet
and the provenance JSON keep the text as it is); :func:`csv_bytes` and :func:`parquet_bytes`
make the same files in memory (the app's downloads).

Provenance: :func:`build_provenance` is the one record of how a table was made (model, fallback
note, clustering config, counts, hand edits, versions, timestamp), for the CLI and the app alike;
:func:`provenance_path` the one naming rule (``<name>.provenance.json`` beside the table) and
:func:`write_provenance` writes it there (all in :mod:`vlexplore.provenance`, re-exported here).
"""

from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError
from .fsutil import atomic_path
from .labels import default_name
from .provenance import (  # noqa: F401  (re-exported: provenance lived here)
    DUPLICATE_THRESHOLD,
    OPTIONAL_PACKAGES,
    OUTLIER_K,
    build_provenance,
    json_text,
    provenance,
    provenance_path,
    to_jsonable,
    versions,
    write_provenance,
)

#: Up to this many images the app's Export page adds the curation columns by default; above, when asked for
#: (they need every image's nearest neighbours: 70,000 × 512 took minutes on 2 CPU cores).
CURATION_AUTO_MAX = 20_000

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
    "duplicate_group",
    "outlier_score",
    "confident",
)
#: The curation columns (:func:`vlexplore.curate.curation_columns`), each only when given.
CURATION_COLUMNS = ("duplicate_group", "outlier_score", "confident")

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


def to_dataframe(
    collection, labels, names, coords, captions=None, similarity=None, curation=None
) -> pd.DataFrame:
    """One row per image of ``collection``, in its order.

    Args:
        collection: anything with an ``items`` DataFrame holding ``relpath``, ``folder_label``
            and ``fingerprint`` columns (a :class:`vlexplore.images.Collection`).
        labels: ``(n,)`` int cluster ids, ``-1`` = noise / other.
        names: cluster id → display name (missing ids get ``"cluster <id>"``, ``-1`` gets ``"other"``).
        coords: ``(n, 2)`` map coordinates.
        captions: ``n`` texts, or ``None`` (empty captions).
        similarity: ``(n,)`` cosine to the assigned prototype, or ``None`` (no column).
        curation: ``{"duplicate_group": Int64 (n,), "outlier_score": (n,), "confident": boolean (n,)}``
            (missing values = empty cells), or ``None`` (no such columns).

    Returns:
        DataFrame with columns ``path`` (relpath), ``cluster_id`` (int64), ``cluster_label``,
        ``umap_x``, ``umap_y`` (float32), ``caption``, [``similarity`` (float32)],
        ``folder_label``, ``fingerprint``, [``duplicate_group``, ``outlier_score``, ``confident``].
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
    for name in CURATION_COLUMNS:
        if curation is not None and name in curation:
            values = curation[name]
            if len(values) != n:
                raise ConfigError(f"{name} has {len(values)} entries but the collection has {n} images")
            cols[name] = values
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
