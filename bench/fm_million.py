"""A folder of up to 2,100,000 distinct labelled product photos, made from Fashion-MNIST, for the scale benches.

    python bench/fm_million.py                          # 1,000,000 PNGs -> bench/data/fashion-mnist-1m/
    python bench/fm_million.py --n 200000 --out DIR

Image ``i`` is Fashion-MNIST image ``i mod 70,000`` (train + test), in variant ``i // 70,000``: mirrored
or not, shifted by up to two pixels, with the variant's number written into the top-left two pixels, so
every file has its own content (the cache keys images by content) and the copies of one photo are near
duplicates, as in a real scraped collection. Files go to ``<class>/<variant>/<index>.png`` (folder names
are the labels; at most 70,000 files per folder). A file that already exists is kept, so an interrupted
run resumes. Uses two processes.
"""

from __future__ import annotations

import argparse
import functools
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from fashion_mnist import CLASS_NAMES, load_fashion_mnist, save_png  # noqa: E402

N_BASE = 70_000
SHIFTS = [(dx, dy) for dy in (-1, 0, 1) for dx in (-2, -1, 0, 1, 2)]
N_VARIANTS = 2 * len(SHIFTS)


def variant(img: np.ndarray, v: int) -> np.ndarray:
    """Variant ``v`` (0 = the photo itself) of a 28 × 28 uint8 image."""
    dx, dy = SHIFTS[(v // 2 + len(SHIFTS) // 2) % len(SHIFTS)]  # v = 0, 1: no shift
    out = np.roll(img[:, ::-1] if v % 2 else img, (dy, dx), axis=(0, 1)).copy()
    if v:
        out[0, 0], out[0, 1] = v % 256, 255 - v % 256
    return out


def _write(args: tuple[int, int, Path]) -> int:
    start, stop, out = args
    images, labels = _data()
    made = 0
    for i in range(start, stop):
        v, b = divmod(i, N_BASE)
        path = out / CLASS_NAMES[int(labels[b])] / f"{v:02d}" / f"{b:05d}.png"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(variant(images[b], v), path)
        made += 1
    return made


@functools.cache
def _data() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's test then train images and labels, once per process."""
    train, train_y = load_fashion_mnist("train")
    test, test_y = load_fashion_mnist("test")
    return np.concatenate([test, train]), np.concatenate([test_y, train_y])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=BENCH / "data" / "fashion-mnist-1m")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if not 1 <= a.n <= N_BASE * N_VARIANTS:
        raise SystemExit(f"--n must be between 1 and {N_BASE * N_VARIANTS:,}")
    chunk = 20_000
    jobs = [(s, min(a.n, s + chunk), a.out) for s in range(0, a.n, chunk)]
    with ProcessPoolExecutor(a.workers) as pool:
        made = sum(pool.map(_write, jobs))
    print(f"{a.out}: {a.n:,} images ({made:,} written now)")


if __name__ == "__main__":
    main()
