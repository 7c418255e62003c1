"""A content-keyed, append-only disk store of vectors and strings (Parquet shards).

Each :class:`ShardStore` is one directory of Parquet files ("shards"). A shard has
a ``key`` string column plus named columns that hold either float32 vectors
(``fixed_size_list<float32>[d]``) or strings. Shards are only ever added, each in
one atomic step (temp file in the same directory, fsync, ``os.replace``), so a
reader never sees half a shard, an interrupted run keeps every batch it finished,
and several processes may write at once (shard names are unique).

Shard names start with a zero-padded nanosecond timestamp, so listing them in name
order lists them oldest first; when a key is stored twice the oldest row wins.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import CacheError, CacheWriteWarning, ConfigError
from .fsutil import atomic_write_text, exclusive, fsync_dir
from .shards import KEY
from .shards import empty_like as _empty_like
from .shards import is_vector as _is_vector
from .shards import iter_rows as _iter_rows
from .shards import read_columns as _read_columns
from .shards import read_keys as _read_keys
from .shards import to_table as _to_table

SHARD_SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"
#: Rows per Parquet row group: a lookup of a few keys in a big (compacted) shard reads only their groups.
ROW_GROUP_ROWS = 2048
#: How often a lookup starts over when shards vanish under it (another process compacting).
LOOKUP_ATTEMPTS = 8
#: The cache layout. 2: keys hash whole files (BLAKE3); 1 (no marker) hashed size + first and last 64 KiB.
CACHE_FORMAT = 2
FORMAT_FILE = "FORMAT"
COMPACT_LOCK = ".compact.lock"


class _Vanished(Exception):
    def __init__(self, path: Path) -> None:
        self.path = path


class _Damaged(Exception):
    def __init__(self, path: Path, cause: BaseException) -> None:
        self.path, self.cause = path, cause


class ShardStore:
    """An append-only set of Parquet shards in one directory.

    Args:
        directory: where the shards live; created on the first :meth:`append`.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"ShardStore({str(self.directory)!r})"

    def shard_paths(self) -> list[Path]:
        """The finished shards, oldest first (temp files are never listed)."""
        try:
            names = [e.name for e in os.scandir(self.directory) if e.name.endswith(SHARD_SUFFIX)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CacheError(f"cache folder {self.directory} cannot be read ({exc.strerror or exc})") from exc
        return [self.directory / n for n in sorted(names) if not n.startswith(".")]

    # ------------------------------------------------------------------ reading

    def lookup(
        self, keys: Sequence[str], columns: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray | list[str]]]:
        """Find stored rows by key.

        Only the ``key`` column of each shard is read to build the index, and only the
        requested columns of the shards that hold a hit. Shards that lack one of
        ``columns`` are not used. A damaged shard is set aside (renamed to a hidden
        ``.damaged-*`` file, with a warning) and its rows count as missing, so they are
        computed again once instead of blocking every later run; a shard that vanishes
        while it is read (another process compacted the store) makes the lookup start over.

        Args:
            keys: ``(n,)`` keys to find (repeats allowed).
            columns: the columns wanted.

        Returns:
            ``found``: bool ``(n,)``; ``values``: per column, the values of the found keys in key
            order — vectors as float32 ``(n_found, d)``, strings as ``list[str]``. A column no
            readable shard holds comes back as an empty list. Vector columns whose stored bits are
            equal (CLIP's ``image`` and ``joint``) come back as one shared array.

        Raises:
            CacheError: the store kept changing under the lookup (:data:`LOOKUP_ATTEMPTS` times).
        """
        for _ in range(LOOKUP_ATTEMPTS):
            try:
                return self._lookup_once(keys, columns)
            except _Vanished:
                continue
            except _Damaged as bad:
                self._set_aside(bad.path, bad.cause)
        raise CacheError(f"the cache folder {self.directory} kept changing while it was read; try again")

    def _lookup_once(
        self, keys: Sequence[str], columns: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray | list[str]]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = list(keys)
        columns = list(columns)
        found = np.zeros(len(keys), dtype=bool)
        values: dict[str, np.ndarray | list[str]] = {c: [] for c in columns}
        shards = self.shard_paths()
        if not keys or not shards:
            return found, values
        wanted = pa.array(keys, type=pa.string())
        shard_of = np.full(len(keys), -1, dtype=np.int64)  # key -> (shard number, row), first shard wins
        row_of = np.full(len(keys), -1, dtype=np.int64)
        kinds: dict[str, pa.DataType] = {}
        for s, path in enumerate(shards):
            try:
                schema, key_col = _read_keys(path)
            except FileNotFoundError as exc:
                raise _Vanished(path) from exc
            except (OSError, pa.ArrowException) as exc:
                self._set_aside(path, exc)
                continue
            if not all(c in schema.names for c in columns):
                continue
            for c in columns:
                kinds.setdefault(c, schema.field(c).type)
            open_ = np.flatnonzero(shard_of < 0)
            if not len(open_):
                continue
            asked = wanted if len(open_) == len(keys) else wanted.take(pa.array(open_))
            at = pc.index_in(asked, value_set=key_col).fill_null(-1).to_numpy(zero_copy_only=False)
            hit = at >= 0
            shard_of[open_[hit]], row_of[open_[hit]] = s, at[hit]

        found = shard_of >= 0
        hit_shard, hit_row = shard_of[found], row_of[found]
        if not len(hit_shard):
            for c, kind in kinds.items():
                values[c] = _empty_like(kind)
            return found, values

        by_shard = {
            int(s): np.flatnonzero(hit_shard == s) for s in np.unique(hit_shard)
        }  # positions among the hits, in key order
        n_hits = len(hit_shard)
        # each shard's values go straight into the result: memory is the result plus one row group
        vectors: dict[str, np.ndarray] = {}
        strings: dict[str, list] = {}
        for s, positions in by_shard.items():
            try:
                for idx, put in _iter_rows(shards[s], columns, hit_row[positions]):
                    put(positions[idx], vectors, strings, n_hits)
            except FileNotFoundError as exc:  # compacted away by another process since it was listed
                raise _Vanished(shards[s]) from exc
            except (OSError, pa.ArrowException) as exc:  # e.g. a damaged page header in a value column
                raise _Damaged(shards[s], exc) from exc
        for c in columns:
            values[c] = vectors[c] if c in vectors else strings[c]
        return found, values

    def _set_aside(self, path: Path, cause: BaseException) -> None:
        """Rename a damaged shard to a hidden name, so no later run reads it again (its rows are recomputed)."""
        target = path.with_name(f".damaged-{path.name}")
        try:
            os.replace(path, target)
            where = f"moved to {target.name}"
        except FileNotFoundError:
            return
        except OSError:  # a read-only cache: skipped in this process only
            where = "skipped"
        warnings.warn(
            f"cache shard {path} is damaged ({str(cause)[:120]}); {where}, its rows are computed again",
            stacklevel=3,
        )

    def contains(self, keys: Sequence[str]) -> np.ndarray:
        """Bool ``(n,)``: which ``keys`` some readable shard holds (only key columns are read)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = list(keys)
        for _ in range(LOOKUP_ATTEMPTS):
            present: set[str] = set()
            shards = self.shard_paths()
            if not keys or not shards:
                break
            wanted = pa.array(list(dict.fromkeys(keys)), type=pa.string())
            try:
                for path in shards:
                    try:
                        _, key_col = _read_keys(path)
                    except FileNotFoundError:
                        raise
                    except (OSError, pa.ArrowException) as exc:
                        self._set_aside(path, exc)
                        continue
                    present.update(key_col.filter(pc.is_in(key_col, value_set=wanted)).to_pylist())
            except FileNotFoundError:  # compacted away since it was listed: its rows are in a newer shard
                continue
            break
        else:
            raise CacheError(f"the cache folder {self.directory} kept changing while it was read; try again")
        return np.fromiter((k in present for k in keys), dtype=bool, count=len(keys))

    # ------------------------------------------------------------------ writing

    def append(self, keys: Sequence[str], columns: Mapping[str, np.ndarray | Sequence[str]]) -> Path | None:
        """Write one new shard atomically.

        Args:
            keys: ``(n,)`` keys.
            columns: per name, float vectors ``(n, d)`` or ``n`` strings.

        Returns:
            The new shard's path, or ``None`` when ``keys`` is empty.

        Raises:
            ConfigError: lengths differ, a column is named ``key``, or its values are neither. CacheError: writing failed.
        """
        keys = [str(k) for k in keys]
        if not keys:
            return None
        table = _to_table(keys, columns)
        return self._write(table, f"{_stamp()}-{uuid.uuid4().hex}{SHARD_SUFFIX}")

    def append_best_effort(
        self, keys: Sequence[str], columns: Mapping[str, np.ndarray | Sequence[str]]
    ) -> bool:
        """:meth:`append`.

        But a cache that cannot be written (read-only, full) only warns
        (:class:`~vlexplore.errors.CacheWriteWarning`) and returns ``False``: the caller keeps the values in
        memory. For derived caches (noun and sentence embeddings) that can always be computed again.
        """
        try:
            self.append(keys, columns)
            return True
        except CacheError as exc:
            warnings.warn(f"{exc}; computed in memory this time", CacheWriteWarning, stacklevel=2)
            return False

    def compact(self, max_rows: int = 32_768) -> Path | None:
        """Merge small shards of the same columns, oldest first, into shards of about ``max_rows`` rows.

        Shards already holding ``max_rows`` rows or more are left as they are. A key stored more than once
        keeps its oldest row, as :meth:`lookup` would read it. Each merged shard is written (atomically)
        before its members are deleted, so a reader never loses a row; memory stays at about
        ``max_rows`` rows (plus the set of keys seen).

        Only one process compacts a store at a time (an advisory lock); another one that asks meanwhile
        returns at once, and readers that meet a vanished shard start their lookup over.

        Returns:
            The path of the first merged shard, ``None`` when there was nothing to merge (or another
            process is compacting).
        """
        if max_rows < 1:
            raise ConfigError(f"max_rows must be >= 1, got {max_rows}")
        with exclusive(self.directory / COMPACT_LOCK) as held:
            return self._compact(max_rows) if held else None

    def _compact(self, max_rows: int) -> Path | None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        seen: set[str] = set()
        pending: dict[tuple, list[tuple[Path, pa.Table]]] = {}
        first: list[Path] = []

        def flush(members: list[tuple[Path, pa.Table]]) -> None:
            if len(members) >= 2:
                merged = pa.concat_tables([t for _, t in members])
                keep = []
                for i, k in enumerate(merged.column(KEY).to_pylist()):
                    if k not in seen:  # the oldest row of a key wins
                        seen.add(k)
                        keep.append(i)
                merged = merged.take(pa.array(keep, type=pa.int64()))
                stamp = members[0][0].name.split("-", 1)[0]  # sorts where the oldest member did
                out = self._write(merged, f"{stamp}-{uuid.uuid4().hex}{SHARD_SUFFIX}")
                for path, _ in members:
                    path.unlink(missing_ok=True)
                first.append(out)
            else:
                seen.update(k for _, t in members for k in t.column(KEY).to_pylist())
            members.clear()

        for path in self.shard_paths():
            try:
                if pq.ParquetFile(path).metadata.num_rows >= max_rows:
                    seen.update(_read_keys(path)[1].to_pylist())
                    continue
                table = _read_columns(path, None)
            except FileNotFoundError:
                continue
            except (OSError, pa.ArrowException) as exc:
                self._set_aside(path, exc)
                continue
            group = pending.setdefault(tuple((f.name, str(f.type)) for f in table.schema), [])
            group.append((path, table))
            if sum(t.num_rows for _, t in group) >= max_rows:
                flush(group)
        for group in pending.values():
            flush(group)
        return first[0] if first else None

    def _write(self, table, name: str) -> Path:
        import pyarrow.parquet as pq

        target = self.directory / name
        tmp_name = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=self.directory, prefix=".", suffix=TMP_SUFFIX, delete=False
            ) as fh:
                tmp_name = fh.name
                # Vectors neither compress nor dictionary-encode; plain pages read ~4x faster.
                strings = [f.name for f in table.schema if f.name != KEY and not _is_vector(f.type)]
                pq.write_table(
                    table,
                    fh,
                    compression="none",
                    use_dictionary=strings or False,
                    write_statistics=False,
                    row_group_size=ROW_GROUP_ROWS,
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, target)
        except OSError as exc:
            if tmp_name is not None:
                Path(tmp_name).unlink(missing_ok=True)
            raise CacheError(f"cannot write to the cache folder {self.directory} ({exc})") from exc
        fsync_dir(self.directory)
        return target


def store_for(cache_dir: str | Path | None, namespace: str) -> ShardStore:
    """The store of one namespace (e.g. a model id): ``cache_dir/<slug>-<8 hex of its hash>/``.

    The hash (of the namespace and :data:`CACHE_FORMAT`) keeps namespaces whose slugs coincide
    (``a/b`` and ``a:b``) apart, and stores of an older format out of reach; a cache root written by
    an older format is noticed once per process (:func:`check_format`).
    """
    if cache_dir is None:
        from .config import default_cache_dir

        cache_dir = default_cache_dir()
    check_format(cache_dir)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", namespace).strip("-.")[:64] or "store"
    digest = hashlib.blake2b(f"v{CACHE_FORMAT}:{namespace}".encode(), digest_size=4).hexdigest()
    return ShardStore(Path(cache_dir) / f"{slug}-{digest}")


_checked_roots: set[str] = set()


def check_format(cache_dir: str | Path) -> None:
    """Mark a cache root with :data:`CACHE_FORMAT`; say once when it holds an older format's data.

    Older stores are never read (their folder names differ) and never mixed with new keys: everything is
    computed again into new folders. The notice says which old folders may be deleted.
    """
    root = Path(cache_dir)
    if str(root) in _checked_roots:
        return
    _checked_roots.add(str(root))
    marker = root / FORMAT_FILE
    try:
        if marker.read_text().strip() == str(CACHE_FORMAT):
            return
    except OSError:
        pass
    try:
        old = sorted(e.name for e in os.scandir(root) if e.is_dir() and e.name != "numba")
    except OSError:
        old = []
    if old:
        warnings.warn(
            f"the cache in {root} was made by an older vlexplore (its keys hashed only part of each "
            f"file, so different images could share one); it is not used, and what is needed is "
            f"computed again. Its old folders can be deleted: {', '.join(old[:4])}"
            f"{' …' if len(old) > 4 else ''}",
            stacklevel=3,
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, f"{CACHE_FORMAT}\n")
    except OSError:  # a read-only cache: nothing is written anyway
        pass


# --------------------------------------------------------------------------- helpers

_last_stamp = [0]
_stamp_lock = threading.Lock()


def _stamp() -> str:
    """A zero-padded nanosecond time, strictly increasing within the process (coarse clocks repeat)."""
    with _stamp_lock:
        _last_stamp[0] = max(time.time_ns(), _last_stamp[0] + 1)
        return f"{_last_stamp[0]:020d}"
