"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist``, exported as a folder of PNGs.

The benchmarks and the demo generator read the original IDX files that Debian installs under
``/usr/share/datasets/fashion-mnist`` (set ``FASHION_MNIST_DIR`` to use another copy). Install them with::

    sudo apt-get install dataset-fashion-mnist

Fashion-MNIST is (c) 2017 Zalando SE, MIT licence (https://github.com/zalandoresearch/fashion-mnist).

Usage::

    python bench/fashion_mnist.py                      # test split -> bench/data/fashion-mnist-test/
    python bench/fashion_mnist.py --split train --limit 5000 --out /tmp/fm
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
BENCH_DIR = Path(__file__).resolve().parent

#: Folder names for the ten labels, in label order (0 = T-shirt/top ... 9 = Ankle boot).
CLASS_NAMES: tuple[str, ...] = (
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DatasetMissingError(FileNotFoundError):
    """The Fashion-MNIST IDX files are not installed."""


def data_dir() -> Path:
    """The folder holding the IDX files: ``$FASHION_MNIST_DIR`` or the Debian install path.

    Raises:
        DatasetMissingError: with the command that installs the files.
    """
    directory = Path(os.environ.get("FASHION_MNIST_DIR", DEBIAN_DIR))
    missing = [name for pair in _FILES.values() for name in pair if not (directory / name).is_file()]
    if missing:
        raise DatasetMissingError(
            f"Fashion-MNIST not found: {directory} lacks {', '.join(missing)}.\n"
            f"Install it with:  sudo apt-get install {DEBIAN_PACKAGE}\n"
            f"(or point FASHION_MNIST_DIR at a folder holding the original *-ubyte.gz files)."
        )
    return directory


def _read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes into an array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack_from(">HBB", raw, 0)
    if zero != 0 or dtype_code != 0x08 or ndim != expected_ndim:
        raise ValueError(f"{path}: not an IDX file of {expected_ndim}-d unsigned bytes (header {raw[:4]!r})")
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    offset = 4 + 4 * ndim
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {data.size} values")
    return data.reshape(shape)


def load_fashion_mnist(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Load one split.

    Args:
        split: ``"test"`` (10,000 images) or ``"train"`` (60,000 images).

    Returns:
        ``images`` uint8 ``(n, 28, 28)`` and ``labels`` int64 ``(n,)`` in ``0..9`` (index into ``CLASS_NAMES``).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = data_dir()
    image_file, label_file = _FILES[split]
    images = _read_idx(directory / image_file, 3)
    labels = _read_idx(directory / label_file, 1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    return images, labels


def save_png(array: np.ndarray, path: Path) -> None:
    """Write a uint8 grayscale array as PNG, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(tmp, format="PNG", optimize=True)
    os.replace(tmp, path)


def export_fashion_mnist(
    out_dir: str | Path | None = None, split: str = "test", limit: int | None = None
) -> Path:
    """Write a split as ``out_dir/<class>/<split>_<index:05d>.png`` (28x28 grayscale).

    Re-running is cheap: files that already exist are left alone.

    Args:
        out_dir: target folder; default ``bench/data/fashion-mnist-<split>`` (git-ignored).
        split: ``"test"`` or ``"train"``.
        limit: export only the first ``limit`` images of the split (in file order); ``None`` = all.

    Returns:
        The output folder.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    out = Path(out_dir) if out_dir is not None else BENCH_DIR / "data" / f"fashion-mnist-{split}"
    images, labels = load_fashion_mnist(split)
    n = len(images) if limit is None else min(limit, len(images))
    for index in range(n):
        path = out / CLASS_NAMES[labels[index]] / f"{split}_{index:05d}.png"
        if not path.exists():
            save_png(images[index], path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export Fashion-MNIST (Debian package) as class folders of PNGs."
    )
    parser.add_argument("--split", choices=sorted(_FILES), default="test")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/data/fashion-mnist-<split>")
    args = parser.parse_args(argv)
    try:
        out = export_fashion_mnist(args.out, split=args.split, limit=args.limit)
    except DatasetMissingError as exc:
        print(exc, file=sys.stderr)
        return 2
    count = sum(1 for _ in out.rglob("*.png"))
    print(f"{out}: {count} PNG files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
