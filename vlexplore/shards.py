"""Parquet shard I/O for :mod:`vlexplore.cache`: reading keys and rows by row group, building tables.

A shard has a ``key`` string column plus named columns holding either float32 vectors
(``fixed_size_list<float32>[d]``) or strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import ConfigError

KEY = "key"


def read_keys(path: Path):
    """The ``key`` column of shard ``path`` and its vector columns' types."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    schema = pf.schema_arrow
    if KEY not in schema.names:
        raise OSError("no key column")
    return schema, pf.read(columns=[KEY]).column(KEY).combine_chunks()


def iter_rows(path: Path, columns: list[str], rows: np.ndarray):
    """Rows ``rows`` of ``columns``, one row group at a time: yields ``(indices into rows, table of those rows)``.

    Only row groups holding a wanted row are read, each dropped once its rows are taken, so memory stays
    at one row group (:data:`ROW_GROUP_ROWS` rows) beyond what the caller keeps.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, memory_map=False)
    md = pf.metadata
    sizes = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    group_of = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(group_of, kind="stable")
    groups, first = np.unique(group_of[order], return_index=True)
    bounds = np.append(first, len(order))
    for g, lo, hi in zip(groups.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()):
        idx = order[lo:hi]
        local = rows[idx] - starts[g]
        table = pf.read_row_group(g, columns=columns)
        if len(local) != table.num_rows or (local != np.arange(len(local))).any():
            table = table.take(pa.array(local))
        yield idx, table


def read_columns(path: Path, columns: list[str] | None):
    """Shard ``path`` as a pyarrow table (``columns`` only, when given)."""
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns, memory_map=False)


def is_vector(kind) -> bool:
    """Whether a column type is a fixed-size vector."""
    import pyarrow as pa

    return pa.types.is_fixed_size_list(kind)


def column_values(col):
    """An Arrow column → float32 ``(m, d)`` for fixed-size lists, else ``list[str]``."""
    col = col.combine_chunks()
    if is_vector(col.type):
        d = col.type.list_size
        return col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, d)
    return col.to_pylist()


def empty_like(kind) -> np.ndarray | list[str]:
    """An empty column of type ``kind``."""
    if is_vector(kind):
        return np.zeros((0, kind.list_size), dtype=np.float32)
    return []


def to_table(keys: list[str], columns: Mapping[str, np.ndarray | Sequence[str]]):
    """A pyarrow table of ``keys`` and ``columns`` (vectors as fixed-size lists)."""
    import pyarrow as pa

    arrays, names = [pa.array(keys, type=pa.string())], [KEY]
    for name, col in columns.items():
        if name == KEY:
            raise ConfigError(f"a cache column cannot be named {KEY!r}")
        if isinstance(col, np.ndarray) and col.dtype.kind in "fiu":
            if col.ndim != 2 or len(col) != len(keys):
                raise ConfigError(
                    f"cache column {name!r} must be a ({len(keys)}, d) array, got shape {col.shape}"
                )
            flat = pa.array(np.ascontiguousarray(col, dtype=np.float32).ravel(), type=pa.float32())
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, col.shape[1]))
        else:
            col = list(col)
            if len(col) != len(keys) or not all(isinstance(s, str) for s in col):
                raise ConfigError(
                    f"cache column {name!r} must be {len(keys)} strings or an (n, d) float array"
                )
            arrays.append(pa.array(col, type=pa.string()))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)
