"""Peak memory of embedding and of decoding huge images, written to ``bench/results/memory.json``.

    python bench/memory.py                       # embeds 500 and 5,000 images; huge-image cases
    python bench/memory.py --sizes 500 5000 20000

Every case runs in a fresh child process, so each peak RSS (``ru_maxrss``) belongs to that case
alone; the child also reports its RSS after the imports (``baseline``), and the case's own cost is
``peak - baseline``. Cases:

1. ``embed-N``: scan + :func:`vlexplore.encode.embed_images` of a generated folder of N small PNGs
   with the test suite's ``FakeEncoder`` (batch 64, 2 decode threads, a fresh cache). Memory should not
   grow with N beyond the output arrays and the per-image bookkeeping (a few hundred bytes each).
2. ``huge-png-*``: a 20,000 × 20,000 RGB PNG (400 Mpx, ~1 MB on disk: mostly zeros, streamed
   through zlib so making it costs no memory) — scanned, opened with the default ``max_pixels``
   (refused from the header), and decoded with ``max_pixels`` raised past it (the cost when a user
   lifts the guard).
3. ``limit-*-png``: the worst images the default guard lets through: 10,000 × 9,999 PNGs (just under
   100 Mpx) in RGBA, palette-with-transparency and 16-bit grey, decoded as the embedding step does
   (``max_side=512``) and at full size (``max_side=None``, what a library caller gets by default).
4. ``huge-jpeg-draft``: a 20,000 × 20,000 JPEG decoded with ``max_side=512`` and the guard raised:
   JPEG's DCT scaling (``draft``) decodes it at 1/8 size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "memory.json"


def rss_mb() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------------- inputs


def make_folder(root: Path, n: int) -> Path:
    """``n`` distinct 48×32 PNGs in 10 sub-folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class_{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, size=3)
        pixels = np.clip(base + rng.normal(0, 20, size=(32, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:06d}.png", compress_level=1)
    return root


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


#: PNG colour type, bytes per pixel, extra chunks — for the kinds of huge PNG made below
PNG_KINDS = {
    "rgb": (2, 8, 3, b""),
    "rgba": (6, 8, 4, b""),
    "palette": (3, 8, 1, _chunk(b"PLTE", bytes(range(0, 256, 1)) * 3) + _chunk(b"tRNS", b"\0")),
    "gray16": (0, 16, 2, b""),
}


def huge_png(path: Path, width: int, height: int, kind: str = "rgb") -> Path:
    """A real ``width × height`` PNG of zeros (a small mark in one corner), streamed row by row."""
    colour_type, depth, bpp, extra = PNG_KINDS[kind]
    comp = zlib.compressobj(9)
    zero_row = b"\0" * (1 + width * bpp)
    mark_row = b"\0" + b"\xff" * (64 * bpp) + b"\0" * ((width - 64) * bpp)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)) + extra)
        idat = bytearray()
        for y in range(height):
            idat += comp.compress(mark_row if y < 64 else zero_row)
            if len(idat) > 1 << 20:
                fh.write(_chunk(b"IDAT", bytes(idat)))
                idat.clear()
        idat += comp.flush()
        fh.write(_chunk(b"IDAT", bytes(idat)))
        fh.write(_chunk(b"IEND", b""))
    return path


