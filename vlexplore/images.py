"""Image folders: scan them into a :class:`Collection`, open images safely, make thumbnails.

A scan reads only file headers (size, format) and 128 KiB per file for the
content fingerprint, so it stays cheap on large photo libraries. Every file
with an image extension ends up either in ``items`` or, with a reason a person
can read, in ``skipped``; one bad file never stops a scan. Decoding happens
later, in :func:`open_image`, which raises :class:`ImageReadError` for files
that only fail there (a truncated JPEG has a perfectly good header).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import default_cache_dir
from .errors import CacheError, ConfigError, ImageReadError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
try:  # HEIC/AVIF from phones, when the optional plugin is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    IMAGE_EXTENSIONS = IMAGE_EXTENSIONS | {".heic", ".heif", ".avif"}
except (ImportError, OSError):  # pragma: no cover - depends on the environment
    pass

# Checked from the header before any decoding. Pillow has its own global guard (a warning above
# ~89 Mpx, an error above ~179 Mpx) that we leave alone: its error is reported as the same reason.
DEFAULT_MAX_PIXELS = 100_000_000
ITEM_COLUMNS = ("relpath", "path", "folder_label", "bytes", "mtime_ns", "width", "height", "format", "fingerprint")
SKIPPED_COLUMNS = ("relpath", "reason")
_INT_COLUMNS = frozenset({"bytes", "mtime_ns", "width", "height"})
_CHUNK = 64 * 1024  # bytes hashed from each end of a file
_SCAN_BLOCK = 4096  # files probed per thread-pool round (bounds memory for huge folders)
_EXIF_ORIENTATION = 0x0112
NOT_REGULAR = "not a regular file"
_IMAGE_MAGIC = (b"\xff\xd8", b"\x89PNG", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")

# What Pillow raises on damaged files (OSError covers UnidentifiedImageError, PermissionError and
# "image file is truncated"; SyntaxError broken PNG chunks; DecompressionBombWarning only when warnings
# are errors). No bare except: anything else is a bug and should surface.
_READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, ZeroDivisionError,
                MemoryError, Image.DecompressionBombError, Image.DecompressionBombWarning)

Progress = Callable[[int, int], None] | None


@dataclass
class Collection:
    """The images of a folder.

    Attributes:
        root: the scanned folder.
        items: one row per readable image, columns :data:`ITEM_COLUMNS`, sorted by ``relpath``.
        skipped: files with an image extension that cannot be used, columns ``relpath``, ``reason``.
    """

    root: Path
    items: pd.DataFrame
    skipped: pd.DataFrame

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
        return Collection(self.root, self.items.loc[~mask].reset_index(drop=True), skipped)


def _text_series(values: list) -> pd.Series:
    try:
        return pd.Series(values, dtype="str")
    except UnicodeEncodeError:  # a path that is not valid UTF-8 (Arrow strings refuse it): kept as the OS gave it
        return pd.Series(values, dtype=object)


def _items_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype="int64") if c in _INT_COLUMNS
                         else _text_series([r[c] for r in rows]) for c in ITEM_COLUMNS})


def _skipped_frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([_printable(r[i]) for r in rows], dtype="str")
                         for i, c in enumerate(SKIPPED_COLUMNS)})


def _printable(text: str) -> str:
    """``text`` as valid UTF-8: the bytes of a non-UTF-8 file name (surrogate escapes) shown as ``\\xNN``."""
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
    on_progress: Progress = None,
) -> Collection:
    """List the images under ``root`` with a header-only check of each file.

    Hidden files and folders (names starting with ``.``) and files without an image
    extension are ignored silently. Symbolic links are followed only when their target
    stays inside ``root``; a folder reached twice (a link loop) is visited once.

    Args:
        root: the folder to scan.
        recursive: descend into sub-folders.
        max_pixels: images with more pixels are skipped (decompression bomb guard).
        on_progress: called with ``(files checked, files found)`` while headers are read.

    Returns:
        A :class:`Collection`; ``width``/``height`` are as displayed (after EXIF orientation).

    Raises:
        ConfigError: when ``root`` is not a readable folder.
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

    files, skipped = _list_files(str(root_path), recursive)
    rows: list[dict] = []
    results = _map_in_blocks(lambda f: _probe(f[1], max_pixels), files, min(8, (os.cpu_count() or 1) + 4))
    for i, ((relpath, path), (info, reason)) in enumerate(zip(files, results), start=1):
        if reason is not None:
            skipped.append((relpath, reason))
        else:
            relpath = _printable(relpath)  # shown and exported; ``path`` keeps the name the OS needs
            label = relpath.split("/", 1)[0] if "/" in relpath else ""
            rows.append({"relpath": relpath, "path": path, "folder_label": label, **info})
        if on_progress is not None and (i % _SCAN_BLOCK == 0 or i == len(files)):
            on_progress(i, len(files))
    if on_progress is not None and not files:
        on_progress(0, 0)
    rows.sort(key=lambda r: r["relpath"])
    skipped = sorted((_printable(r), _printable(why)) for r, why in skipped)
    return Collection(root_path, _items_frame(rows), _skipped_frame(skipped))


