"""Scanning image folders into a :class:`Collection`.

A scan lists the files with an image extension, reads each new file once to hash its whole
content (the key every cache uses) and parse its header (size, format, orientation), and
remembers ``(path, size, mtime, ctime, inode) → key, size, format`` in a *stat index* in the
cache, so reopening a folder whose files have not changed reads no file at all. Every file with
an image extension ends up either in ``items`` or, with a reason a person can read, in
``skipped``; one bad file never stops a scan. Decoding happens later
(:func:`vlexplore.imageio.open_image`), which may still fail (a truncated JPEG has a good header).
"""

from __future__ import annotations

import os
import stat
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import numpy as np
import pandas as pd
from PIL import Image

from .errors import CacheError, CacheWriteWarning, ConfigError, ImageReadError
from .imageio import (
    DEFAULT_MAX_PIXELS,
    HEIF_EXTENSIONS,
    HEIF_SUPPORT,
    NO_HEIF,
    NOT_REGULAR,
    READ_ERRORS,
    hash_stream,
    open_nonblocking,
    orientation,
    reason_for,
    too_large,
)
from .scanfast import Results, load_snapshot, save_snapshot, snapshot_path, stat_fields
from .sidecar import UserCaptions, read_user_captions
from .types import Progress
from .walk import list_image_files

ITEM_COLUMNS = (
    "relpath",
    "path",
    "folder_label",
    "bytes",
    "mtime_ns",
    "width",
    "height",
    "format",
    "fingerprint",
)
SKIPPED_COLUMNS = ("relpath", "reason")
_INT_COLUMNS = frozenset({"bytes", "mtime_ns", "width", "height"})
_SCAN_BLOCK = 4096  # files probed per thread-pool round (bounds memory for huge folders)
#: The stat index's namespace in the cache, and the columns it keeps per file.
STAT_INDEX = "stat-index"
_INDEX_COLUMNS = ("fingerprint", "width", "height", "format")
#: A file modified this recently is not remembered in the stat index: file-system clocks are coarse, so a
#: write in the same tick as the scan could leave size and times unchanged (git's "racily clean" rule).
RACY_NS = 2_000_000_000
#: The stat index is compacted once a folder's scans have left more shards than this.
_INDEX_COMPACT_ABOVE = 32


@dataclass
class Collection:
    """The images of a folder.

    Attributes:
        root: the scanned folder.
        items: one row per readable image, columns :data:`ITEM_COLUMNS`, sorted by ``relpath``.
        skipped: files with an image extension that cannot be used, columns ``relpath``, ``reason``.
        user_captions: captions the user already has (sidecar ``.txt`` files, a caption table;
            :mod:`vlexplore.sidecar`), keyed by ``relpath``, with one note per problem met reading them.
    """

    root: Path
    items: pd.DataFrame
    skipped: pd.DataFrame
    user_captions: UserCaptions = field(default_factory=UserCaptions)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Collection(root={str(self.root)!r}, {len(self.items)} images, {len(self.skipped)} skipped)"

    @property
    def fingerprints(self) -> list[str]:
        """Content fingerprints, one per item."""
        return self.items["fingerprint"].tolist()

    @property
    def paths(self) -> list[str]:
        """Absolute paths, one per item."""
        return self.items["path"].tolist()

    @property
    def captions(self) -> list[str]:
        """The user's own caption of each item, ``""`` where it has none (see ``user_captions``)."""
        texts = self.user_captions.texts
        return [texts.get(r, "") for r in self.items["relpath"]] if texts else [""] * len(self.items)

    @property
    def labels(self) -> np.ndarray | None:
        """Folder labels ``str (n,)`` when every item sits in a sub-folder and there are ≥ 2 of them, else ``None``."""
        if not len(self.items):
            return None
        labels = self.items["folder_label"]
        if (labels == "").any() or labels.nunique() < 2:
            return None
        return labels.to_numpy(dtype=str)

    def without(self, relpaths: Mapping[str, str]) -> Collection:
        """A new collection with the given items moved to ``skipped``.

        Args:
            relpaths: ``relpath → reason`` for each item to move.

        Raises:
            ConfigError: when a relpath is not among the items.
        """
        if not relpaths:
            return self
        mask = self.items["relpath"].isin(list(relpaths))
        unknown = sorted(set(relpaths) - set(self.items.loc[mask, "relpath"]))
        if unknown:
            raise ConfigError(f"cannot skip {unknown[:3]}: not among the collection's items")
        moved = _skipped_frame([(r, relpaths[r]) for r in self.items.loc[mask, "relpath"]])
        skipped = pd.concat([self.skipped, moved], ignore_index=True)
        skipped = skipped.sort_values("relpath", kind="stable").reset_index(drop=True)
        return Collection(
            self.root, self.items.loc[~mask].reset_index(drop=True), skipped, self.user_captions
        )