def huge_jpeg(path: Path, side: int) -> Path:
    """A ``side × side`` greyscale JPEG (made once; Pillow needs the pixels in memory to encode)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    Image.new("L", (side, side), 40).save(path, quality=50)
    return path


# --------------------------------------------------------------------------- cases (run in a child)


def case_embed(folder: str, cache: str) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import FakeEncoder

    from vlexplore.encode import embed_images
    from vlexplore.images import scan_folder

    encoder = FakeEncoder()
    import torch  # noqa: F401  (imported by the encoder anyway; counted in the baseline)

    baseline = rss_mb()
    t0 = time.perf_counter()
    collection = scan_folder(folder)
    t_scan = time.perf_counter() - t0
    res = embed_images(collection, encoder, cache_dir=cache, batch_size=64, num_workers=2)
    seconds = time.perf_counter() - t0
    out_mb = sum(v.nbytes for v in res.views.values()) / 2**20
    return {
        "n": len(res.collection),
        "baseline_mb": baseline,
        "peak_mb": peak_mb(),
        "output_arrays_mb": out_mb,
        "scan_s": round(t_scan, 2),
        "seconds": round(seconds, 2),
        "images_per_s": round(len(res.collection) / seconds, 1),
    }


def case_open(path: str, max_pixels: int, max_side: int | None, scan: bool = False) -> dict:
    from PIL import Image

    from vlexplore.errors import ImageReadError
    from vlexplore.images import open_image, scan_folder

    Image.MAX_IMAGE_PIXELS = None  # let our own guard decide
    baseline = rss_mb()
    t0 = time.perf_counter()
    if scan:
        c = scan_folder(Path(path).parent, max_pixels=max_pixels)
        outcome = f"items={len(c)}, skipped: {c.skipped['reason'].tolist()}"
    else:
        try:
            img = open_image(path, max_pixels=max_pixels, max_side=max_side)
            outcome = f"decoded to {img.width}×{img.height} {img.mode}"
        except ImageReadError as exc:
            outcome = f"refused: {exc}"
    return {
        "outcome": outcome,
        "baseline_mb": baseline,
        "peak_mb": peak_mb(),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def child(argv: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    kind = argv[0]
    if kind == "embed":
        result = case_embed(argv[1], argv[2])
    else:
        result = case_open(argv[1], int(argv[2]), int(argv[3]) or None, scan=argv[4] == "1")
    print("RESULT " + json.dumps(result))


def run_child(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-1500:], "returncode": proc.returncode}
    out = json.loads(lines[-1][len("RESULT ") :])
    out["case_mb"] = round(out["peak_mb"] - out["baseline_mb"], 1)
    out["peak_mb"], out["baseline_mb"] = round(out["peak_mb"], 1), round(out["baseline_mb"], 1)
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()

    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "command": "python bench/memory.py " + " ".join(sys.argv[1:]),
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="vlexplore-mem-") as tmp:
        tmp = Path(tmp)
        for n in a.sizes:
            t0 = time.perf_counter()
            folder = make_folder(tmp / f"folder{n}", n)
            made = time.perf_counter() - t0
            r = run_child("embed", str(folder), str(tmp / f"cache{n}"))
            r["make_folder_s"] = round(made, 1)
            results["cases"][f"embed-{n}"] = r
            print(f"embed-{n}: {r}", flush=True)
        (tmp / "huge").mkdir()
        png = huge_png(tmp / "huge" / "huge.png", 20_000, 20_000)
        results["files"] = {"huge.png": {"pixels": "20000x20000 RGB", "bytes": png.stat().st_size}}
        cases = {
            "huge-png-scan": ("open", str(png), str(100_000_000), "0", "1"),
            "huge-png-open-default-guard": ("open", str(png), str(100_000_000), "512", "0"),
            "huge-png-open-guard-raised": ("open", str(png), str(500_000_000), "512", "0"),
        }
        for name, args in cases.items():
            results["cases"][name] = run_child(*args)
            print(f"{name}: {results['cases'][name]}", flush=True)
        (tmp / "limit").mkdir()
        for kind in ("rgba", "palette", "gray16"):  # the worst images the default guard lets through
            path = huge_png(tmp / "limit" / f"{kind}.png", 10_000, 9_999, kind)
            results["files"][f"limit-{kind}.png"] = {
                "pixels": f"10000x9999 {kind}",
                "bytes": path.stat().st_size,
            }
            for max_side in (512, 0):
                name = f"limit-{kind}-png" + ("" if max_side else "-full-size")
                results["cases"][name] = run_child("open", str(path), str(100_000_000), str(max_side), "0")
                print(f"{name}: {results['cases'][name]}", flush=True)
        (tmp / "jpeg").mkdir()
        jpg = huge_jpeg(tmp / "jpeg" / "huge.jpg", 20_000)
        results["files"]["huge.jpg"] = {"pixels": "20000x20000 L", "bytes": jpg.stat().st_size}
        results["cases"]["huge-jpeg-draft"] = run_child("open", str(jpg), str(500_000_000), "512", "0")
        print(f"huge-jpeg-draft: {results['cases']['huge-jpeg-draft']}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
