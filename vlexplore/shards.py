"""Parquet shard I/O for :mod:`vlexplore.cache`: reading keys and rows by row group, building tables.

A shard has a ``key`` string column plus named columns holding either float32 vectors
(``fixed_size_list<float32>[d]``) or strings.
"""

from __future__ import annotations

import functools
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


def _groups(md, rows: np.ndarray):
    """Rows ``rows`` of a shard by row group: yields ``(group, indices into rows, rows within the group)``."""
    sizes = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    group_of = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(group_of, kind="stable")
    groups, first = np.unique(group_of[order], return_index=True)
    bounds = np.append(first, len(order))
    for g, lo, hi in zip(groups.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()):
        idx = order[lo:hi]
        yield g, idx, rows[idx] - starts[g]


def iter_rows(path: Path, columns: list[str], rows: np.ndarray):
    """Rows ``rows`` of ``columns``, one row group at a time: yields ``(indices into rows, put)``.

    ``put(at, vectors, strings, n_hits)`` copies that group's rows into the result slots ``at``:
    vectors into ``vectors[c]`` (float32 ``(n_hits, d)``, made on first use), strings into
    ``strings[c]`` (``n_hits`` items). Only row groups holding a wanted row are read, so memory stays
    at one row group (:data:`ROW_GROUP_ROWS` rows) beyond the result. Plain float32 vector chunks are
    copied straight from the file (:mod:`vlexplore.pages`; a whole row group wanted in order lands in
    place), the rest is read with pyarrow. Two vector columns first met in the same shard share one
    array for as long as their stored bits are equal (CLIP's ``image`` and ``joint``); the first row that
    differs gives the later one its own copy.

    ``put`` raises CacheError when a vector column has another length than in an earlier shard, and
    OSError or ``pyarrow.ArrowException`` when the shard cannot be read (damaged, vanished).
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, memory_map=False)
    with open(path, "rb", buffering=0) as fh:
        reader = _Reader(pf, fh, columns)
        for g, idx, local in _groups(pf.metadata, rows):
            yield idx, functools.partial(reader.put, g, local)


def _take(table, local: np.ndarray):
    import pyarrow as pa

    if len(local) != table.num_rows or (local != np.arange(len(local))).any():
        table = table.take(pa.array(local))
    return table


class _Reader:
    """One shard's row groups, copied into a lookup's result (see :func:`iter_rows`)."""

    def __init__(self, pf, fh, columns: list[str]) -> None:
        from . import pages

        self.pf, self.fh, self.md = pf, fh, pf.metadata
        self.direct: dict[str, tuple[int, int, int]] = {}  # column -> (leaf, max definition level, d)
        for c in columns:
            kind = pf.schema_arrow.field(c).type
            leaf = pages.leaf_of(self.md.schema, kind, c)
            if leaf is not None:
                self.direct[c] = (leaf, self.md.schema.column(leaf).max_definition_level, kind.list_size)
        self.others = [c for c in columns if c not in self.direct]
        self.block = np.empty(0, dtype=np.float32)
        self.ready = False

    def _prepare(self, vectors: dict[str, np.ndarray], n_hits: int) -> None:
        """Make the result arrays of the direct columns (columns first made here may share one)."""
        fresh: list[str] = []
        for c, (_, _, d) in self.direct.items():
            if c not in vectors:
                twin = next((o for o in fresh if vectors[o].shape[1] == d), None)
                vectors[c] = vectors[twin] if twin is not None else np.empty((n_hits, d), dtype=np.float32)
                fresh.append(c)
            _result(vectors, c, n_hits, d)
        self.ready = True

    def put(
        self,
        g: int,
        local: np.ndarray,
        dst: np.ndarray,
        vectors: dict[str, np.ndarray],
        strings: dict[str, list],
        n_hits: int,
    ) -> None:
        """Copy rows ``local`` of row group ``g`` into the result slots ``dst``."""
        from . import pages

        if not self.ready:
            self._prepare(vectors, n_hits)
        n = self.md.row_group(g).num_rows
        whole = len(local) == n and _is_range(local, 0) and _is_range(dst, int(dst[0]))
        slow = list(self.others)
        written: set[int] = set()  # ids of the arrays written for this group
        for c, (leaf, max_def, d) in self.direct.items():
            shared = id(vectors[c]) in written
            if whole and not shared:
                target = vectors[c][int(dst[0]) : int(dst[0]) + n].reshape(-1)
            else:
                if self.block.size < n * d:
                    self.block = np.empty(n * d, dtype=np.float32)
                target = self.block[: n * d]
            try:
                pages.read_chunk(self.fh, self.md.row_group(g).column(leaf), max_def, d, target)
            except pages.Unsupported:
                slow.append(c)
                continue
            got = target.reshape(n, d) if whole else target.reshape(n, d)[local]
            if shared:
                if _same_bits(vectors[c][int(dst[0]) : int(dst[0]) + n] if whole else vectors[c][dst], got):
                    continue
                _own(vectors, c)
            if not whole or shared:
                vectors[c][dst] = got
            written.add(id(vectors[c]))
        if not slow:
            return
        table = _take(self.pf.read_row_group(g, columns=slow), local)
        for c in slow:
            part = column_values(table.column(c))
            if isinstance(part, np.ndarray):
                _result(vectors, c, n_hits, part.shape[1])
                _own(vectors, c)
                vectors[c][dst] = part
            else:
                column = strings.setdefault(c, [None] * n_hits)
                for i, v in zip(dst.tolist(), part):
                    column[i] = v


def _own(vectors: dict[str, np.ndarray], c: str) -> None:
    """Give ``vectors[c]`` its own copy when it shares its array with another column."""
    if any(o != c and v is vectors[c] for o, v in vectors.items()):
        vectors[c] = vectors[c].copy()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two float32 arrays hold the same bits (NaN equals itself, -0.0 differs from 0.0)."""
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _result(vectors: dict[str, np.ndarray], c: str, n_hits: int, d: int) -> np.ndarray:
    """``vectors[c]``, made float32 ``(n_hits, d)`` on first use; a different ``d`` later is an error."""
    from .errors import CacheError

    if c not in vectors:
        vectors[c] = np.empty((n_hits, d), dtype=np.float32)
    elif vectors[c].shape[1] != d:
        raise CacheError(
            f"cache column {c!r} holds vectors of different lengths {sorted({vectors[c].shape[1], d})}"
        )
    return vectors[c]


def _is_range(a: np.ndarray, start: int) -> bool:
    """Whether ``a`` is ``start, start + 1, …``."""
    return (
        bool(len(a))
        and int(a[0]) == start
        and int(a[-1]) == start + len(a) - 1
        and bool((np.diff(a) == 1).all())
    )


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