def _text_series(values: list | np.ndarray) -> pd.Series:
    try:
        return pd.Series(values, dtype="str")
    except UnicodeEncodeError:  # a path that is not valid UTF-8 (Arrow strings refuse it): kept as given
        return pd.Series(values, dtype=object)


def _skipped_frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series([_printable(r[i]) for r in rows], dtype="str") for i, c in enumerate(SKIPPED_COLUMNS)}
    )


def _printables(texts: list[str]) -> list[str]:
    """:func:`_printable` of each text (one check for the usual all-UTF-8 case)."""
    try:
        "\0".join(texts).encode("utf-8")
        return texts
    except UnicodeEncodeError:
        return [_printable(t) for t in texts]


def _printable(text: str) -> str:
    r"""``text`` as valid UTF-8: the bytes of a non-UTF-8 file name (surrogate escapes) shown as ``\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------- scanning


def scan_folder(
    root: str | Path,
    *,
    recursive: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cache_dir: str | Path | None = None,
    captions: str | Path | Mapping[str, str] | None = None,
    on_progress: Progress = None,
) -> Collection:
    """List the images under ``root``, each with the content key of its whole file.

    Hidden files and folders (names starting with ``.``) and files without an image
    extension are ignored silently. Symbolic links are followed only when their target
    stays inside ``root``; a folder reached twice (a link loop) is visited once. Files the
    stat index knows unchanged are not opened; new or changed ones are read once.

    Args:
        root: the folder to scan.
        recursive: descend into sub-folders.
        max_pixels: images with more pixels are skipped (decompression bomb guard).
        cache_dir: the cache root holding the stat index (:func:`vlexplore.config.default_cache_dir`
            when ``None``). A read-only or full cache only costs speed: the scan warns once and goes on.
        captions: a caption table (``.csv``/``.jsonl`` with ``path, caption``) or ``{relpath: caption}``
            that wins over the folder's own ``captions.csv``/``captions.jsonl`` and sidecar ``.txt`` files
            (all read automatically; :mod:`vlexplore.sidecar`). Each problem met: one warning line.
        on_progress: called with ``(files checked, files found)`` while files are checked.

    Returns:
        A :class:`Collection`; ``width``/``height`` are as displayed (after EXIF orientation).

    Raises:
        ConfigError: when ``root`` is not a readable folder, or ``captions`` names an unusable file.
    """
    if isinstance(root, str) and not root.strip():  # Path("") would be the working directory
        raise ConfigError("no folder given; give the path of a folder that holds images")
    root_path = Path(root).expanduser().absolute()
    try:
        is_dir = root_path.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise ConfigError(f"{str(root)[:200]!r} cannot be used as a folder ({exc.strerror or exc})") from exc
    if not is_dir:
        raise ConfigError(f"{str(root)!r} is not a folder; give the path of a folder that holds images")
    try:
        with os.scandir(root_path):
            pass
    except OSError as exc:
        raise ConfigError(f"folder {str(root)!r} cannot be read ({exc.strerror or exc})") from exc

    files, skipped = list_image_files(str(root_path), recursive)
    paths = [path for _, path in files]
    stats = _stat_all(paths)  # cheap: no thread pool (its overhead was most of a warm scan)
    res = Results.start(stat_fields(stats))
    index = _StatIndex(cache_dir)
    snap_file = snapshot_path(index.store.directory, str(root_path))
    snap = load_snapshot(snap_file, str(root_path))
    at = np.full(len(files), -1, dtype=np.int64) if snap is None else snap.match(paths, res.fields)
    missing = [i for i, st in enumerate(stats) if st is None]
    at[missing] = -1
    if snap is not None:
        res.take(np.flatnonzero(at >= 0), snap, at[at >= 0])
    rest = [i for i in np.flatnonzero(at < 0).tolist() if stats[i] is not None]
    stat_keys = [_stat_key(paths[i], stats[i]) for i in rest]  # type: ignore[arg-type]
    hits = index.lookup(stat_keys)
    todo: list[int] = []
    for i, key in zip(rest, stat_keys):
        entry = hits.get(key)
        if entry is None:
            todo.append(i)
        else:
            fingerprint, width, height, fmt = entry
            res.put(i, fingerprint, int(width), int(height), fmt)
    res.check(max_pixels)
    for i in missing:
        res.reason[i] = "file cannot be read (it disappeared or cannot be reached)"
    learned: dict[str, tuple[str, str, str, str]] = {}
    done = len(files) - len(todo)
    probes = _map_in_blocks(
        lambda i: _probe(files[i][1], max_pixels), todo, min(8, (os.cpu_count() or 1) + 4)
    )
    for n, (i, (info, reason, trusted)) in enumerate(zip(todo, probes), start=1):
        res.probed(i, info, reason, trusted)
        if info is not None and trusted is not None:
            learned[_stat_key(files[i][1], trusted)] = (
                info["fingerprint"],
                str(info["width"]),
                str(info["height"]),
                info["format"],
            )
        if on_progress is not None and n % _SCAN_BLOCK == 0:
            on_progress(done + n, len(files))
    if on_progress is not None:
        on_progress(len(files), len(files))
    index.remember(learned)
    unchanged = snap is not None and len(snap) == len(files) and bool((at >= 0).all())
    if not unchanged and (snap is not None or res.known.any()):
        save_snapshot(snap_file, str(root_path), res.snapshot(paths))

    items, skipped = _collect(files, res, skipped)
    user = read_user_captions(root_path, items["relpath"].tolist(), captions=captions)
    for note in user.notes:
        warnings.warn(note, stacklevel=2)
    return Collection(root_path, items, skipped, user)


def _collect(
    files: list[tuple[str, str]], res: Results, skipped: list[tuple[str, str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The items frame (sorted by relpath) and the skipped frame of a scan's files."""
    keep = [i for i, why in enumerate(res.reason) if why is None]
    skipped = skipped + [(files[i][0], why) for i, why in enumerate(res.reason) if why is not None]
    relpaths = _printables(
        [files[i][0] for i in keep]
    )  # shown and exported; ``path`` keeps what the OS needs
    order = sorted(range(len(keep)), key=relpaths.__getitem__)
    rows = np.asarray(keep, dtype=np.int64)[order]
    relpaths = [relpaths[j] for j in order]
    columns: dict[str, list | np.ndarray] = {
        "relpath": relpaths,
        "path": [files[i][1] for i in rows.tolist()],
        "folder_label": [r.split("/", 1)[0] if "/" in r else "" for r in relpaths],
        "bytes": res.nbytes[rows],
        "mtime_ns": res.mtime[rows],
        "width": res.width[rows],
        "height": res.height[rows],
        "format": res.format[rows],
        "fingerprint": res.fingerprint[rows],
    }
    items = pd.DataFrame(
        {c: pd.Series(v, dtype="int64") if c in _INT_COLUMNS else _text_series(v) for c, v in columns.items()}
    )
    return items, _skipped_frame(sorted((_printable(r), _printable(why)) for r, why in skipped))


