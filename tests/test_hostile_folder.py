"""A hostile photo folder: every kind of bad, odd or malicious file a server folder may hold.

:func:`build_hostile_folder` generates the corpus (nothing is downloaded) and records, per file,
what must happen to it: embedded, skipped at scan time (with a reason fragment), skipped at
decode time (with a reason fragment), or ignored (hidden files). The tests then check that a
scan, an embedding run, the real bundled model and a CSV export survive it: no exception,
every skipped file listed with its reason, everything readable embedded with finite unit rows.

``tests/test_images.py`` covers the basic broken files (empty, HTML, header-only, truncated,
bomb header, awkward modes); this module adds the rest and runs them through the whole chain.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FakeEncoder
from PIL import Image, PngImagePlugin

from vlexplore import encode, imageio, images
from vlexplore.encode import embed_images
from vlexplore.errors import ImageReadError
from vlexplore.export import to_dataframe, write_table
from vlexplore.images import open_image, scan_folder, thumbnail

pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")

OK = "embedded"
LATIN1_RELPATH = "names/caf\\xe9-latin1.jpg"


@dataclass
class Corpus:
    """A generated hostile folder.

    Attributes:
        root: the folder.
        expect: relpath → ``"embedded"``, ``("scan", fragment)`` (in ``skipped`` after a scan),
            ``("decode", fragment)`` (in ``items`` after a scan, moved to ``skipped`` by embedding).
        kinds: relpath → a short description of the kind of file (the table in docs/reliability.md).
        ignored: relpaths that must appear in neither table (hidden files, non-image extensions).
        outside: a folder next to ``root`` that links point into; nothing from it may be listed.
    """

    root: Path
    outside: Path
    expect: dict[str, object] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def add(
        self, relpath: str, data: bytes | Image.Image | None, kind: str, expect: object = OK, **save
    ) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Image.Image):
            data.save(path, **save)
        elif data is not None:
            path.write_bytes(data)
        self.expect[relpath] = expect
        self.kinds[relpath] = kind
        return path

    def relpaths(self, outcome: str) -> set[str]:
        """Relpaths whose expectation is ``outcome`` (``"embedded"``, ``"scan"`` or ``"decode"``)."""
        return {r for r, e in self.expect.items() if (e if e == OK else e[0]) == outcome}


# --------------------------------------------------------------------------- file makers


def noise(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    a = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    return Image.fromarray(a[..., 0] if channels == 1 else a, mode)


def encoded(img: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A PNG header declaring ``width × height`` with a token IDAT (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def gif_bomb() -> bytes:
    """A GIF whose screen and only frame claim 65535 × 65535 pixels."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
        + b","
        + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0)
        + b"\x02\x02\x44\x01\x00;"
    )