def _map_in_blocks(fn: Callable, items: list, workers: int) -> Iterator:
    """``map(fn, items)`` in a thread pool, in order, submitting one block at a time (bounded memory)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), _SCAN_BLOCK):
            yield from pool.map(fn, items[start : start + _SCAN_BLOCK])


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def _list_files(root: str, recursive: bool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Walk ``root`` with :func:`os.scandir` → ``([(relpath, path)], [(relpath, reason)])``.

    Deterministic: entries in name order, real folders before symlinked ones; each folder once.
    """
    root_real = os.path.realpath(root)
    seen = {root_real}
    files: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    stack = [("", root)]
    linked: list[tuple[str, str]] = []  # symlinked folders, walked after every real one so real paths win
    while stack or linked:
        if not stack:
            rel, path = linked.pop(0)
            real = os.path.realpath(path)
            if real not in seen:  # else a link loop, or a second way into a folder already walked
                seen.add(real)
                stack.append((rel, path))
            continue
        rel_dir, dir_path = stack.pop()
        try:
            with os.scandir(dir_path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            why = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or exc
            skipped.append((rel_dir, f"folder cannot be read ({why})"))
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_image = os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
            try:
                is_link = entry.is_symlink()
                if is_link and not _inside(os.path.realpath(entry.path), root_real):
                    if is_image or entry.is_dir():
                        skipped.append((rel, "symbolic link to a place outside the folder (not followed)"))
                    continue
                if entry.is_dir():
                    if recursive and is_link:
                        linked.append((rel, entry.path))
                    elif recursive and os.path.realpath(entry.path) not in seen:
                        seen.add(os.path.realpath(entry.path))
                        subdirs.append((rel, entry.path))
                elif is_image:
                    if entry.is_file():
                        files.append((rel, entry.path))
                    elif is_link and not os.path.exists(entry.path):
                        skipped.append((rel, "broken symbolic link"))
                    else:
                        skipped.append((rel, NOT_REGULAR))
            except OSError as exc:
                if is_image:
                    skipped.append((rel, f"file cannot be read ({exc.strerror or exc})"))
        stack.extend(reversed(subdirs))
    return files, skipped


def _digest(size: int, head: bytes, tail: bytes) -> str:
    return hashlib.blake2b(str(size).encode() + head + tail, digest_size=16).hexdigest()


def _read_ends(fh) -> tuple[int, bytes, bytes]:
    size = os.fstat(fh.fileno()).st_size
    head = fh.read(_CHUNK)
    fh.seek(max(0, size - _CHUNK))
    tail = fh.read(_CHUNK)
    fh.seek(0)
    return size, head, tail


def fingerprint_file(path: str | Path) -> str:
    """The content fingerprint :func:`scan_folder` records: blake2b of size + first and last 64 KiB.

    Raises:
        ImageReadError: when the file cannot be read.
    """
    try:
        with open(path, "rb", opener=_open_nonblocking) as fh:
            _require_regular(fh)
            return _digest(*_read_ends(fh))
    except OSError as exc:
        raise ImageReadError(_reason(exc, b"")) from exc


def _open_nonblocking(path: str, flags: int) -> int:
    """``open()`` opener that never blocks: opening a FIFO for reading would wait for a writer forever."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _require_regular(fh) -> os.stat_result:
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device swapped in after the scan, or opened directly
        raise ImageReadError(NOT_REGULAR)
    return st


def _probe(path: str, max_pixels: int) -> tuple[dict | None, str | None]:
    """Header check of one file → ``(row values, None)`` or ``(None, reason)``."""
    head = b""
    try:
        with open(path, "rb", opener=_open_nonblocking) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None, NOT_REGULAR
            size, head, tail = _read_ends(fh)
            if size == 0:
                return None, "empty file (0 bytes)"
            with Image.open(fh) as im:
                width, height = im.size
                fmt = im.format or ""
                if width * height > max_pixels:
                    return None, _too_large(width, height, max_pixels)
                if _orientation(im) in (5, 6, 7, 8):
                    width, height = height, width
    except _READ_ERRORS as exc:
        return None, _reason(exc, head)
    info = {"bytes": size, "mtime_ns": st.st_mtime_ns, "width": width, "height": height, "format": fmt,
            "fingerprint": _digest(size, head, tail)}
    return info, None


def _orientation(im: Image.Image) -> int:
    """EXIF orientation from the header; never decodes pixels."""
    if im.format == "PNG" and "exif" not in im.info:  # PNG.getexif() would load the whole image
        return 1
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except (*_READ_ERRORS, TypeError):
        return 1


def _too_large(width: int, height: int, max_pixels: int) -> str:
    return f"image too large ({width}×{height} pixels, limit {max_pixels:,}; decompression bomb guard)"


def _sniff(head: bytes) -> str:
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(_IMAGE_MAGIC):
        return "damaged or truncated image header"
    sample = head[:2048]
    text = sample.decode("utf-8", errors="ignore")
    if b"\0" not in sample and sum(c.isprintable() or c.isspace() for c in text) >= 0.95 * max(1, len(text)):
        return "not an image (text/HTML)"
    return "not an image (unknown file format)"


def _reason(exc: BaseException, head: bytes) -> str:
    """A short sentence a person understands for why a file could not be read."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "image too large (decompression bomb guard)"
    if isinstance(exc, PermissionError):
        return "file cannot be read (permission denied)"
    if isinstance(exc, FileNotFoundError):
        return "file disappeared while it was being read"
    if isinstance(exc, UnidentifiedImageError):
        return _sniff(head)
    message = str(exc).strip()
    if isinstance(exc, EOFError) or "truncat" in message.lower():
        return "truncated file"
    if isinstance(exc, MemoryError):
        return "image too large to decode in memory"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"file cannot be read ({exc.strerror or message})"
    message = message if len(message) <= 80 else message[:77] + "..."
    return f"damaged image data ({message or type(exc).__name__})"


# --------------------------------------------------------------------------- decoding


def open_image(
    path: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None
) -> Image.Image:
    """Decode one image as RGB, upright, first frame, transparency on white.

    Args:
        path: the image file, or its content as ``bytes`` (what a distributed reader hands over;
            decoded exactly as the file would be).
        max_pixels: larger images are refused before decoding (decompression bomb guard).
        max_side: a speed and memory hint: JPEGs are decoded at a reduced DCT scale that keeps both
            sides ≥ ``max_side`` (:meth:`PIL.Image.Image.draft`); any image whose shorter side is still
            ≥ ``2 × max_side`` is then shrunk by the largest integer factor that keeps both sides
            ≥ ``max_side`` (box filter, :meth:`PIL.Image.Image.reduce`) before colour conversion, so a
            huge PNG costs its decoded size once, not the five copies alpha compositing makes.

    Returns:
        An ``RGB`` image, in memory (the file is closed).

    Raises:
        ImageReadError: with a short reason ("truncated file", "not an image (text/HTML)", ...).
    """
    if isinstance(path, (bytes, bytearray, memoryview)):
        data = bytes(path)
        try:
            return _decode(io.BytesIO(data), data[:_CHUNK], max_pixels, max_side)
        except _READ_ERRORS as exc:
            raise ImageReadError(_reason(exc, data[:_CHUNK])) from exc
    head = b""
    try:
        with open(path, "rb", opener=_open_nonblocking) as fh:
            _require_regular(fh)
            head = fh.read(_CHUNK)
            fh.seek(0)
            return _decode(fh, head, max_pixels, max_side)
    except _READ_ERRORS as exc:
        raise ImageReadError(_reason(exc, head)) from exc


def _decode(fh, head: bytes, max_pixels: int, max_side: int | None) -> Image.Image:
    """The body of :func:`open_image` for an open binary stream positioned at 0 (``head``: its first bytes)."""
    if not head:
        raise ImageReadError("empty file (0 bytes)")
    with Image.open(fh) as im:
        if im.width * im.height > max_pixels:
            raise ImageReadError(_too_large(im.width, im.height, max_pixels))
        if max_side and im.format == "JPEG":
            im.draft("RGB", (max_side, max_side))
        im.load()  # first frame only; a truncated file fails here
        _upright(im)
        out = _to_rgb(_reduced(im, max_side) if max_side else im)
        return out.copy() if out is im else out  # a plain image, detached from the file


def _upright(im: Image.Image) -> None:
    """Turn a loaded image upright as its EXIF orientation says, in place (no full-size copy).

    A damaged EXIF block leaves it as it is.
    """
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except (*_READ_ERRORS, TypeError):
        pass


# modes whose pixel values may be averaged (palette indices and bilevel pixels are expanded first)
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F"})


def _reduced(im: Image.Image, max_side: int) -> Image.Image:
    """``im`` shrunk by the largest integer factor that keeps both sides ≥ ``max_side``, or ``im`` itself."""
    factor = min(im.size) // max_side
    if factor < 2:
        return im
    if im.mode in ("P", "PA"):  # expand the palette, keeping transparency for _to_rgb's compositing
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode not in _REDUCIBLE:  # 16-bit and other modes: to 8-bit RGB first
        im = _to_rgb(im)
    return im.reduce(factor)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB: alpha/transparency composited on white, 16-bit and float rescaled to 8 bits."""
    mode = im.mode
    if mode == "RGB":
        return im
    try:
        if mode.startswith("I") or mode == "F":
            return Image.fromarray(_to_uint8(np.asarray(im), mode), "L").convert("RGB")
        if mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in im.info:
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im.convert("RGB")
    except ValueError as exc:
        raise ImageReadError(f"colour mode {mode} cannot be converted to RGB") from exc


def _to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16/32-bit integer or float pixels ``(h, w)`` → ``uint8 (h, w)`` (in place on one float32 copy)."""
    a = a.astype(np.float32)  # exact for 16-bit values; half the memory of float64 on a 100 Mpx image
    if a.size == 0:
        return a.astype(np.uint8)
    lo, hi = float(a.min()), float(a.max())
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and 255 < hi <= 65535):
        a /= 257.0
    elif mode == "F" and lo >= 0 and hi <= 1:
        a *= 255.0
    elif lo < 0 or hi > 255:
        if hi > lo:
            a -= lo
            a *= 255.0 / (hi - lo)
        else:
            a[...] = 0
    np.rint(a, out=a)
    np.clip(a, 0, 255, out=a)
    return a.astype(np.uint8)