class _StatIndex:
    """``stat key → (content key, width, height, format)`` kept in the cache; memory only when it cannot be."""

    def __init__(self, cache_dir: str | Path | None) -> None:
        from .cache import store_for

        self.store = store_for(cache_dir, STAT_INDEX)

    def lookup(self, keys: list[str]) -> dict[str, tuple[str, ...]]:
        try:
            found, values = self.store.lookup(keys, _INDEX_COLUMNS)
        except CacheError as exc:
            warnings.warn(f"the scan index could not be read ({exc}); every file is read again", stacklevel=3)
            return {}
        hits = [k for k, hit in zip(keys, found) if hit]
        return {k: tuple(values[c][i] for c in _INDEX_COLUMNS) for i, k in enumerate(hits)}

    def remember(self, entries: Mapping[str, tuple[str, str, str, str]]) -> None:
        if not entries:
            return
        keys = list(entries)
        columns = {c: [entries[k][i] for k in keys] for i, c in enumerate(_INDEX_COLUMNS)}
        try:
            self.store.append(keys, columns)
            if len(self.store.shard_paths()) > _INDEX_COMPACT_ABOVE:
                self.store.compact()
        except CacheError as exc:
            warnings.warn(
                f"the scan index could not be saved ({exc}); the next scan reads every file again",
                CacheWriteWarning,
                stacklevel=3,
            )


