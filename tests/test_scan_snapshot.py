"""The scan snapshot (vlexplore.scanfast): an unchanged folder is checked in numpy, a changed file is read again."""

from __future__ import annotations

import os
import time
import warnings

import pandas as pd
import pytest

from vlexplore import collection, scanfast
from vlexplore.collection import scan_folder


@pytest.fixture
def folder(tmp_path, write_image, monkeypatch):
    monkeypatch.setattr(collection, "RACY_NS", 0)  # files written just now are trusted by the index
    root = tmp_path / "photos"
    for i in range(6):
        write_image(root / ("a" if i % 2 else "b") / f"img{i}.png", colour=(40 * i, 90, 200 - 30 * i), seed=i)
    return root


def _fresh(root, tmp_path):
    """The scan of a cache that has never seen the folder."""
    return scan_folder(root, cache_dir=tmp_path / f"fresh-{time.monotonic_ns()}")


def _snapshots(cache):
    return list(cache.rglob(f"{scanfast.SNAPSHOT_DIR}/*"))


def _same(a, b):
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.skipped, b.skipped)


def test_a_second_scan_reads_no_file_and_gives_the_same(folder, cache_dir, tmp_path, monkeypatch):
    first = scan_folder(folder, cache_dir=cache_dir)
    assert _snapshots(cache_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("a file was read although the snapshot knows it")

    monkeypatch.setattr(collection, "_probe", refuse)
    monkeypatch.setattr(collection._StatIndex, "lookup", lambda self, keys: {} if not keys else refuse())
    _same(scan_folder(folder, cache_dir=cache_dir), first)


def test_changed_new_and_removed_files_are_seen(folder, cache_dir, tmp_path, write_image):
    scan_folder(folder, cache_dir=cache_dir)
    changed = folder / "a" / "img1.png"
    write_image(changed, colour=(1, 2, 3), seed=99)  # new content
    st = os.stat(changed)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    write_image(folder / "c" / "new.png", colour=(9, 9, 9))
    (folder / "b" / "img0.png").unlink()
    again = scan_folder(folder, cache_dir=cache_dir)
    _same(again, _fresh(folder, tmp_path))
    assert "c/new.png" in again.items["relpath"].tolist()
    assert "b/img0.png" not in again.items["relpath"].tolist()


def test_a_known_file_over_max_pixels_is_skipped(folder, cache_dir, tmp_path):
    scan_folder(folder, cache_dir=cache_dir)
    small = scan_folder(folder, cache_dir=cache_dir, max_pixels=10)
    assert len(small) == 0
    assert len(small.skipped) == 6
    _same(small, scan_folder(folder, cache_dir=tmp_path / "other", max_pixels=10))


def test_a_damaged_snapshot_costs_speed_only(folder, cache_dir, tmp_path):
    first = scan_folder(folder, cache_dir=cache_dir)
    for snap in _snapshots(cache_dir):
        snap.write_bytes(b"not a snapshot")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        again = scan_folder(folder, cache_dir=cache_dir)
    _same(again, first)
    _same(scan_folder(folder, cache_dir=cache_dir), first)  # written again, read again