def jpeg_bomb() -> bytes:
    """A real small JPEG whose SOF marker is patched to claim 65500 × 65500 pixels."""
    data = bytearray(encoded(noise((16, 16), 1), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65500, 65500)
    return bytes(data)


def webp_bomb() -> bytes:
    """A WebP VP8X header declaring a 16384 × 16384 canvas (268 Mpx), with no image data."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (16383).to_bytes(3, "little") * 2
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def with_corrupt_exif(jpeg: bytes) -> bytes:
    """``jpeg`` with an APP1 Exif segment of garbage right after SOI."""
    junk = b"Exif\x00\x00" + b"MM\x00*" + b"\xff\xff\xff\xff" + bytes(range(256)) * 3
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk + jpeg[2:]


def with_orientation(img: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(img, fmt, exif=exif.tobytes())


QUADRANTS = (
    (220, 20, 20),
    (20, 200, 20),
    (20, 20, 220),
    (230, 230, 20),
)  # top-left, top-right, bottom-left, -right
# what to store so that the EXIF orientation's transform (ImageOps.exif_transpose) gives the upright image back
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def quadrant_image(size: tuple[int, int] = (40, 30)) -> Image.Image:
    """Four flat colours, one per quadrant: any rotation or flip shows."""
    w, h = size
    img = Image.new("RGB", size)
    for (x, y), colour in zip(((0, 0), (1, 0), (0, 1), (1, 1)), QUADRANTS):
        img.paste(colour, (x * w // 2, y * h // 2, (x + 1) * w // 2, (y + 1) * h // 2))
    return img


def quadrant_colours(img: Image.Image) -> list[tuple[int, ...]]:
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    h, w = a.shape[:2]
    centres = [(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)]
    return [tuple(int(v) for v in a[y, x]) for y, x in centres]


def text_orientation_exif() -> bytes:
    """An EXIF block whose orientation tag is the ASCII text "six" instead of a SHORT."""
    entry = struct.pack("<HHI", 0x0112, 2, 4) + b"six\0"
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (12, 10), c) for c in ((200, 20, 20), (20, 200, 20), (20, 20, 200))]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)
    return buf.getvalue()


def png_with_text_bomb() -> bytes:
    """A valid 8×8 PNG carrying a zTXt chunk that inflates to 50 MB (Pillow caps text chunks)."""
    body = encoded(noise((8, 8), 3), "PNG")
    ztxt = png_chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"A" * 50_000_000, 9))
    return body[:33] + ztxt + body[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def png_with_huge_exif() -> bytes:
    """A valid PNG with a 3 MB eXIf chunk (orientation 6 buried at its start)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "x" * 3_000_000  # ImageDescription
    return encoded(noise((20, 10), 4), "PNG", exif=exif.tobytes())


def build_hostile_folder(root: Path) -> Corpus:
    """Generate the hostile corpus under ``root`` (a sibling ``outside/`` holds link targets)."""
    root.mkdir(parents=True, exist_ok=True)
    outside = root.parent / (root.name + "-outside")
    outside.mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(outside / "secret.png")
    (outside / "sub").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(outside / "sub" / "secret2.png")
    c = Corpus(root, outside)
    photo = noise((40, 30), 0)
    jpeg, png = encoded(photo, "JPEG", quality=90), encoded(photo, "PNG")

    # --- empty and truncated files
    c.add("broken/zero.jpg", b"", "zero-byte .jpg", ("scan", "empty file"))
    c.add("broken/zero.png", b"", "zero-byte .png", ("scan", "empty file"))
    c.add(
        "broken/trunc.jpg",
        encoded(noise((64, 64), 1), "JPEG")[:1500],
        "truncated JPEG",
        ("decode", "truncated"),
    )
    c.add(
        "broken/trunc.png",
        encoded(noise((64, 64), 2), "PNG")[:3000],
        "truncated PNG",
        ("decode", "truncated"),
    )
    c.add("broken/trunc.gif", animated("GIF")[:60], "truncated GIF (inside the header)", ("scan", "damaged"))
    c.add(
        "broken/trunc.webp", encoded(noise((64, 64), 3), "WEBP")[:400], "truncated WebP", ("scan", "damaged")
    )
    c.add("broken/soi_eoi.jpg", b"\xff\xd8\xff\xd9", "JPEG of just SOI+EOI markers", ("scan", "damaged"))
    c.add("broken/bad_crc.png", png[:-8] + b"\0\0\0\0" + png[-4:], "PNG with a bad IEND CRC", OK)
    # --- wrong contents for the extension
    c.add("wrong/png_named.jpg", png, "PNG named .jpg")
    c.add("wrong/jpeg_named.png", jpeg, "JPEG named .png")
    c.add("wrong/upper.JPG", jpeg[:-1] + b"\xd9", "upper-case extension .JPG")
    c.add("wrong/notes.jpg", b"shopping list\nmilk\neggs\n", "plain text named .jpg", ("scan", "text/HTML"))
    c.add(
        "wrong/page.jpg",
        b"<!DOCTYPE html><html><body>404</body></html>",
        "HTML named .jpg",
        ("scan", "text/HTML"),
    )
    c.add(
        "wrong/random.png",
        np.random.default_rng(0).bytes(4096),
        "random bytes named .png",
        ("scan", "unknown file format"),
    )
    c.add("wrong/utf16.jpg", "hello".encode("utf-16"), "UTF-16 text named .jpg", ("scan", "not an image"))
    # --- decompression bombs (headers claim billions of pixels)
    c.add(
        "bombs/png_bomb.png",
        png_bomb(100_000, 100_000),
        "PNG header 100000×100000",
        ("scan", "decompression bomb"),
    )
    c.add("bombs/gif_bomb.gif", gif_bomb(), "GIF header 65535×65535", ("scan", "decompression bomb"))
    c.add("bombs/jpeg_bomb.jpg", jpeg_bomb(), "JPEG SOF 65500×65500", ("scan", "decompression bomb"))
    c.add("bombs/webp_bomb.webp", webp_bomb(), "WebP VP8X 16384×16384", ("scan", "decompression bomb"))
    c.add(
        "bombs/ztxt_bomb.png",
        png_with_text_bomb(),
        "PNG zTXt chunk inflating to 50 MB",
        ("scan", "MAX_TEXT_CHUNK"),
    )
    # --- odd sizes and modes (all must be embedded)
    c.add("odd/one_pixel.png", Image.new("RGB", (1, 1), (9, 99, 199)), "1×1 image")
    c.add("odd/wide.png", noise((30_000, 1), 5), "30000×1 image")
    c.add("odd/tall.png", noise((1, 30_000), 6), "1×30000 image")
    c.add(
        "odd/gray16.png",
        Image.fromarray(np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)),
        "16-bit grayscale PNG",
    )
    c.add("odd/cmyk.jpg", Image.new("CMYK", (16, 16), (0, 200, 200, 0)), "CMYK JPEG", quality=95)
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([255, 0, 0, 0, 255, 0] * 128)
    c.add("odd/palette_trns.png", pal, "palette PNG with transparency", transparency=0)
    c.add("odd/palette_trns.gif", pal, "palette GIF with transparency", transparency=0)
    c.add("odd/la.png", noise((16, 16), 7, "LA"), "LA (grey + alpha) PNG")
    c.add("odd/rgba.png", noise((16, 16), 8, "RGBA"), "RGBA PNG")
    c.add("odd/rgba.webp", noise((16, 16), 9, "RGBA"), "RGBA WebP", lossless=True)
    c.add("odd/bilevel.tif", Image.new("1", (16, 16), 1), "1-bit TIFF")
    c.add(
        "odd/int32.tif",
        Image.fromarray(np.arange(256, dtype=np.int32).reshape(16, 16) * 1000, "I"),
        "32-bit int TIFF",
    )
    c.add(
        "odd/float.tif",
        Image.fromarray(np.linspace(-1, 3, 256, dtype=np.float32).reshape(16, 16), "F"),
        "32-bit float TIFF",
    )
    c.add("odd/anim.gif", animated("GIF"), "animated GIF")
    c.add("odd/anim.webp", animated("WEBP"), "animated WebP")
    upright = quadrant_image()
    for o in range(2, 9):
        c.add(
            f"exif/orient_{o}.jpg",
            with_orientation(upright.transpose(STORED_AS[o]), o),
            f"EXIF orientation {o}",
        )
    c.add("exif/orient_0.jpg", with_orientation(upright, 0), "EXIF orientation 0 (invalid)")
    c.add("exif/orient_99.jpg", with_orientation(upright, 99), "EXIF orientation 99 (invalid)")
    c.add(
        "exif/orient_text.jpg",
        upright,
        "EXIF orientation stored as text",
        format="JPEG",
        exif=text_orientation_exif(),
    )
    c.add("exif/corrupt_exif.jpg", with_corrupt_exif(jpeg), "corrupt EXIF block")
    c.add(
        "exif/huge_icc.jpg",
        photo,
        "JPEG with a 1 MB ICC profile (16 APP2 segments)",
        icc_profile=bytes(1 << 20),
    )
    c.add("exif/huge_exif.png", png_with_huge_exif(), "PNG with a 3 MB eXIf chunk")
    text = PngImagePlugin.PngInfo()
    for i in range(200):
        text.add_text(f"k{i}", "v" * 1000)
    c.add("exif/many_text.png", photo, "PNG with 200 text chunks", pnginfo=text)
    # --- names (the CSV must survive them)
    for name, kind in [
        ("=1+2.jpg", "name starting with ="),
        ("+cmd.jpg", "name starting with +"),
        ("-2+3.jpg", "name starting with -"),
        ("@SUM(A1).jpg", "name starting with @"),
        ("\ttab.jpg", "name starting with a tab"),
        ("\rcr.jpg", "name starting with CR"),
        ("new\nline.jpg", "name with a newline"),
        ("quo\"te's.jpg", "name with quotes"),
        ("com,ma;semi.jpg", "name with a comma and a semicolon"),
        ("a" * 251 + ".jpg", "255-byte name"),
        ("é" * 125 + ".jpg", "254-byte name of 2-byte characters"),
        ("emoji 📷 name.jpg", "emoji in the name"),
        (" leading space.jpg", "leading space"),
    ]:
        c.add(f"names/{name}", noise((8, 8), len(name)), kind, format="JPEG")
    raw = os.fsencode(root / "names") + b"/caf\xe9-latin1.jpg"  # not valid UTF-8
    with open(raw, "wb") as fh:
        fh.write(encoded(noise((8, 8), 77), "JPEG"))
    c.expect[LATIN1_RELPATH] = OK  # shown with the undecodable byte escaped; ``path`` keeps the real name
    c.kinds[LATIN1_RELPATH] = "non-UTF-8 (Latin-1) name"
    c.add("=evil,folder/x.png", noise((8, 8), 78), "folder name starting with = and holding a comma")
    # --- identical content, different names: both rows kept, one model call
    for i in range(3):
        c.add(f"dupes/copy_{i}.png", png, "identical content, different name")
    # --- hidden files and folders: ignored silently
    for rel in (".hidden.jpg", "dupes/.DS_Store", ".git/objects/x.png", "odd/._anim.gif"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(png)
        c.ignored.append(rel)
    (root / "README.txt").write_text("not an image")
    c.ignored.append("README.txt")
    # --- folders: empty, deep, a directory named like an image
    (root / "empty" / "emptier").mkdir(parents=True)
    c.add("/".join(["deep"] * 60) + "/bottom.png", noise((8, 8), 11), "image 60 folders deep")
    c.add("dir.jpg/inside.png", noise((8, 8), 12), "image inside a directory named dir.jpg")
    # --- special files and links
    (root / "special").mkdir()
    os.mkfifo(root / "special" / "fifo.jpg")
    c.expect["special/fifo.jpg"], c.kinds["special/fifo.jpg"] = (
        ("scan", "not a regular file"),
        "FIFO named .jpg",
    )
    (root / "special" / "dangling.jpg").symlink_to(root / "special" / "gone.jpg")
    c.expect["special/dangling.jpg"], c.kinds["special/dangling.jpg"] = (
        ("scan", "broken symbolic link"),
        "dangling symlink",
    )
    (root / "special" / "self.jpg").symlink_to("self.jpg")
    c.expect["special/self.jpg"], c.kinds["special/self.jpg"] = (
        ("scan", "symbolic links"),
        "symlink to itself (ELOOP)",
    )
    (root / "special" / "to_fifo.jpg").symlink_to("fifo.jpg")
    c.expect["special/to_fifo.jpg"], c.kinds["special/to_fifo.jpg"] = (
        ("scan", "not a regular file"),
        "symlink to a FIFO",
    )
    (root / "special" / "out.png").symlink_to(outside / "secret.png")
    c.expect["special/out.png"], c.kinds["special/out.png"] = (
        ("scan", "outside the folder"),
        "symlink to a file outside the root",
    )
    (root / "special" / "outdir").symlink_to(outside / "sub", target_is_directory=True)
    c.expect["special/outdir"], c.kinds["special/outdir"] = (
        ("scan", "outside the folder"),
        "symlink to a folder outside the root",
    )
    (root / "special" / "dotdot.png").symlink_to(Path("..") / ".." / outside.name / "secret.png")
    c.expect["special/dotdot.png"], c.kinds["special/dotdot.png"] = (
        ("scan", "outside the folder"),
        "relative ../.. symlink leaving the root",
    )
    (root / "special" / "loop").symlink_to(root, target_is_directory=True)
    c.kinds["special/loop"] = "symlink loop to the root folder (walked once)"
    (root / "special" / "inside.png").symlink_to(root / "odd" / "one_pixel.png")
    c.expect["special/inside.png"], c.kinds["special/inside.png"] = OK, "symlink to an image inside the root"
    (root / "special" / "alias_dir").symlink_to(root / "exif", target_is_directory=True)
    c.kinds["special/alias_dir"] = "symlink to a folder already walked (not walked twice)"
    return c


# --------------------------------------------------------------------------- helpers


def bounded(fn, *args, seconds: float = 60, fifos: tuple[Path, ...] = (), **kwargs):
    """``fn(*args, **kwargs)`` in a thread; fail (instead of hanging the suite) when it takes over ``seconds``.

    On a timeout every FIFO in ``fifos`` is opened for writing, which releases a reader blocked on it.
    """
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not finish within {seconds} s (blocked on a FIFO?)")
    if "error" in out:
        raise out["error"]
    return out["value"]


def reasons_of(collection) -> dict[str, str]:
    return dict(zip(collection.skipped["relpath"], collection.skipped["reason"]))


def check_rows(views: dict[str, np.ndarray], n: int) -> None:
    for name, x in views.items():
        assert x.shape[0] == n, name
        assert x.dtype == np.float32, name
        assert np.isfinite(x).all(), name
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5, err_msg=name)


