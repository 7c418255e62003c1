"""The scan snapshot: what the last scan of a folder knew, so an unchanged folder is checked in numpy.

The stat index (:class:`vlexplore.collection._StatIndex`) answers one hashed stat key per file. For a
folder of many files that are all known, computing those keys and building the answer dict was most of
a scan. A *snapshot* keeps, per scanned folder, every file the stat index would answer for — its path,
the stat fields its key is made of (device, inode, size, mtime, ctime) and the index's values
(fingerprint, width, height, format) — in one ``.npz`` file beside the index shards. The next scan
compares its own stat fields with the snapshot's in numpy; only the files that differ go through the
stat index and, when it does not know them either, are read.

A snapshot holds nothing the stat index does not: only files the index knew or was just taught (so the
racy-timestamp rule, :data:`vlexplore.collection.RACY_NS`, applies to it too), under exactly the fields
of their stat key. So a hit gives what an index lookup would have given. It is written atomically (a
temp file, then a rename); one that cannot be read (damaged, written by another version, for another
folder) is ignored with one warning and the stat index answers instead, so it only ever costs speed.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

import numpy as np

from .errors import CacheWriteWarning
from .fsutil import atomic_writer
from .imageio import NOT_REGULAR, too_large

#: Where a store keeps its snapshots (a sub-folder its shard listing never reads), and their layout.
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_VERSION = 1
#: One file's stat fields: the stat key's (``dev``…``ctime``) and the mode (a hit must still be a regular file).
STAT_DTYPE = np.dtype(
    [("dev", "u8"), ("ino", "u8"), ("size", "i8"), ("mtime", "i8"), ("ctime", "i8"), ("mode", "u8")]
)
KEY_FIELDS = ("dev", "ino", "size", "mtime", "ctime")
_STAT_GETTER = attrgetter("st_dev", "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns", "st_mode")
_SEP = "\0"  # no path, fingerprint or format holds a NUL
_warned: set[str] = set()


def stat_fields(stats: list[os.stat_result | None]) -> np.ndarray:
    """The stat results as a :data:`STAT_DTYPE` array ``(n,)``; all zero where the stat failed (``None``)."""
    if all(st is not None for st in stats):
        return np.fromiter(map(_STAT_GETTER, stats), dtype=STAT_DTYPE, count=len(stats))
    zero = (0,) * len(STAT_DTYPE.names or ())
    rows = (zero if st is None else _STAT_GETTER(st) for st in stats)
    return np.fromiter(rows, dtype=STAT_DTYPE, count=len(stats))


@dataclass
class Snapshot:
    """What one scan knew of its folder's files, one entry per file, in the scan's (walk) order.

    Attributes:
        paths: each file's path, as the scan spelled it.
        fields: ``(n,)`` :data:`STAT_DTYPE`, the stat fields the values are valid for.
        fingerprint: ``(n,)`` object array of content keys.
        width: ``(n,)`` int64 (as displayed). height: likewise.
        format: ``(n,)`` object array of image formats.
    """

    paths: list[str]
    fields: np.ndarray
    fingerprint: np.ndarray
    width: np.ndarray
    height: np.ndarray
    format: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def match(self, paths: list[str], fields: np.ndarray) -> np.ndarray:
        """Int64 ``(n,)``: each file's entry in the snapshot when its path and stat key fields are the same, else -1."""
        if paths == self.paths:
            at = np.arange(len(paths), dtype=np.int64)
        else:
            where = {p: i for i, p in enumerate(self.paths)}
            at = np.fromiter((where.get(p, -1) for p in paths), dtype=np.int64, count=len(paths))
        found = at >= 0
        mine, theirs = fields[found], self.fields[at[found]]
        same = np.ones(len(mine), dtype=bool)
        for name in KEY_FIELDS:
            same &= mine[name] == theirs[name]
        at[np.flatnonzero(found)[~same]] = -1
        return at


