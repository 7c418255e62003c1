"""Rebuild the committed demo folder ``demo/`` (deterministic; safe to re-run).

Contents:

- ``demo/<class>/test_<index:05d>.png``: the first 25 images of each of the ten classes in the
  Fashion-MNIST *test* split (28x28 grayscale PNG, unchanged pixels). Needs the Debian package::

      sudo apt-get install dataset-fashion-mnist

- ``demo/photos/<name>.jpg``: a deliberately mixed eleventh folder of colour photos that ship
  inside scikit-image (public domain / CC0 only), resized to at most 512 px on the longest side,
  JPEG quality 85. scikit-image is *not* a project dependency; install it once for this script::

      pip install scikit-image

  (the script only reads the image files from the installed package; it does not import skimage).

- ``demo/LICENSE.md``: the source and licence of every file.

Usage::

    python bench/make_demo.py [--out demo]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

try:
    from fashion_mnist import CLASS_NAMES, DatasetMissingError, load_fashion_mnist, save_png
except ImportError:  # imported as bench.make_demo
    from bench.fashion_mnist import CLASS_NAMES, DatasetMissingError, load_fashion_mnist, save_png

REPO = Path(__file__).resolve().parent.parent
PER_CLASS = 25
PHOTO_DIR = "photos"
MAX_SIDE = 512
JPEG_QUALITY = 85

# (output name, file in skimage/data, description, licence as stated in skimage/data/_fetchers.py)
# Only images whose scikit-image docstring states CC0 or public domain. Left out on purpose:
# immunohistochemistry (ihc.png: "No known copyright restrictions" only) and motorcycle_left
# (Middlebury 2014 stereo data: no licence stated).
PHOTOS: tuple[tuple[str, str, str, str], ...] = (
    (
        "astronaut",
        "astronaut.png",
        "Eileen Collins, NASA astronaut; NASA Great Images database (https://flic.kr/p/r9qvLn)",
        'Public domain (NASA): "No known copyright restrictions, released into the public domain."',
    ),
    (
        "chelsea_cat",
        "chelsea.png",
        "Chelsea the cat; photograph by Stefan van der Walt",
        'CC0 1.0 ("No copyright restrictions. CC0 by the photographer (Stefan van der Walt).")',
    ),
    (
        "coffee",
        "coffee.png",
        "Coffee cup, courtesy of Pikolo Espresso Bar; photograph by Rachel Michetti",
        'CC0 1.0 ("No copyright restrictions. CC0 by the photographer (Rachel Michetti).")',
    ),
    (
        "rocket",
        "rocket.jpg",
        "Launch of DSCOVR on Falcon 9, SpaceX (https://www.flickr.com/photos/spacexphotos/16511594820/)",
        'Public domain ("captured by SpaceX and released in the public domain")',
    ),
    (
        "hubble_deep_field",
        "hubble_deep_field.jpg",
        "Hubble eXtreme Deep Field, NASA "
        "(http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/)",
        'Public domain (NASA: "may be freely used in the public domain")',
    ),
    (
        "retina",
        "retina.jpg",
        "Fundus photograph of a normal left eye, Mikael Häggström "
        "(https://commons.wikimedia.org/wiki/File:Fundus_photograph_of_normal_left_eye.jpg)",
        "CC0 1.0 Universal Public Domain Dedication",
    ),
)


def skimage_data_dir() -> Path:
    """The ``skimage/data`` folder of the installed scikit-image, found without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "scikit-image is not installed; the demo photos come from its bundled data.\n"
            "Install it once (it is not a project dependency):  pip install scikit-image"
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [file for _, file, _, _ in PHOTOS if not (directory / file).is_file()]
    if missing:
        raise SystemExit(f"{directory} lacks {', '.join(missing)}; reinstall scikit-image.")
    return directory


def skimage_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scikit-image")
    except PackageNotFoundError:
        return "unknown"


def first_per_class(labels: np.ndarray, per_class: int) -> list[int]:
    """Indices of the first ``per_class`` items of each label, sorted (deterministic)."""
    chosen = [int(i) for c in range(len(CLASS_NAMES)) for i in np.flatnonzero(labels == c)[:per_class]]
    return sorted(chosen)


def save_photo(source: Path, target: Path) -> tuple[int, int]:
    with Image.open(source) as im:
        im = im.convert("RGB")
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)  # keeps aspect; never enlarges
        tmp = target.with_name(f".{target.name}.tmp")
        im.save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        tmp.replace(target)
        return im.size