def spreadsheet_rows(raw: str) -> int:
    """Rows a spreadsheet sees in CSV text: CR, LF and CRLF outside quotes all end a row."""
    rows, quoted, i = 0, False, 0
    while i < len(raw):
        if raw[i] == '"':
            quoted = not quoted
        elif not quoted and raw[i] in "\r\n":
            rows += 1
            i += raw[i : i + 2] == "\r\n"
        i += 1
    return rows


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return build_hostile_folder(tmp_path_factory.mktemp("hostile") / "photos")


@pytest.fixture(scope="module")
def scanned(corpus):
    return bounded(scan_folder, corpus.root, fifos=(corpus.root / "special" / "fifo.jpg",))


@pytest.fixture(scope="module")
def embedded(corpus, scanned, tmp_path_factory):
    encoder = FakeEncoder()
    res = bounded(embed_images, scanned, encoder, cache_dir=tmp_path_factory.mktemp("cache"), batch_size=8)
    return res, encoder


# --------------------------------------------------------------------------- scan


def test_the_corpus_has_at_least_30_kinds_of_file(corpus):
    assert len(set(corpus.kinds.values())) >= 30


def test_scan_accounts_for_every_file(corpus, scanned):
    items, reasons = set(scanned.items["relpath"]), reasons_of(scanned)
    assert items == corpus.relpaths(OK) | corpus.relpaths("decode")
    assert set(reasons) == corpus.relpaths("scan")
    for relpath in corpus.relpaths("scan"):
        assert corpus.expect[relpath][1] in reasons[relpath], relpath
    for relpath in corpus.ignored:
        assert relpath not in items
        assert relpath not in reasons