@dataclass
class Results:
    """Per file of one scan, in walk order: its values, why it is skipped, and what a snapshot may keep of it.

    Attributes:
        fields: ``(n,)`` :data:`STAT_DTYPE`, this scan's stat of each file (a probed file's trusted ``fstat``).
        fingerprint: ``(n,)`` object array. width, height: ``(n,)`` int64. format: ``(n,)`` object array.
        nbytes: ``(n,)`` int64 size; mtime: ``(n,)`` int64 ``mtime_ns`` (as the item row reports them).
        reason: why each file is skipped, ``None`` for an item.
        known: ``(n,)`` bool, the values are the stat index's for ``fields`` (what a snapshot keeps).
    """

    fields: np.ndarray
    fingerprint: np.ndarray
    width: np.ndarray
    height: np.ndarray
    format: np.ndarray
    nbytes: np.ndarray
    mtime: np.ndarray
    reason: list[str | None]
    known: np.ndarray

    @classmethod
    def start(cls, fields: np.ndarray) -> Results:
        """Nothing known yet of the files whose stat fields are ``fields``."""
        n = len(fields)
        return cls(
            fields.copy(),
            np.full(n, "", dtype=object),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=np.int64),
            np.full(n, "", dtype=object),
            fields["size"].astype(np.int64),
            fields["mtime"].copy(),
            [None] * n,
            np.zeros(n, dtype=bool),
        )

    def take(self, rows: np.ndarray, snap: Snapshot, at: np.ndarray) -> None:
        """Files ``rows`` are the snapshot's entries ``at``."""
        self.fingerprint[rows] = snap.fingerprint[at]
        self.width[rows], self.height[rows] = snap.width[at], snap.height[at]
        self.format[rows] = snap.format[at]
        self.known[rows] = True

    def put(self, i: int, fingerprint: str, width: int, height: int, fmt: str) -> None:
        """File ``i`` is known (e.g. to the stat index) with these values."""
        self.fingerprint[i], self.width[i], self.height[i], self.format[i] = fingerprint, width, height, fmt
        self.known[i] = True

    def check(self, max_pixels: int) -> None:
        """The reason of each known file that cannot be used: not a regular file, or over the pixel limit."""
        regular = (self.fields["mode"] & 0o170000) == 0o100000
        for i in np.flatnonzero(self.known & ~regular).tolist():
            self.reason[i] = NOT_REGULAR
        big = self.known & regular & (self.width * self.height > max_pixels)
        for i in np.flatnonzero(big).tolist():
            self.reason[i] = too_large(int(self.width[i]), int(self.height[i]), max_pixels)

    def probed(self, i: int, info: dict | None, reason: str | None, trusted: os.stat_result | None) -> None:
        """File ``i`` was read: its values (known for a snapshot when its ``fstat`` is ``trusted``), or a reason."""
        self.reason[i] = reason
        if info is None:
            return
        self.put(i, info["fingerprint"], info["width"], info["height"], info["format"])
        self.nbytes[i], self.mtime[i] = info["bytes"], info["mtime_ns"]
        self.known[i] = trusted is not None
        if trusted is not None:
            self.fields[i] = _STAT_GETTER(trusted)

    def snapshot(self, paths: list[str]) -> Snapshot:
        """The known files as a :class:`Snapshot`."""
        rows = np.flatnonzero(self.known)
        return Snapshot(
            [paths[i] for i in rows.tolist()],
            self.fields[rows],
            self.fingerprint[rows],
            self.width[rows],
            self.height[rows],
            self.format[rows],
        )


def snapshot_path(directory: Path, root: str) -> Path:
    """The snapshot file of the folder ``root`` in a stat-index store ``directory``."""
    digest = hashlib.blake2b(os.fsencode(root), digest_size=12).hexdigest()
    return directory / SNAPSHOT_DIR / f"{digest}.npz"


def _join(texts: list[str] | np.ndarray) -> np.ndarray:
    blob = _SEP.join(texts).encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
    return np.frombuffer(blob, dtype=np.uint8)


def _split(blob: np.ndarray, count: int) -> list[str]:
    if not count:
        return []
    texts = blob.tobytes().decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()).split(_SEP)
    if len(texts) != count:
        raise ValueError(f"{len(texts)} names for {count} entries")
    return texts


def load_snapshot(path: Path, root: str) -> Snapshot | None:
    """The snapshot of ``root`` kept at ``path``; ``None`` when there is none or it cannot be used (one warning)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        count = int(arrays["count"][0])
        if int(arrays["version"][0]) != SNAPSHOT_VERSION or _split(arrays["root"], 1) != [root]:
            raise ValueError("written for another folder or by another version")
        fields = arrays["fields"]
        width, height = arrays["width"], arrays["height"]
        if fields.dtype != STAT_DTYPE or width.dtype != np.int64 or height.dtype != np.int64:
            raise ValueError("unexpected column types")
        if not len(fields) == len(width) == len(height) == count:
            raise ValueError("columns of different lengths")
        return Snapshot(
            _split(arrays["paths"], count),
            fields,
            np.array(_split(arrays["fingerprint"], count), dtype=object),
            width,
            height,
            np.array(_split(arrays["format"], count), dtype=object),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile) as exc:
        _warn_once(
            path, f"the scan snapshot {path} cannot be used ({str(exc)[:120]}); the stat index is used"
        )
        return None


def save_snapshot(path: Path, root: str, snapshot: Snapshot) -> None:
    """Write ``snapshot`` of ``root`` to ``path`` in one step; a cache that cannot be written only warns (once)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(
            path, "wb", durable=False
        ) as fh:  # a torn file fails its zip checksums: only slower
            np.savez(
                fh,
                version=np.array([SNAPSHOT_VERSION], dtype=np.int64),
                count=np.array([len(snapshot)], dtype=np.int64),
                root=_join([root]),
                paths=_join(snapshot.paths),
                fields=np.ascontiguousarray(snapshot.fields, dtype=STAT_DTYPE),
                fingerprint=_join(snapshot.fingerprint),
                width=np.asarray(snapshot.width, dtype=np.int64),
                height=np.asarray(snapshot.height, dtype=np.int64),
                format=_join(snapshot.format),
            )
    except OSError as exc:
        _warn_once(
            path,
            f"the scan snapshot could not be saved ({exc.strerror or exc}); the next scan uses the stat index",
            CacheWriteWarning,
        )


def _warn_once(path: Path, message: str, category: type[Warning] = UserWarning) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        warnings.warn(message, category, stacklevel=4)
