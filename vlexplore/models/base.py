"""The small protocols every model backend implements.

An *encoder* maps images and texts into vectors. It may expose several
*views* of an image: ``"image"`` is the vector to cluster on, ``"joint"`` the
one comparable (by cosine) with :meth:`Encoder.encode_texts`. For CLIP both are
the same array; the bundled offline backend has distinct ones.
A *captioner* maps images (and optionally a question) to text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


@runtime_checkable
class Encoder(Protocol):
    """An image/text encoder.

    Attributes:
        model_id: stable id string (backend, name, weights tag, preprocessing);
            the cache keys on it, so it changes whenever outputs would.
        views: names of the image views :meth:`encode_image_batch` returns.
        device: the torch device string the model runs on (``"cpu"``, ``"cuda:0"``).
        description: one line a person can read ("CLIP ViT-B-32, openai weights").
    """

    model_id: str
    views: tuple[str, ...]
    device: str
    description: str

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB PIL image → a ``(3, H, W)`` float tensor, on the CPU (runs in worker threads)."""

    def encode_image_batch(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        """A ``(b, 3, H, W)`` CPU tensor → ``{view: float32 (b, d_view)}``, rows L2-normalised."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → ``float32 (m, d_joint)``, rows L2-normalised, comparable with the ``joint`` view."""


@runtime_checkable
class Captioner(Protocol):
    """An image-to-text model; ``prompt`` turns it into question answering where supported."""

    model_id: str
    device: str
    description: str
    supports_prompts: bool

    def preprocess(self, image: Image.Image) -> object:
        """One RGB PIL image → whatever :meth:`caption_batch` takes per image (CPU side)."""

    def caption_batch(self, batch: list, prompt: str | None = None) -> list[str]:
        """Preprocessed images → one caption (or answer) each."""


#: Rows of a 2-d array are normalised this many values at a time (the float64 norms would otherwise
#: double a large matrix's memory for a moment: 700 MB more at 70k × 1280).
NORMALIZE_BLOCK = 1 << 22


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (n, d) scaled to unit length, as float32; zero rows stay zero.

    Memory: the float32 result plus one block of :data:`NORMALIZE_BLOCK` values.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.size <= NORMALIZE_BLOCK:
        norms = np.linalg.norm(x.astype(np.float64, copy=False), axis=-1, keepdims=True)  # no float32 overflow
        return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)
    out = np.empty(x.shape, dtype=np.float32)
    step = max(1, NORMALIZE_BLOCK // max(1, x.shape[1]))
    for start in range(0, len(x), step):
        block = x[start:start + step]
        norms = np.linalg.norm(block.astype(np.float64, copy=False), axis=1, keepdims=True)
        out[start:start + step] = block / np.maximum(norms, eps)
    return out


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; other values pass through checked."""
    import torch

    from ..errors import ConfigError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is visible; use --device cpu")
    if device != "cpu" and not device.startswith(("cuda", "mps")):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device