def test_scan_reports_sizes_as_displayed(corpus, scanned):
    size = {
        r: (w, h)
        for r, w, h in zip(scanned.items["relpath"], scanned.items["width"], scanned.items["height"])
    }
    assert size["odd/wide.png"] == (30_000, 1)
    assert size["odd/tall.png"] == (1, 30_000)
    for o in range(2, 9):
        assert size[f"exif/orient_{o}.jpg"] == (40, 30), o  # the upright size, whatever is stored


def test_skip_reasons_are_short_single_line_sentences(embedded):
    for relpath, reason in reasons_of(embedded[0].collection).items():
        assert reason, relpath
        assert "\n" not in reason, relpath
        assert "Traceback" not in reason, relpath
        assert len(reason) < 120, relpath


def test_non_utf8_names_are_listed_escaped_and_still_readable(corpus, scanned):
    row = scanned.items.set_index("relpath").loc[LATIN1_RELPATH]
    assert os.fsencode(row["path"]).endswith(b"caf\xe9-latin1.jpg")  # the real name, for opening
    assert open_image(row["path"]).size == (8, 8)


def test_a_lowered_max_pixels_skips_a_real_large_image_from_its_header(tmp_path):
    noise((400, 300), 1).save(tmp_path / "big.jpg")
    noise((100, 100), 2).save(tmp_path / "small.jpg")
    c = scan_folder(tmp_path, max_pixels=50_000)
    assert "decompression bomb guard" in reasons_of(c)["big.jpg"]
    assert c.items["relpath"].tolist() == ["small.jpg"]
    with pytest.raises(ImageReadError, match="too large"):
        open_image(tmp_path / "big.jpg", max_pixels=50_000)


