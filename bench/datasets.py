"""Standard on-disk image datasets, exported as class folders the pipeline can scan.

Readers for the formats the papers' datasets ship in, written from the formats' own descriptions:

* CIFAR-10, ``cifar-10-batches-py/``: pickled dicts (``data_batch_1``…``5``, ``test_batch``) whose
  ``data`` is ``uint8 (n, 3072)`` (the red, green, then blue 32×32 planes of each image) and
  ``labels`` a list of ints; class names in ``batches.meta`` (``label_names``).
* STL-10, ``stl10_binary/``: ``{train,test}_X.bin`` raw ``uint8`` images of 3×96×96 stored column-major
  (each plane transposed), ``{train,test}_y.bin`` labels 1…10, ``class_names.txt`` one name a line.

Each export writes ``<out>/<class name>/<index>.png`` and is skipped when the folder already holds the
expected number of files. Usage::

    python bench/datasets.py cifar10 ~/data/cifar-10-batches-py --out bench/data/cifar10-test
    python bench/datasets.py stl10 ~/data/stl10_binary --out bench/data/stl10-test
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="bytes")  # the files were written by Python 2


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_cifar10(root: Path, split: str = "test") -> tuple[list[str], Iterator[tuple[np.ndarray, int]]]:
    """``(class names, iterator of (uint8 (32, 32, 3) image, label))`` from ``cifar-10-batches-py/``."""
    root = Path(root)
    meta = _unpickle(root / "batches.meta")
    names = [_text(n) for n in meta.get(b"label_names", meta.get("label_names", []))]

    def rows() -> Iterator[tuple[np.ndarray, int]]:
        for name in CIFAR10_FILES[split]:
            batch = _unpickle(root / name)
            data = np.asarray(batch.get(b"data", batch.get("data")), dtype=np.uint8)
            labels = batch.get(b"labels", batch.get("labels"))
            for row, label in zip(data.reshape(-1, 3, 32, 32), labels):
                yield row.transpose(1, 2, 0), int(label)

    return names, rows()


def read_stl10(root: Path, split: str = "test") -> tuple[list[str], Iterator[tuple[np.ndarray, int]]]:
    """``(class names, iterator of (uint8 (96, 96, 3) image, label 0…9))`` from ``stl10_binary/``."""
    root = Path(root)
    names = [line.strip() for line in (root / "class_names.txt").read_text().splitlines() if line.strip()]
    images = np.fromfile(root / f"{split}_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
    labels = np.fromfile(root / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1

    def rows() -> Iterator[tuple[np.ndarray, int]]:
        for img, label in zip(images, labels):
            yield img.transpose(2, 1, 0), int(label)  # planes are stored column-major

    return names, rows()


READERS = {"cifar10": read_cifar10, "stl10": read_stl10}


def export(kind: str, root: Path, out: Path, *, split: str = "test", limit: int | None = None) -> list[str]:
    """Write ``out/<class>/<i>.png`` for the first ``limit`` images of ``split``; returns the class names."""
    names, rows = READERS[kind](root, split)
    out = Path(out)
    for i, (img, label) in enumerate(rows):
        if limit is not None and i >= limit:
            break
        target = out / names[label].replace(" ", "_") / f"{i:05d}.png"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, "RGB").save(target)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=sorted(READERS))
    ap.add_argument("root", type=Path, help="cifar-10-batches-py/ or stl10_binary/")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", default="test", choices=["train", "test"])
    ap.add_argument("--limit", type=int, default=None)
    a = ap.parse_args()
    names = export(a.kind, a.root, a.out, split=a.split, limit=a.limit)
    print(f"{a.out}: {len(names)} classes ({', '.join(names)})")


if __name__ == "__main__":
    main()
