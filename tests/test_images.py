"""Scanning folders, opening awkward images, thumbnails."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlexplore import collection as scan
from vlexplore import images, thumbs
from vlexplore.errors import ConfigError, ImageReadError
from vlexplore.images import ITEM_COLUMNS, Collection, open_image, scan_folder, thumbnail

# --------------------------------------------------------------------------- scan_folder


def test_scan_lists_every_good_image_in_items(image_folder):
    c = scan_folder(image_folder.root)
    assert set(c.items["relpath"]) == image_folder.scanned


def test_scan_lists_every_broken_file_with_its_reason(image_folder):
    c = scan_folder(image_folder.root)
    reasons = dict(zip(c.skipped["relpath"], c.skipped["reason"]))
    assert set(reasons) == set(image_folder.broken_at_scan)
    for relpath, fragment in image_folder.broken_at_scan.items():
        assert fragment in reasons[relpath], relpath


def test_scan_ignores_hidden_and_non_image_files_silently(image_folder):
    c = scan_folder(image_folder.root)
    listed = set(c.items["relpath"]) | set(c.skipped["relpath"])
    assert not listed & set(image_folder.ignored)


def test_items_have_the_documented_columns_and_dtypes(image_folder):
    items = scan_folder(image_folder.root).items
    assert tuple(items.columns) == ITEM_COLUMNS
    for col in ("bytes", "mtime_ns", "width", "height"):
        assert items[col].dtype == np.int64, col
    row = items.set_index("relpath").loc["red/red_0.jpg"]
    assert (row["width"], row["height"], row["format"]) == (32, 24, "JPEG")
    assert row["path"] == str(image_folder.root / "red" / "red_0.jpg")
    assert row["bytes"] == (image_folder.root / "red" / "red_0.jpg").stat().st_size
    data = (image_folder.root / "red" / "red_0.jpg").read_bytes()
    assert row["fingerprint"] == images.content_key(data)
    assert re.fullmatch(r"b3[0-9a-f]{32}", row["fingerprint"])


def test_items_are_sorted_by_relpath_and_repeatable(image_folder):
    first, second = scan_folder(image_folder.root), scan_folder(image_folder.root)
    assert first.items["relpath"].tolist() == sorted(first.items["relpath"])
    assert first.items.equals(second.items)
    assert first.skipped.equals(second.skipped)


def test_labels_come_from_sub_folder_names(image_folder):
    c = scan_folder(image_folder.root)
    expected = [r.split("/")[0] for r in c.items["relpath"]]
    assert c.labels.tolist() == expected
    assert c.items["folder_label"].tolist() == expected


def test_labels_are_none_when_an_image_sits_in_the_root(image_folder, write_image):
    write_image(image_folder.root / "loose.png")
    c = scan_folder(image_folder.root)
    assert c.items.set_index("relpath").loc["loose.png", "folder_label"] == ""
    assert c.labels is None


def test_labels_are_none_with_a_single_sub_folder(tmp_path, write_image):
    for i in range(2):
        write_image(tmp_path / "only" / f"{i}.png", seed=i)
    assert scan_folder(tmp_path).labels is None


def test_fingerprint_depends_on_content_not_name_or_time(image_folder):
    src = image_folder.root / "red" / "red_1.png"
    shutil.copy(src, image_folder.root / "red" / "copy.png")
    os.utime(image_folder.root / "red" / "copy.png", ns=(1, 1))
    changed = bytearray(src.read_bytes())
    changed[-20] ^= 0xFF  # inside the IEND/IDAT tail: a different file with the same header
    (image_folder.root / "red" / "changed.png").write_bytes(bytes(changed))
    fp = scan_folder(image_folder.root).items.set_index("relpath")["fingerprint"]
    assert fp["red/copy.png"] == fp["red/red_1.png"]
    assert fp["red/changed.png"] != fp["red/red_1.png"]


def test_scan_without_recursion_sees_only_the_top_level(image_folder, write_image):
    write_image(image_folder.root / "top.jpg")
    c = scan_folder(image_folder.root, recursive=False)
    assert c.items["relpath"].tolist() == ["top.jpg"]


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p / "file.txt"], ids=["missing", "file"])
def test_scan_refuses_a_root_that_is_not_a_folder(tmp_path, make):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        scan_folder(make(tmp_path))


def test_scan_follows_symlinks_that_stay_inside_the_root(image_folder):
    (image_folder.root / "red" / "link.png").symlink_to(image_folder.root / "red" / "red_1.png")
    (image_folder.root / "alias").symlink_to(image_folder.root / "blue", target_is_directory=True)
    c = scan_folder(image_folder.root)
    fp = c.items.set_index("relpath")["fingerprint"]
    assert fp["red/link.png"] == fp["red/red_1.png"]
    assert not any(r.startswith("alias/") for r in c.items["relpath"])  # the real folder wins, listed once
    assert "blue/blue_0.jpg" in fp


def test_scan_does_not_follow_symlinks_that_leave_the_root(image_folder, tmp_path, write_image):
    outside = write_image(tmp_path / "outside" / "secret.png")
    (image_folder.root / "red" / "out.png").symlink_to(outside)
    (image_folder.root / "elsewhere").symlink_to(outside.parent, target_is_directory=True)
    c = scan_folder(image_folder.root)
    reasons = dict(zip(c.skipped["relpath"], c.skipped["reason"]))
    assert "outside the folder" in reasons["red/out.png"]
    assert "outside the folder" in reasons["elsewhere"]
    assert not c.items["path"].str.contains("secret").any()


def test_scan_survives_symlink_loops(image_folder):
    (image_folder.root / "red" / "loop").symlink_to(image_folder.root, target_is_directory=True)
    (image_folder.root / "green" / "sub").mkdir()
    (image_folder.root / "green" / "sub" / "up").symlink_to(
        image_folder.root / "green", target_is_directory=True
    )
    c = scan_folder(image_folder.root)
    assert set(c.items["relpath"]) == image_folder.scanned


def test_unreadable_file_is_skipped_with_a_reason(image_folder, monkeypatch):
    locked = str(image_folder.root / "red" / "red_0.jpg")

    def fake_open(path, *args, **kwargs):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(scan, "open", fake_open, raising=False)
    c = scan_folder(image_folder.root)
    reasons = dict(zip(c.skipped["relpath"], c.skipped["reason"]))
    assert reasons["red/red_0.jpg"] == "file cannot be read (permission denied)"
    assert "red/red_0.jpg" not in set(c.items["relpath"])


def test_unreadable_sub_folder_is_skipped_with_a_reason(image_folder, monkeypatch):
    real_scandir = os.scandir
    locked = str(image_folder.root / "green")

    def fake_scandir(path="."):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(scan.os, "scandir", fake_scandir)
    c = scan_folder(image_folder.root)
    reasons = dict(zip(c.skipped["relpath"], c.skipped["reason"]))
    assert reasons["green"] == "folder cannot be read (permission denied)"
    assert not any(r.startswith("green/") for r in c.items["relpath"])


def test_max_pixels_skips_large_images_from_the_header(image_folder):
    c = scan_folder(image_folder.root, max_pixels=30 * 30)
    reasons = dict(zip(c.skipped["relpath"], c.skipped["reason"]))
    assert "decompression bomb" in reasons["red/truncated.jpg"]  # 64×64 > 900, judged from the header alone
    assert "red/red_0.jpg" in set(c.items["relpath"])  # 32×24 fits


def test_scan_reports_progress_up_to_the_total(image_folder):
    calls = []
    scan_folder(image_folder.root, on_progress=lambda done, total: calls.append((done, total)))
    n = len(image_folder.scanned) + len(image_folder.broken_at_scan)
    assert calls
    assert calls[-1] == (n, n)


def test_without_moves_items_to_skipped(image_folder):
    c = scan_folder(image_folder.root)
    d = c.without({"red/red_0.jpg": "truncated file"})
    assert len(d) == len(c) - 1
    assert "red/red_0.jpg" not in set(d.items["relpath"])
    assert d.skipped.set_index("relpath").loc["red/red_0.jpg", "reason"] == "truncated file"
    assert d.items.index.tolist() == list(range(len(d)))
    assert len(c) == len(image_folder.scanned)  # the original is untouched


def test_without_rejects_unknown_relpaths(image_folder):
    with pytest.raises(ConfigError, match=r"nope.jpg"):
        scan_folder(image_folder.root).without({"nope.jpg": "x"})


# --------------------------------------------------------------------------- open_image


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


@pytest.fixture
def odd(tmp_path) -> dict[str, Path]:
    """One file per awkward kind of image."""
    p = tmp_path
    palette = Image.new("P", (6, 4), 0)
    palette.putpalette([255, 0, 0] * 256)
    gray16 = Image.fromarray(np.array([[65535, 0, 32896]], dtype=np.uint16))
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(p / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return {
        "one_pixel": _save(Image.new("RGB", (1, 1), (10, 200, 30)), p / "one.png"),
        "cmyk": _save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), p / "cmyk.jpg", quality=95),
        "palette_transparent": _save(palette, p / "palette.png", transparency=0),
        "gray16": _save(gray16, p / "gray16.png"),
        "la": _save(Image.new("LA", (4, 4), (0, 0)), p / "la.png"),
        "rgba_half": _save(Image.new("RGBA", (4, 4), (0, 0, 0, 128)), p / "rgba.png"),
        "bilevel": _save(Image.new("1", (4, 4), 1), p / "bilevel.bmp"),
        "anim": p / "anim.gif",
    }


@pytest.mark.parametrize(
    ("name", "size", "pixel"),
    [
        ("one_pixel", (1, 1), (10, 200, 30)),
        ("cmyk", (8, 8), (255, 0, 0)),
        ("palette_transparent", (6, 4), (255, 255, 255)),  # transparent → white, not the palette red
        ("gray16", (3, 1), (255, 255, 255)),  # 65535 → 255, not clipped garbage
        ("la", (4, 4), (255, 255, 255)),
        ("rgba_half", (4, 4), (127, 127, 127)),
        ("bilevel", (4, 4), (255, 255, 255)),
        ("anim", (8, 8), (255, 0, 0)),  # first frame
    ],
)
def test_open_image_returns_rgb_for_awkward_modes(odd, name, size, pixel):
    img = open_image(odd[name])
    assert img.mode == "RGB"
    assert img.size == size
    assert np.abs(np.subtract(img.getpixel((0, 0)), pixel)).max() <= 3


def test_open_image_scales_16_bit_values_to_8_bits(odd):
    row = np.asarray(open_image(odd["gray16"]))[0, :, 0]
    assert row.tolist() == [255, 0, 128]


def _two_tone_with_orientation(path: Path, orientation: int) -> Path:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes(), quality=95)
    return path


@pytest.mark.parametrize(("orientation", "top"), [(6, (255, 0, 0)), (8, (0, 0, 255))])
def test_open_image_applies_exif_rotation(tmp_path, orientation, top):
    img = open_image(_two_tone_with_orientation(tmp_path / f"o{orientation}.jpg", orientation))
    assert img.size == (20, 40)  # sides swapped
    assert np.abs(np.subtract(img.getpixel((10, 5)), top)).max() < 40


def test_scan_reports_size_after_exif_rotation(tmp_path):
    _two_tone_with_orientation(tmp_path / "rotated.jpg", 6)
    row = scan_folder(tmp_path).items.iloc[0]
    assert (row["width"], row["height"]) == (20, 40)


@pytest.mark.parametrize("relpath", ["red/truncated.jpg", "green/truncated.png"])
def test_open_image_rejects_truncated_files(image_folder, relpath):
    with pytest.raises(ImageReadError, match="truncated file"):
        open_image(image_folder.root / relpath)


@pytest.mark.parametrize(
    ("relpath", "reason"),
    [("green/page.jpg", "not an image (text/HTML)"), ("red/empty.jpg", "empty file")],
)
def test_open_image_explains_non_images(image_folder, relpath, reason):
    with pytest.raises(ImageReadError, match=re.escape(reason)):
        open_image(image_folder.root / relpath)


def test_open_image_refuses_too_many_pixels_before_decoding(image_folder):
    with pytest.raises(ImageReadError, match="decompression bomb"):
        open_image(image_folder.root / "red" / "red_0.jpg", max_pixels=100)


def test_open_image_max_side_decodes_jpeg_at_reduced_scale(tmp_path, write_image):
    path = write_image(tmp_path / "big.jpg", size=(800, 600))
    assert open_image(path).size == (800, 600)
    small = open_image(path, max_side=100)
    assert small.mode == "RGB"
    assert min(small.size) >= 100
    assert small.size[0] < 800


# --------------------------------------------------------------------------- thumbnails


def test_thumbnail_is_a_cached_jpeg_with_the_longest_side_given(image_folder, cache_dir):
    c = scan_folder(image_folder.root)
    path = thumbnail(c, "red/red_1.png", size=64, cache_dir=cache_dir)
    fp = c.items.set_index("relpath").loc["red/red_1.png", "fingerprint"]
    assert path == cache_dir / "thumbs" / f"{fp}-64.jpg"
    with Image.open(path) as img:
        assert img.format == "JPEG"
        assert max(img.size) == 64
        assert img.size == (43, 64)
    assert not list((cache_dir / "thumbs").glob("*.tmp"))


def test_thumbnail_second_call_reuses_the_file(image_folder, cache_dir, monkeypatch):
    c = scan_folder(image_folder.root)
    first = thumbnail(c, "blue/blue_0.jpg", cache_dir=cache_dir)
    mtime = first.stat().st_mtime_ns

    def no_decode(*args, **kwargs):
        raise AssertionError("a cached thumbnail must not be decoded again")

    monkeypatch.setattr(thumbs, "read_image_bytes", no_decode)
    assert thumbnail(c, "blue/blue_0.jpg", cache_dir=cache_dir) == first
    assert first.stat().st_mtime_ns == mtime


def test_thumbnail_of_a_plain_path_uses_the_scan_fingerprint(image_folder, cache_dir):
    c = scan_folder(image_folder.root)
    by_path = thumbnail(image_folder.root / "green" / "green_3.gif", size=32, cache_dir=cache_dir)
    assert by_path == thumbnail(c, "green/green_3.gif", size=32, cache_dir=cache_dir)


def test_thumbnail_rejects_an_unknown_relpath(image_folder, cache_dir):
    with pytest.raises(ConfigError, match=r"nope.jpg"):
        thumbnail(scan_folder(image_folder.root), "nope.jpg", cache_dir=cache_dir)


def test_make_thumbnails_skips_undecodable_images(image_folder, cache_dir):
    c = scan_folder(image_folder.root)
    calls = []
    made = images.make_thumbnails(
        c, size=32, cache_dir=cache_dir, on_progress=lambda d, t: calls.append((d, t))
    )
    assert set(made) == set(image_folder.good)
    assert all(p.is_file() for p in made.values())
    assert calls[-1] == (len(c), len(c))


def test_thumbnails_at_answer_each_row_in_order(image_folder, cache_dir):
    c = scan_folder(image_folder.root)
    rows = list(range(len(c)))[::-1]
    first = images.thumbnails_at(c, rows, size=32, cache_dir=cache_dir)
    relpaths = c.items["relpath"].tolist()
    for row, got in zip(rows, first):
        if isinstance(got, Path):
            assert got == thumbnail(c, relpaths[row], size=32, cache_dir=cache_dir)  # the same file, by row
        else:  # a file that scans but does not decode: the same refusal as thumbnail's
            with pytest.raises(type(got)):
                thumbnail(c, relpaths[row], size=32, cache_dir=cache_dir)
    assert sum(isinstance(got, Path) for got in first) == len(image_folder.good)
    again = images.thumbnails_at(c, rows, size=32, cache_dir=cache_dir)  # the second time from the cache
    assert [str(g) for g in again] == [str(g) for g in first]


def test_thumbnails_at_return_what_stopped_one_and_go_on(image_folder, cache_dir):
    c = scan_folder(image_folder.root)
    victim = c.items["path"].iat[1]
    Path(victim).write_bytes(b"not an image any more")  # changed since the scan
    got = images.thumbnails_at(c, [0, 1, 2], size=32, cache_dir=cache_dir)
    assert isinstance(got[1], ImageReadError)
    assert isinstance(got[0], Path)
    assert isinstance(got[2], Path)
    with pytest.raises(ConfigError, match="not in a collection of"):
        images.thumbnails_at(c, [len(c)], cache_dir=cache_dir)
    with pytest.raises(ConfigError, match="positive number of pixels"):
        images.thumbnails_at(c, [0], size=0, cache_dir=cache_dir)


def test_collection_repr_is_short(image_folder):
    c = scan_folder(image_folder.root)
    assert repr(c) == f"Collection(root={str(c.root)!r}, 14 images, 4 skipped)"
    assert isinstance(c, Collection)


def test_open_image_from_bytes_equals_from_file(image_folder):
    for relpath in image_folder.good:
        path = image_folder.root / relpath
        from_file, from_bytes = open_image(path, max_side=16), open_image(path.read_bytes(), max_side=16)
        assert from_file.size == from_bytes.size
        assert np.array_equal(np.asarray(from_file), np.asarray(from_bytes))
    for relpath, fragment in image_folder.broken_at_decode.items():
        with pytest.raises(ImageReadError, match=fragment):
            open_image((image_folder.root / relpath).read_bytes())
    with pytest.raises(ImageReadError, match="empty file"):
        open_image(b"")


def test_heic_and_avif_photos_are_read(tmp_path, cache_dir):
    from PIL import Image

    for ext in ("heic", "avif"):
        Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / f"phone.{ext}")
    c = scan_folder(tmp_path, cache_dir=cache_dir)
    assert sorted(c.items["relpath"]) == ["phone.avif", "phone.heic"]
    assert c.skipped.empty
    assert open_image(tmp_path / "phone.heic").size == (64, 48)


def test_heic_without_its_plugin_is_listed_as_skipped(tmp_path, cache_dir, monkeypatch):
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "phone.heic")
    monkeypatch.setattr(scan, "HEIF_SUPPORT", False)
    c = scan_folder(tmp_path, cache_dir=cache_dir)
    assert dict(zip(c.skipped["relpath"], c.skipped["reason"])) == {"phone.heic": scan.NO_HEIF}