def test_a_fifo_named_like_an_image_never_blocks(corpus):
    fifo = corpus.root / "special" / "fifo.jpg"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    for fn in (open_image, images.fingerprint_file):
        with pytest.raises(ImageReadError, match="not a regular file"):
            bounded(fn, fifo, seconds=10, fifos=(fifo,))
    with pytest.raises(ImageReadError, match="not a regular file"):
        bounded(thumbnail, fifo, seconds=10, fifos=(fifo,))


def test_empty_folders_give_an_empty_collection(tmp_path, cache_dir):
    (tmp_path / "a" / "b").mkdir(parents=True)
    c = scan_folder(tmp_path)
    assert len(c) == 0
    assert len(c.skipped) == 0
    assert c.labels is None
    res = embed_images(c, FakeEncoder(), cache_dir=cache_dir)
    assert res.n_computed == 0
    assert res.views["image"].shape == (0, 0)


def test_permission_denied_at_decode_time_is_reported_and_retried(corpus, scanned, monkeypatch, tmp_path):
    locked = str(corpus.root / "odd" / "cmyk.jpg")
    real_open = open

    def fake_open(path, *args, **kwargs):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(imageio, "open", fake_open, raising=False)
    first = embed_images(scanned, FakeEncoder(), cache_dir=tmp_path, batch_size=16)
    assert reasons_of(first.collection)["odd/cmyk.jpg"] == "file cannot be read (permission denied)"
    monkeypatch.undo()
    again = FakeEncoder()
    second = embed_images(scanned, again, cache_dir=tmp_path, batch_size=16)
    assert again.n_encoded == 1
    assert "odd/cmyk.jpg" in set(second.collection.items["relpath"])


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_exif_orientation_is_turned_upright(corpus, orientation):
    img = open_image(corpus.root / "exif" / f"orient_{orientation}.jpg")
    assert img.size == (40, 30)
    for got, want in zip(quadrant_colours(img), QUADRANTS):
        assert max(abs(a - b) for a, b in zip(got, want)) < 40, (orientation, got, want)


