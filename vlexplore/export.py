"""The labelled table (one row per image) and its safe writers.

:func:`to_dataframe` builds the table with stable columns; :func:`write_table` writes
CSV or Parquet atomically, never overwrites unless asked, and neutralises spreadsheet
formula injection in every text cell of a CSV (captions and file names are untrusted; Parquet
and the provenance JSON keep the text as it is).
:func:`write_provenance` records how the table was made, beside it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError

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
        if c in names:
            return str(names[c])
        return "other" if c == -1 else f"cluster {c}"

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


def _atomic_write(path: Path, write, *, overwrite: bool = True) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    With ``overwrite=False`` the finished file is hard-linked into place instead, which fails when
    ``path`` appeared meanwhile (no check-then-write race); file systems without hard links fall back
    to a last check and a rename.
    """
    # the temp name must fit NAME_MAX (255 bytes) even when ``path.name`` nearly does
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ConfigError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it") from None
        except OSError:  # no hard links here (FAT, some network shares)
            if path.exists():
                raise ConfigError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it") from None
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
        raise ConfigError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        out = _formula_safe(df) if formula_safe else df
        # RFC 4180 line ends: with "\n" alone a cell holding a bare "\r" (a file name can) is left
        # unquoted, and spreadsheets split the row there — the rest of the cell becomes a new row whose
        # first cell escapes safe_cell ("x\r=HYPERLINK(...)").
        _atomic_write(path, lambda tmp: out.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\r\n"),
                      overwrite=overwrite)
    else:
        _atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False), overwrite=overwrite)
    return path


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


def _version(dist: str, module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        mod = sys.modules.get(module)
        return getattr(mod, "__version__", None) if mod is not None else None


def provenance(**info) -> dict:
    """``info`` plus what a reader needs to reproduce it: library versions and a UTC timestamp.

    Returns:
        ``{**info, "versions": {"vlexplore", "python", "numpy", "scikit-learn", "pandas",
        ["torch", "umap-learn" when imported]}, "created_utc": ISO 8601}``.
    """
    import sklearn

    versions = {
        "vlexplore": _version("vlexplore", "vlexplore") or "unknown",
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
    }
    for dist, module in (("torch", "torch"), ("umap-learn", "umap"), ("open-clip-torch", "open_clip")):
        if module in sys.modules:
            versions[dist] = _version(dist, module) or "unknown"
    return {
        **info,
        "versions": versions,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _json_default(obj):
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    return str(obj)


def provenance_path(table_path: str | Path) -> Path:
    """Where the provenance of a table goes: ``clusters.csv`` → ``clusters.provenance.json``."""
    path = Path(table_path)
    return path if path.suffix.lower() == ".json" else path.with_suffix(".provenance.json")


def write_provenance(path: str | Path, info: dict) -> Path:
    """Write ``info`` (completed by :func:`provenance` unless it already was) as JSON beside a table.

    Args:
        path: the table's path (or a ``.json`` path to write to directly).
        info: what to record (folder, model id, cluster config, counts…); configs with
            ``to_dict``, numpy values and paths are converted.

    Returns:
        The JSON file written (atomically; replaces an earlier one).
    """
    record = dict(info) if "created_utc" in info else provenance(**info)
    target = provenance_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, ensure_ascii=False, default=_json_default)

    def write(tmp: str) -> None:
        Path(tmp).write_text(text + "\n", encoding="utf-8")

    _atomic_write(target, write)
    return target


def write_embeddings(
    collection, views: dict[str, np.ndarray], path: str | Path, *, model_id: str = "",
    captions=None, overwrite: bool = False,
) -> Path:
    """Write one Parquet file with a row per image: ``path``, ``fingerprint``, ``folder_label``, optional
    ``caption``, and one ``fixed_size_list<float32>[d]`` column per view (``emb_image``, ``emb_joint``…).

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
        raise ConfigError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
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
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"), overwrite=overwrite)
    return path