def license_text(
    n_per_class: int, photos: list[tuple[str, str, str, str, tuple[int, int]]], sk_version: str
) -> str:
    lines = [
        "# Demo images: sources and licences",
        "",
        "Generated by `bench/make_demo.py` (deterministic; re-run it to rebuild this folder).",
        "",
        "## Fashion-MNIST (10 folders, " + f"{n_per_class * len(CLASS_NAMES)} images)",
        "",
        f"The first {n_per_class} images of each class in the Fashion-MNIST **test** split",
        "(`t10k-images-idx3-ubyte.gz`), saved unchanged as 28×28 grayscale PNG; the file name is the",
        "image's index in the test split (`test_00012.png` = test image 12). Folder = class:",
        ", ".join(f"`{name}`" for name in CLASS_NAMES) + ".",
        "",
        "- Source: Zalando Research, <https://github.com/zalandoresearch/fashion-mnist>,",
        "  via the Debian package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/`).",
        "- Licence: MIT. Copyright © 2017 Zalando SE, https://tech.zalando.com",
        "",
        "  > Permission is hereby granted, free of charge, to any person obtaining a copy of this software and",
        '  > associated documentation files (the "Software"), to deal in the Software without restriction,',
        "  > including without limitation the rights to use, copy, modify, merge, publish, distribute,",
        "  > sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is",
        "  > furnished to do so, subject to the following conditions:",
        "  >",
        "  > The above copyright notice and this permission notice shall be included in all copies or",
        "  > substantial portions of the Software.",
        "  >",
        '  > THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT',
        "  > NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND",
        "  > NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,",
        "  > DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT",
        "  > OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.",
        "",
        f"## `{PHOTO_DIR}/` ({len(photos)} images)",
        "",
        "A deliberately mixed folder: colour photos that are not fashion at all. They ship inside",
        f"scikit-image {sk_version} (`skimage/data/`). The scikit-image package licence (BSD-3-Clause) covers",
        "its code; each image's own licence is stated in the docstring of its loader in",
        "`skimage/data/_fetchers.py`, quoted below. Only public-domain / CC0 images were taken",
        "(`immunohistochemistry` and `motorcycle_left` were left out: no CC0/public-domain statement).",
        f"Converted to RGB, resized to at most {MAX_SIDE} px on the longest side (Lanczos), JPEG quality {JPEG_QUALITY}.",
        "",
        "| File | Size | Source (skimage file) | Description | Licence |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, file, description, licence, (w, h) in photos:
        lines.append(f"| `{PHOTO_DIR}/{name}.jpg` | {w}×{h} | `{file}` | {description} | {licence} |")
    lines.append("")
    return "\n".join(lines)


def make_demo(out: Path) -> dict[str, int]:
    """Write the demo folder; returns the number of images per sub-folder."""
    images, labels = load_fashion_mnist("test")
    sk_dir = skimage_data_dir()

    out.mkdir(parents=True, exist_ok=True)
    for folder in (*CLASS_NAMES, PHOTO_DIR):  # rebuild only the folders this script owns
        shutil.rmtree(out / folder, ignore_errors=True)

    counts = dict.fromkeys(CLASS_NAMES, 0)
    for index in first_per_class(labels, PER_CLASS):
        name = CLASS_NAMES[labels[index]]
        save_png(images[index], out / name / f"test_{index:05d}.png")
        counts[name] += 1

    (out / PHOTO_DIR).mkdir()
    written = []
    for name, file, description, licence in PHOTOS:
        size = save_photo(sk_dir / file, out / PHOTO_DIR / f"{name}.jpg")
        written.append((name, file, description, licence, size))
    counts[PHOTO_DIR] = len(written)

    (out / "LICENSE.md").write_text(license_text(PER_CLASS, written, skimage_version()), encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the demo image folder.")
    parser.add_argument("--out", type=Path, default=REPO / "demo")
    args = parser.parse_args(argv)
    try:
        counts = make_demo(args.out)
    except DatasetMissingError as exc:
        print(exc, file=sys.stderr)
        return 2
    total_bytes = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    for folder, n in counts.items():
        print(f"  {folder:<12} {n:4d}")
    print(f"{args.out}: {sum(counts.values())} images in {len(counts)} folders, {total_bytes / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