@pytest.mark.parametrize("name", ["orient_0.jpg", "orient_99.jpg", "orient_text.jpg", "corrupt_exif.jpg"])
def test_invalid_or_corrupt_exif_leaves_the_image_as_stored(corpus, name):
    img = open_image(corpus.root / "exif" / name)
    assert img.mode == "RGB"
    assert img.size == (40, 30)


@pytest.mark.parametrize("name", ["anim.gif", "anim.webp"])
def test_animated_images_give_their_first_frame(corpus, name):
    img = open_image(corpus.root / "odd" / name)
    assert img.size == (12, 10)
    assert np.abs(np.subtract(img.getpixel((5, 5)), (200, 20, 20))).max() < 30


def _large(mode: str) -> Image.Image:
    """A 300×200 image of ``mode`` with structure (gradients, a transparent band) to compare decodes on."""
    x = np.linspace(0, 1, 300)[None, :] * np.ones((200, 1))
    y = np.linspace(0, 1, 200)[:, None] * np.ones((1, 300))
    rgb = np.stack([x, y, 1 - x], axis=-1)
    if mode == "P":
        img = Image.fromarray((rgb * 255).astype(np.uint8)).quantize(16)
        img.info["transparency"] = 0
        return img
    if mode == "I;16":
        return Image.fromarray((x * 65535).astype(np.uint16))
    if mode == "F":
        return Image.fromarray((x * 3 - 1).astype(np.float32), "F")
    if mode == "1":
        return Image.fromarray((x + y) % 0.2 > 0.1).convert("1")
    alpha = np.where(y < 0.3, 0, 255)[..., None]
    rgba = Image.fromarray(np.concatenate([rgb * 255, alpha], axis=-1).astype(np.uint8), "RGBA")
    return rgba.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "L", "P", "I;16", "F", "1", "CMYK"])
def test_max_side_shrinks_every_mode_like_a_full_decode_would(tmp_path, mode):
    path = tmp_path / ("img.tif" if mode in ("F", "CMYK") else "img.png")
    _large(mode).save(path)
    small = open_image(path, max_side=64)
    full = open_image(path)
    assert small.mode == full.mode == "RGB"
    assert small.size == (100, 67)
    expected = np.asarray(full.resize(small.size, Image.Resampling.BOX), dtype=np.float64)
    assert np.abs(np.asarray(small, dtype=np.float64) - expected).mean() < 12, mode


# --------------------------------------------------------------------------- embedding


def test_embedding_skips_only_unreadable_files_each_with_its_reason(corpus, embedded):
    res, _ = embedded
    assert set(res.collection.items["relpath"]) == corpus.relpaths(OK)
    reasons = reasons_of(res.collection)
    assert set(reasons) == corpus.relpaths("scan") | corpus.relpaths("decode")
    for relpath in corpus.relpaths("decode"):
        assert corpus.expect[relpath][1] in reasons[relpath], relpath


def test_every_readable_image_gets_a_finite_unit_row(embedded):
    res, _ = embedded
    check_rows(res.views, len(res.collection))


def test_identical_files_keep_every_row_and_cost_one_model_call(embedded):
    res, encoder = embedded
    items = res.collection.items.reset_index(drop=True)
    dupes = items.index[items["relpath"].str.startswith("dupes/")].tolist()
    assert len(dupes) == 3
    assert items.loc[dupes, "fingerprint"].nunique() == 1
    for view in res.views.values():
        np.testing.assert_array_equal(view[dupes[0]], view[dupes[1]])
        np.testing.assert_array_equal(view[dupes[0]], view[dupes[2]])
    assert encoder.n_encoded == res.n_computed == items["fingerprint"].nunique()


