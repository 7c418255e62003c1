"""The paper-reproduction bench on tiny files in CIFAR-10's and STL-10's own on-disk formats."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import datasets  # noqa: E402
import papers  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _images(n_per: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for label, rgb in enumerate(COLOURS.values()):
        for _ in range(n_per):
            noise = rng.normal(0, 10, size=(size, size, 3))
            imgs.append(np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(imgs), labels


@pytest.fixture
def cifar(tmp_path) -> tuple[Path, np.ndarray, list[int]]:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    imgs, labels = _images(4, 32)
    planes = imgs.transpose(0, 3, 1, 2).reshape(len(imgs), 3072)  # R, G, B planes, row-major
    with open(root / "test_batch", "wb") as fh:
        pickle.dump({b"data": planes, b"labels": labels}, fh)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [n.encode() for n in COLOURS]}, fh)
    return root, imgs, labels


@pytest.fixture
def stl(tmp_path) -> tuple[Path, np.ndarray, list[int]]:
    root = tmp_path / "stl10_binary"
    root.mkdir()
    imgs, labels = _images(2, 96, seed=1)
    imgs[:, 0, :, :] = 0  # a black top row: a wrong transpose would move it to the left column
    imgs.transpose(0, 3, 2, 1).tofile(root / "test_X.bin")  # planes stored column-major
    (np.asarray(labels, np.uint8) + 1).tofile(root / "test_y.bin")
    (root / "class_names.txt").write_text("\n".join(COLOURS) + "\n")
    return root, imgs, labels


def test_cifar10_images_and_labels_round_trip(cifar):
    root, imgs, labels = cifar
    names, rows = datasets.read_cifar10(root)
    got = list(rows)
    assert names == list(COLOURS)
    assert [lab for _, lab in got] == labels
    np.testing.assert_array_equal(np.stack([img for img, _ in got]), imgs)


def test_stl10_images_and_labels_round_trip(stl):
    root, imgs, labels = stl
    names, rows = datasets.read_stl10(root)
    got = list(rows)
    assert names == list(COLOURS)
    assert [lab for _, lab in got] == labels
    np.testing.assert_array_equal(np.stack([img for img, _ in got]), imgs)


def test_export_writes_class_folders_once(cifar, tmp_path):
    root, _imgs, _ = cifar
    out = tmp_path / "out"
    datasets.export("cifar10", root, out, limit=9)
    files = sorted(out.rglob("*.png"))
    assert len(files) == 9
    assert {f.parent.name for f in files} == {"red", "green", "blue"}
    stamp = files[0].stat().st_mtime_ns
    datasets.export("cifar10", root, out, limit=9)
    assert files[0].stat().st_mtime_ns == stamp


def test_rows_run_through_the_pipeline(cifar, tmp_path):
    import vlexplore as vx

    root, _, _ = cifar
    out = tmp_path / "out"
    names = datasets.export("cifar10", root, out)
    emb = vx.embed(
        vx.scan(out, cache_dir=tmp_path / "c"),
        vx.EncodeConfig(cache_dir=tmp_path / "c"),
        encoder=FakeEncoder(),
    )
    rows = papers.run_rows(emb, names, rows=("kmeans", "zero-shot", "text-guided"))
    assert rows["kmeans"]["acc"] == 100.0
    assert rows["zero-shot"]["acc"] == 100.0
    assert "skipped" in rows["text-guided"]
    table = papers.table("cifar10", rows)
    assert "| kmeans | 100.0 |" in table
    assert "| 74.0 |" in table
