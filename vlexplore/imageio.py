"""Reading image files: content keys, safe decoding, and why a file could not be read.

Everything that opens an image file goes through here. :func:`read_image_bytes` reads a file
once and returns its bytes with their content key (a BLAKE3 hash of the whole file), so what is
decoded is exactly what was hashed; :func:`open_image` decodes a path or those bytes to an upright
RGB image, refusing decompression bombs from the header. A file that cannot be used raises
:class:`~vlexplore.errors.ImageReadError` with a short reason a person can read, and says whether
the failure belongs to the file itself (``lasting``) or may pass (I/O, permissions, memory).
"""

from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path

import blake3
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif"}
)
#: Extensions only the pillow-heif plugin decodes; listed (and reported when it is missing) either way.
HEIF_EXTENSIONS: frozenset[str] = frozenset({".heic", ".heif", ".avif"})
try:  # HEIC/AVIF from phones (a dependency; a broken install is reported per file, never a crash)
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORT = True
except (ImportError, OSError):  # pragma: no cover - depends on the environment
    HEIF_SUPPORT = False
NO_HEIF = "HEIC/AVIF support is not installed (pip install pillow-heif)"

# Checked from the header before any decoding. Pillow has its own global guard (a warning above
# ~89 Mpx, an error above ~179 Mpx) that we leave alone: its error is reported as the same reason.
DEFAULT_MAX_PIXELS = 100_000_000
NOT_REGULAR = "not a regular file"
CHANGED = "the file changed since the folder was scanned; load the folder again to include it"
#: Content keys: "b3" + 32 hex digits (128 bits of BLAKE3 over every byte of the file).
KEY_PREFIX = "b3"
_HEAD = 64 * 1024  # bytes kept for sniffing what a non-image is
_READ_BLOCK = 1 << 20
_EXIF_ORIENTATION = 0x0112
_IMAGE_MAGIC = (b"\xff\xd8", b"\x89PNG", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")

# What Pillow raises on damaged files (OSError covers UnidentifiedImageError, PermissionError and
# "image file is truncated"; SyntaxError broken PNG chunks; DecompressionBombWarning only when warnings
# are errors). No bare except: anything else is a bug and should surface.
READ_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    ZeroDivisionError,
    MemoryError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


# --------------------------------------------------------------------------- content keys


def content_key(data: bytes | bytearray | memoryview) -> str:
    """The content key of a file's bytes: ``"b3"`` + 32 hex digits of BLAKE3 over all of them."""
    return KEY_PREFIX + blake3.blake3(data).hexdigest(length=16)


def hash_stream(fh) -> str:
    """:func:`content_key` of everything ``fh`` yields from its current position, read in 1 MiB blocks."""
    h = blake3.blake3()
    while block := fh.read(_READ_BLOCK):
        h.update(block)
    return KEY_PREFIX + h.hexdigest(length=16)


def fingerprint_file(path: str | Path) -> str:
    """The content key of a file (what :func:`vlexplore.collection.scan_folder` records), from one full read.

    Raises:
        ImageReadError: when the file cannot be read.
    """
    try:
        with open(path, "rb", opener=open_nonblocking) as fh:
            require_regular(fh)
            return hash_stream(fh)
    except OSError as exc:
        raise reason_for(exc, b"") from exc


def read_image_bytes(path: str | Path, expected: str | None = None) -> tuple[bytes, str]:
    """Read a whole image file once: ``(bytes, content key)``.

    Args:
        path: the file (symbolic links are followed; FIFOs and devices are refused without blocking).
        expected: the key the file had when it was scanned; a different one raises (the file changed),
            so nothing is ever stored or shown under a key its bytes do not have.

    Raises:
        ImageReadError: unreadable, not a regular file, or changed since the scan (not ``lasting``).
    """
    try:
        with open(path, "rb", opener=open_nonblocking) as fh:
            require_regular(fh)
            data = fh.read()
    except READ_ERRORS as exc:
        raise reason_for(exc, b"") from exc
    key = content_key(data)
    if expected is not None and key != expected:
        raise ImageReadError(CHANGED, lasting=False)
    return data, key


def open_nonblocking(path: str, flags: int) -> int:
    """``open()`` opener that never blocks: opening a FIFO for reading would wait for a writer forever."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def require_regular(fh) -> os.stat_result:
    """The ``fstat`` of an open file; raises :class:`ImageReadError` unless it is a regular file."""
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device swapped in after the scan, or opened directly
        raise ImageReadError(NOT_REGULAR, lasting=False)
    return st


# --------------------------------------------------------------------------- reasons


def orientation(im: Image.Image) -> int:
    """EXIF orientation from the header; never decodes pixels."""
    if im.format == "PNG" and "exif" not in im.info:  # PNG.getexif() would load the whole image
        return 1
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except (*READ_ERRORS, TypeError):
        return 1


def too_large(width: int, height: int, max_pixels: int) -> str:
    """The reason given for an image over the pixel limit."""
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


def reason_for(exc: BaseException, head: bytes) -> ImageReadError:
    """The :class:`ImageReadError` to raise for ``exc``.

    A short sentence a person understands, and whether the failure belongs to the file's content (``lasting``)
    or may pass on a later run.
    """
    if isinstance(exc, ImageReadError):
        return exc
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageReadError("image too large (decompression bomb guard)")
    if isinstance(exc, PermissionError):
        return ImageReadError("file cannot be read (permission denied)", lasting=False)
    if isinstance(exc, FileNotFoundError):
        return ImageReadError("file disappeared while it was being read", lasting=False)
    if isinstance(exc, UnidentifiedImageError):
        return ImageReadError(_sniff(head))
    message = str(exc).strip()
    if isinstance(exc, EOFError) or "truncat" in message.lower():
        return ImageReadError("truncated file")
    if isinstance(exc, MemoryError):  # this machine, now: another run (or a bigger one) may manage
        return ImageReadError("image too large to decode in memory", lasting=False)
    if isinstance(exc, OSError) and exc.errno is not None:
        return ImageReadError(f"file cannot be read ({exc.strerror or message})", lasting=False)
    message = message if len(message) <= 80 else message[:77] + "..."
    return ImageReadError(f"damaged image data ({message or type(exc).__name__})")


# --------------------------------------------------------------------------- decoding


def open_image(
    path: str | Path | bytes | bytearray, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None
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
            return _decode(io.BytesIO(data), data[:_HEAD], max_pixels, max_side)
        except READ_ERRORS as exc:
            raise reason_for(exc, data[:_HEAD]) from exc
    head = b""
    try:
        with open(path, "rb", opener=open_nonblocking) as fh:
            require_regular(fh)
            head = fh.read(_HEAD)
            fh.seek(0)
            return _decode(fh, head, max_pixels, max_side)
    except READ_ERRORS as exc:
        raise reason_for(exc, head) from exc


def _decode(fh, head: bytes, max_pixels: int, max_side: int | None) -> Image.Image:
    """The body of :func:`open_image` for an open binary stream positioned at 0 (``head``: its first bytes)."""
    if not head:
        raise ImageReadError("empty file (0 bytes)")
    with Image.open(fh) as im:
        if im.width * im.height > max_pixels:
            raise ImageReadError(too_large(im.width, im.height, max_pixels))
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
    except (*READ_ERRORS, TypeError):
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