class ClipStyleEncoder(FakeEncoder):
    """The fake encoder behind a CLIP-style transform: scale the *shorter* side to 224, centre-crop 224.

    Records the largest intermediate image; refuses (instead of allocating gigabytes) one over 32 Mpx.
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.largest_resized = 0

    def preprocess(self, image):
        import torchvision.transforms as T

        w, h = image.size
        resized = 224 * 224 * max(w, h) // min(w, h)  # what Resize(224) is about to allocate, in pixels
        with self._lock:
            self.largest_resized = max(self.largest_resized, resized)
        if resized > 32_000_000:
            raise AssertionError(f"a {w}×{h} image would be resized to {resized:,} pixels")
        return super().preprocess(T.CenterCrop(224)(T.Resize(224)(image)))


def test_extreme_aspect_ratios_reach_the_model_bounded(corpus, tmp_path):
    """Under a CLIP transform a 30000×1 strip became 6,720,000×224 pixels (6.7 GB, 40 s); now it is padded to 32:1."""
    folder = tmp_path / "strips"
    folder.mkdir()
    for name in ("wide.png", "tall.png", "one_pixel.png"):
        (folder / name).write_bytes((corpus.root / "odd" / name).read_bytes())
    encoder = ClipStyleEncoder()
    res = bounded(embed_images, scan_folder(folder), encoder, cache_dir=tmp_path / "cache", seconds=30)
    assert len(res.collection) == 3
    assert encoder.largest_resized <= 224 * 224 * encode.MAX_ASPECT
    check_rows(res.views, 3)


def test_nan_from_the_model_skips_that_image_and_is_not_cached(scanned, tmp_path):
    class NaNForRed(FakeEncoder):
        def encode_image_batch(self, batch):
            out = super().encode_image_batch(batch)
            reddish = batch.mean(dim=(2, 3))[:, 0] > 0.8
            out["image"][reddish.numpy()] = np.nan
            return out

    few = scanned.without(
        {r: "not in this test" for r in scanned.items["relpath"] if not r.startswith("odd/")}
    )
    res = embed_images(few, NaNForRed(), cache_dir=tmp_path, batch_size=4)
    reasons = reasons_of(res.collection)
    assert reasons["odd/cmyk.jpg"] == encode.INVALID_OUTPUT  # CMYK (0, 200, 200, 0) is bright red
    check_rows(res.views, len(res.collection))
    retry = FakeEncoder()
    after = embed_images(few, retry, cache_dir=tmp_path, batch_size=4)
    assert retry.n_encoded == sum(r == encode.INVALID_OUTPUT for r in reasons.values())
    assert "odd/cmyk.jpg" in set(after.collection.items["relpath"])


def test_thumbnails_of_every_readable_image(embedded, tmp_path):
    res, _ = embedded
    thumbs = bounded(images.make_thumbnails, res.collection, size=32, cache_dir=tmp_path)
    assert set(thumbs) == set(res.collection.items["relpath"])
    for path in thumbs.values():
        assert path.parent == tmp_path / "thumbs"
        with Image.open(path) as im:
            assert max(im.size) == 32
            assert min(im.size) >= 1


# --------------------------------------------------------------------------- export


def _exported(res, tmp_path, suffix: str):
    n = len(res.collection)
    labels = np.arange(n) % 3
    names = {0: "=SUM(A1:A9)", 1: "-1", 2: "@me"}
    captions = [f"+caption {i}\r=1+1" if i % 2 else f"caption\n{i}" for i in range(n)]
    df = to_dataframe(res.collection, labels, names, np.zeros((n, 2)), captions=captions)
    path = write_table(df, tmp_path / f"export{suffix}")
    with pytest.raises(Exception, match="exists"):
        write_table(df, path)  # never overwritten without asking
    return df, path


def test_csv_export_of_the_corpus_round_trips_and_is_formula_safe(embedded, tmp_path):
    df, path = _exported(embedded[0], tmp_path, ".csv")
    raw = path.read_bytes().decode("utf-8")
    assert spreadsheet_rows(raw) == len(df) + 1  # no name or caption splits a row
    back = pd.read_csv(path, keep_default_na=False, dtype=str)
    assert len(back) == len(df)
    for col in ("path", "cluster_label", "caption", "folder_label"):
        assert back[col].tolist() == [("'" + v) if v.startswith(FORMULA_START) else v for v in df[col]], col
        assert not back[col].str.startswith(FORMULA_START).any(), col
    paths = set(back["path"])
    assert {"names/new\nline.jpg", "names/quo\"te's.jpg", "names/com,ma;semi.jpg", LATIN1_RELPATH} <= paths
    assert {"'names/=1+2.jpg"}.isdisjoint(paths)
    assert "'=evil,folder/x.png" in paths


def test_parquet_export_of_the_corpus_round_trips(embedded, tmp_path):
    # Parquet is typed data, not a spreadsheet: names come back exactly as they are (CSV neutralises them)
    df, path = _exported(embedded[0], tmp_path, ".parquet")
    back = pd.read_parquet(path)
    assert back["path"].tolist() == df["path"].tolist()


# --------------------------------------------------------------------------- the real model


def test_the_bundled_model_explores_a_hostile_subset(corpus, tmp_path):
    """Odd modes, extreme sizes, broken files and awkward names through ``pipeline.explore`` (< 30 images: PCA map)."""
    from vlexplore.config import ClusterConfig, EncodeConfig
    from vlexplore.pipeline import explore
    from vlexplore.pipeline import to_dataframe as pipeline_table

    sub = tmp_path / "subset"
    for folder in ("odd", "broken"):
        for src in (corpus.root / folder).iterdir():
            (sub / folder).mkdir(parents=True, exist_ok=True)
            (sub / folder / src.name).write_bytes(src.read_bytes())
    (sub / "names").mkdir()
    for name in ("=1+2.jpg", "new\nline.jpg", "exif/orient_6.jpg", "exif/corrupt_exif.jpg"):
        (sub / "names" / name.replace("/", "_")).write_bytes(
            (corpus.root / ("names/" + name if "/" not in name else name)).read_bytes()
        )
    expected = {r for r in corpus.relpaths(OK) if r.startswith("odd/")} | {"broken/bad_crc.png"}
    expected |= {
        "names/=1+2.jpg",
        "names/new\nline.jpg",
        "names/exif_orient_6.jpg",
        "names/exif_corrupt_exif.jpg",
    }
    assert len(expected) < 30
    enc = EncodeConfig(model="bundled", device="cpu", batch_size=8, cache_dir=tmp_path / "cache")
    emb, cl = explore(sub, encode=enc, cluster=ClusterConfig(k=3))
    assert set(emb.collection.items["relpath"]) == expected
    assert set(reasons_of(emb.collection)) == {
        r for r in corpus.relpaths("scan") | corpus.relpaths("decode") if r.startswith("broken/")
    }
    check_rows(emb.views, len(expected))
    assert cl.labels.shape == (len(expected),)
    assert set(cl.labels.tolist()) <= {0, 1, 2}
    df = pipeline_table(emb, cl)
    back = pd.read_csv(write_table(df, tmp_path / "out.csv"), keep_default_na=False, dtype=str)
    assert "'names/=1+2.jpg" not in set(back["path"])
    assert "names/new\nline.jpg" in set(back["path"])


@pytest.mark.parametrize("case", ["empty", "one image", "two identical images"])
@pytest.mark.parametrize("method", ["kmeans", "agglomerative", "hdbscan", "prototypes"])
def test_tiny_folders_through_the_pipeline(tmp_path, case, method):
    from vlexplore import pipeline
    from vlexplore.config import ClusterConfig, EncodeConfig
    from vlexplore.errors import ConfigError

    root = tmp_path / "images"
    root.mkdir()
    if case != "empty":
        noise((20, 10), 5).save(root / "a.png")
    if case == "two identical images":
        (root / "b.png").write_bytes((root / "a.png").read_bytes())
    emb = pipeline.embed(scan_folder(root), EncodeConfig(cache_dir=tmp_path / "cache"), encoder=FakeEncoder())
    cfg = ClusterConfig(method=method, prototypes=("red", "blue") if method == "prototypes" else ())
    if case == "empty":
        with pytest.raises(ConfigError, match="no readable images"):
            pipeline.cluster_embedded(emb, cfg, cache_dir=tmp_path / "cache")
        return
    cl = pipeline.cluster_embedded(emb, cfg, cache_dir=tmp_path / "cache")
    n = 1 if case == "one image" else 2
    assert cl.labels.shape == (n,)
    assert len(set(cl.labels.tolist())) == 1
    assert cl.coords.shape == (n, 2)
    assert all(isinstance(cl.names[int(c)], str) for c in cl.labels)
