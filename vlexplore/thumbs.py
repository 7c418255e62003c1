"""Thumbnails: small JPEGs kept in the cache under each image's content key.

A thumbnail is made from bytes read once and checked against the key the scan recorded, so
the cache can only ever hold a picture of the content its name says; a file changed or swapped
(for a link to somewhere else) after the scan is refused, not shown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from .collection import Collection, _map_in_blocks
from .config import default_cache_dir
from .errors import CacheError, ConfigError, ImageReadError, VlexploreError
from .fsutil import atomic_writer
from .imageio import fingerprint_file, open_image, read_image_bytes
from .types import Progress

#: Thumbnails outside the collection's folder are refused even when their content matches.
OUTSIDE = "the file now lies outside the scanned folder (a link was changed); load the folder again"


def thumbnail(
    collection_or_path: Collection | str | Path,
    relpath_or_none: str | None = None,
    *,
    size: int = 192,
    cache_dir: str | Path | None = None,
) -> Path:
    """A cached JPEG (quality 85) whose longest side is ``size``; small images are scaled up.

    Args:
        collection_or_path: a :class:`~vlexplore.collection.Collection` (then ``relpath_or_none`` names the
            item) or an image path.
        relpath_or_none: the item's relative path when a collection is given.
        size: the longest side in pixels.
        cache_dir: the cache root (:func:`vlexplore.config.default_cache_dir` when ``None``).

    Returns:
        ``cache_dir/thumbs/<content key>-<size>.jpg``, written once (atomically), then reused.

    Raises:
        ConfigError: bad ``size`` or unknown relpath.
        ImageReadError: undecodable image, or a file that changed or left the folder since the scan.
        CacheError: write failed.
    """
    _check_size(size)
    if isinstance(collection_or_path, Collection):
        items = collection_or_path.items
        match = items.loc[items["relpath"] == relpath_or_none]
        if match.empty:
            raise ConfigError(f"{relpath_or_none!r} is not an image of the collection")
        path, fp = str(match["path"].iloc[0]), str(match["fingerprint"].iloc[0])
        _check_inside(path, os.path.realpath(collection_or_path.root))
    else:
        path = str(collection_or_path)
        fp = fingerprint_file(path)
    return _cached_thumbnail(path, fp, size, _thumbs_dir(cache_dir))


def thumbnails_at(
    collection: Collection,
    rows: Sequence[int],
    *,
    size: int = 192,
    cache_dir: str | Path | None = None,
) -> list[Path | VlexploreError]:
    """The thumbnails of the items at positions ``rows`` of ``collection.items`` (a page of a grid, say).

    Like :func:`thumbnail` for each, with the folder resolved once; the missing ones are made in a few
    decoding threads at once.

    Returns:
        Per row, its thumbnail's path, or the error that stopped it (:class:`~vlexplore.errors.ImageReadError`
        for a file that cannot be shown, :class:`~vlexplore.errors.CacheError` when it cannot be written).

    Raises:
        ConfigError: bad ``size``, or a row outside the collection.
    """
    _check_size(size)
    n = len(collection.items)
    rows = [int(r) for r in rows]
    if any(not 0 <= r < n for r in rows):
        raise ConfigError(
            f"row {next(r for r in rows if not 0 <= r < n)} is not in a collection of {n} images"
        )
    paths = collection.items["path"].to_numpy()[rows] if rows else []
    fps = collection.items["fingerprint"].to_numpy()[rows] if rows else []
    root = os.path.realpath(collection.root)
    folder = _thumbs_dir(cache_dir)

    def one(i: int) -> Path | VlexploreError:
        try:
            _check_inside(str(paths[i]), root)
            return _cached_thumbnail(str(paths[i]), str(fps[i]), size, folder)
        except (ImageReadError, CacheError) as exc:
            return exc

    if all((folder / f"{fp}-{size}.jpg").is_file() for fp in fps):
        return [one(i) for i in range(len(rows))]
    return list(_map_in_blocks(one, list(range(len(rows))), min(4, os.cpu_count() or 1)))


def _check_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"thumbnail size must be a positive number of pixels, got {size!r}")


def _thumbs_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "thumbs"


def _check_inside(path: str, root_real: str) -> None:
    real = os.path.realpath(path)
    if os.path.commonpath([root_real, real]) != root_real:
        raise ImageReadError(OUTSIDE, lasting=False)


def _cached_thumbnail(path: str, fp: str, size: int, folder: Path) -> Path:
    target = folder / f"{fp}-{size}.jpg"
    if target.is_file():
        return target
    data, _ = read_image_bytes(path, expected=fp)
    img = open_image(data, max_side=size)
    scale = size / max(img.size)
    new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    _save_jpeg_atomic(img.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0), target)
    return target


def _save_jpeg_atomic(img: Image.Image, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(target, "wb", durable=False) as fh:  # a cache: rebuilt if a crash loses it
            img.save(fh, "JPEG", quality=85)
    except OSError as exc:
        raise CacheError(f"cannot write thumbnail {target}: {exc}") from exc


def make_thumbnails(
    collection: Collection,
    *,
    size: int = 192,
    cache_dir: str | Path | None = None,
    on_progress: Progress = None,
) -> dict[str, Path]:
    """Thumbnails for every item (a few decoding threads).

    Returns:
        ``relpath → thumbnail path`` for the images that could be decoded, in item order.
    """
    relpaths = collection.items["relpath"].tolist()
    out: dict[str, Path] = {}
    block = 256  # a progress step; each block is decoded in a few threads
    for start in range(0, len(relpaths), block):
        rows = range(start, min(start + block, len(relpaths)))
        for row, thumb in zip(rows, thumbnails_at(collection, rows, size=size, cache_dir=cache_dir)):
            if isinstance(thumb, Path):
                out[relpaths[row]] = thumb
            elif not isinstance(thumb, ImageReadError):
                raise thumb
        if on_progress is not None:
            on_progress(rows.stop, len(relpaths))
    return out