# --------------------------------------------------------------------------- thumbnails


def thumbnail(
    collection_or_path: Collection | str | Path,
    relpath_or_none: str | None = None,
    *,
    size: int = 192,
    cache_dir: Path | None = None,
) -> Path:
    """A cached JPEG (quality 85) whose longest side is ``size``; small images are scaled up.

    Args:
        collection_or_path: a :class:`Collection` (then ``relpath_or_none`` names the item) or an image path.
        cache_dir: the cache root (:func:`vlexplore.config.default_cache_dir` when ``None``).

    Returns:
        ``cache_dir/thumbs/<fingerprint>-<size>.jpg``, written once (atomically), then reused.

    Raises:
        ConfigError: bad ``size`` or unknown relpath. ImageReadError: undecodable image. CacheError: write failed.
    """
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"thumbnail size must be a positive number of pixels, got {size!r}")
    if isinstance(collection_or_path, Collection):
        match = collection_or_path.items.loc[collection_or_path.items["relpath"] == relpath_or_none]
        if match.empty:
            raise ConfigError(f"{relpath_or_none!r} is not an image of the collection")
        path, fp = match["path"].iloc[0], match["fingerprint"].iloc[0]
    else:
        path = str(collection_or_path)
        fp = fingerprint_file(path)
    target = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "thumbs" / f"{fp}-{size}.jpg"
    if target.is_file():
        return target
    img = open_image(path, max_side=size)
    scale = size / max(img.size)
    new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    _save_jpeg_atomic(img.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0), target)
    return target


