"""The small protocols every model backend implements.

An *encoder* maps images and texts into vectors. It may expose several
*views* of an image: ``"image"`` is the vector to cluster on, ``"joint"`` the
one comparable (by cosine) with :meth:`Encoder.encode_texts`. For CLIP both are
the same array; the bundled offline backend has distinct ones.
A *captioner* maps images (and optionally a question) to text.
"""

from __future__ import annotations

import difflib
import os
import re
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


def row_norms(x: np.ndarray) -> np.ndarray:
    """The Euclidean length of every row of a float32 ``x`` (n, d), as float32 ``(n,)``.

    One float32 pass; rows whose squared length overflows or underflows float32 are measured again in float64.
    """
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore", under="ignore"):
        squares = np.einsum("ij,ij->i", x, x)
    odd = np.flatnonzero(~np.isfinite(squares) | (squares < _TINY))
    norms = np.sqrt(squares)
    if len(odd):
        norms[odd] = np.linalg.norm(x[odd].astype(np.float64), axis=1).astype(np.float32)
    return norms


#: Squared lengths below this are measured again in float64 (float32 keeps ~7 digits only above it).
_TINY = float(np.finfo(np.float32).tiny) * 2**24


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (n, d) scaled to unit length, as float32; zero rows stay zero.

    A float32 matrix's lengths come from :func:`row_norms` (one float32 pass; float64 only for rows whose
    squares overflow or underflow float32). Memory: the float32 result plus one block of
    :data:`NORMALIZE_BLOCK` values.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype != np.float32:
        norms = np.linalg.norm(
            x.astype(np.float64, copy=False), axis=-1, keepdims=True
        )  # no float32 overflow
        return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)
    return _divide_rows(x, row_norms(x), eps)


def _divide_rows(x: np.ndarray, norms: np.ndarray, eps: float) -> np.ndarray:
    """Float32 ``x`` with each row divided by its length in ``norms`` (at least ``eps``), in blocks."""
    inv = (1.0 / np.maximum(norms.astype(np.float64), eps)).astype(np.float32)[:, None]
    if x.size <= NORMALIZE_BLOCK:
        return x * inv
    out = np.empty(x.shape, dtype=np.float32)
    step = max(1, NORMALIZE_BLOCK // max(1, x.shape[1]))
    for start in range(0, len(x), step):
        np.multiply(x[start : start + step], inv[start : start + step], out=out[start : start + step])
    return out


def unit_rows(x: np.ndarray, tol: float = 1e-5, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` at unit length, for reading only.

    ``x`` itself (a read-only view) when it is float32 and every row's length is already within ``tol`` of
    1, else what :func:`l2_normalize` gives (from the same lengths, measured once). Embeddings come
    normalized from every encoder, so the check saves a copy of the matrix (70,000 × 512: 0.03 against
    0.07-0.13 s and 143 MB). Writing into the view raises.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype != np.float32 or not len(x):
        return l2_normalize(x, eps)
    norms = row_norms(x)
    if float(np.abs(norms - 1.0).max()) <= tol:
        view = x.view()
        view.flags.writeable = False
        return view
    return _divide_rows(x, norms, eps)


def closest(word: str, names, n: int = 3) -> list[str]:
    """Up to ``n`` of ``names`` nearest to ``word`` in spelling (case-insensitive), best first; ``[]`` when none is near."""
    names = list(dict.fromkeys(str(x) for x in names))
    by_lower: dict[str, str] = {}
    for x in names:
        by_lower.setdefault(x.lower(), x)
    for cutoff in (0.6, 0.4):
        hits = difflib.get_close_matches(str(word).lower(), list(by_lower), n=n, cutoff=cutoff)
        if hits:
            return [by_lower[h] for h in hits]
    return []


def resolve_device(device: str = "auto") -> str:
    """The torch device string to run on.

    ``auto`` → ``cuda`` when a GPU is visible, else ``mps`` (Apple GPU) when available, else ``cpu``.
    An explicit ``cuda``/``cuda:N``/``mps`` that this machine does not have is a :class:`ConfigError`
    (a one-line message, not a torch traceback at the first forward pass).
    """
    import torch

    from ..errors import ConfigError

    device = str(device or "auto").strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or re.fullmatch(r"cuda:\d+", device):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} was asked for but no CUDA GPU is visible; use --device cpu or auto"
            )
        if ":" in device:
            count = torch.cuda.device_count()
            if int(device.split(":")[1]) >= count:
                raise ConfigError(
                    f"device {device!r} was asked for but only {count} CUDA GPU(s) are visible "
                    f"(cuda:0 to cuda:{count - 1})"
                )
        return device
    if device == "mps":
        if not _mps_available():
            raise ConfigError(
                "device 'mps' was asked for but no Apple GPU (MPS) is available; use --device cpu or auto"
            )
        return device
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")


#: Device files a GPU torch can use needs (NVIDIA, AMD ROCm, WSL's GPU bridge): with none of them, ``auto`` is
#: the CPU and torch need not be imported to say so.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def quick_device(device: str = "auto") -> str:
    """:func:`resolve_device`, without importing torch where the answer is certain.

    ``cpu``, and ``auto`` on a Linux machine without GPU device files, are ``"cpu"`` at once; everything
    else (or torch already imported) asks torch.
    """
    import sys

    value = str(device or "auto").strip().lower()
    if "torch" not in sys.modules and (
        value == "cpu"
        or (
            value == "auto"
            and sys.platform.startswith("linux")
            and not any(map(os.path.exists, GPU_DEVICE_FILES))
        )
    ):
        return "cpu"
    return resolve_device(device)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    try:
        return bool(backend is not None and backend.is_available())
    except Exception:
        return False


def cuda_autocast(device: str):
    """Mixed precision for a forward pass.

    Bf16 (fp16 where bf16 is unsupported) autocast on CUDA, a no-op context everywhere else (the CPU path runs
    in float32 exactly as without it).
    """
    import contextlib

    import torch

    if not str(device).startswith("cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=cuda_half_dtype())


def cuda_half_dtype():
    """``torch.bfloat16`` where the GPU supports it, else ``torch.float16``."""
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def to_device(tensor, device: str):
    """``tensor`` on ``device``: on CUDA copied from pinned memory without blocking; elsewhere unchanged."""
    if not str(device).startswith("cuda"):
        return tensor if str(device) == "cpu" else tensor.to(device)
    if not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def quiet_weight_loading() -> None:
    """Silence transformers' "Loading weights" bars and info lines on every load.

    They are noise in a terminal and raw carriage returns in a log. Hub download bars stay, on a
    terminal only.
    """
    import sys

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    if not sys.stderr.isatty():
        try:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        except ImportError:  # pragma: no cover
            pass