def _stat_all(paths: list[str]) -> list[os.stat_result | None]:
    """``os.stat`` of each path (following links), ``None`` for one that cannot be reached."""
    try:
        return list(map(os.stat, paths))
    except OSError:
        return [_stat(path) for path in paths]


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _stat_key(path: str, st: os.stat_result) -> str:
    """What identifies one version of one file without reading it (ctime changes on every write and chmod)."""
    ident = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:".encode()
    return blake3.blake3(ident + os.fsencode(path)).hexdigest(length=16)


def _probe(path: str, max_pixels: int) -> tuple[dict | None, str | None, os.stat_result | None]:
    """Header check and whole-file hash of one file → ``(row values, None, stat)`` or ``(None, reason, None)``.

    ``stat`` is the ``fstat`` the stat index may remember the row under: ``None`` when the file changed
    while it was read, or is too recent to trust its times (:data:`RACY_NS`).
    """
    head = b""
    if os.path.splitext(path)[1].lower() in HEIF_EXTENSIONS and not HEIF_SUPPORT:
        return None, NO_HEIF, None
    try:
        with open(path, "rb", opener=open_nonblocking) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None, NOT_REGULAR, None
            if st.st_size == 0:
                return None, "empty file (0 bytes)", None
            head = fh.read(64 * 1024)
            fh.seek(0)
            with Image.open(fh) as im:
                width, height = im.size
                fmt = im.format or ""
                if width * height > max_pixels:
                    return None, too_large(width, height, max_pixels), None
                if orientation(im) in (5, 6, 7, 8):
                    width, height = height, width
            fh.seek(0)
            fingerprint = hash_stream(fh)
            after = os.fstat(fh.fileno())
    except (*READ_ERRORS, ImageReadError) as exc:
        return None, str(reason_for(exc, head)), None
    same = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )
    recent = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS
    info = {
        "bytes": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "width": width,
        "height": height,
        "format": fmt,
        "fingerprint": fingerprint,
    }
    return info, None, st if same and not recent else None


def _map_in_blocks(fn: Callable, items: list, workers: int) -> Iterator:
    """``map(fn, items)`` in a thread pool, in order, submitting one block at a time (bounded memory)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), _SCAN_BLOCK):
            yield from pool.map(fn, items[start : start + _SCAN_BLOCK])