def _save_jpeg_atomic(img: Image.Image, target: Path) -> None:
    tmp_name = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{uuid.uuid4().hex[:8]}-",
                                         suffix=".tmp", delete=False) as fh:
            tmp_name = fh.name
            img.save(fh, "JPEG", quality=85)
        os.replace(tmp_name, target)
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise CacheError(f"cannot write thumbnail {target}: {exc}") from exc


def make_thumbnails(
    collection: Collection,
    *,
    size: int = 192,
    cache_dir: Path | None = None,
    on_progress: Progress = None,
) -> dict[str, Path]:
    """Thumbnails for every item (a few decoding threads).

    Returns:
        ``relpath → thumbnail path`` for the images that could be decoded, in item order.
    """
    relpaths = collection.items["relpath"].tolist()

    def one(relpath: str) -> Path | None:
        try:
            return thumbnail(collection, relpath, size=size, cache_dir=cache_dir)
        except ImageReadError:
            return None

    out: dict[str, Path] = {}
    results = _map_in_blocks(one, relpaths, min(4, os.cpu_count() or 1))
    for i, (relpath, thumb) in enumerate(zip(relpaths, results), start=1):
        if thumb is not None:
            out[relpath] = thumb
        if on_progress is not None:
            on_progress(i, len(relpaths))
    return out
