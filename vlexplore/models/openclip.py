"""open_clip encoders: any architecture with hub weights or a local checkpoint.

The hub is the default for real users. When it cannot be reached the user gets
one clear sentence within seconds (not a 46 s retry loop), saying how to
continue: a local checkpoint, or the bundled offline model.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import ModelUnavailableError
from .base import l2_normalize, resolve_device

HUB_HOST = "huggingface.co"
HUB_PROBE_TIMEOUT_S = 3.0
_lock = threading.Lock()


def hub_reachable(host: str = HUB_HOST, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """True when the model hub answers a TCP connect within ``timeout`` seconds.

    Never called when ``HF_HUB_OFFLINE`` is set (then the hub counts as unreachable).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_hub() -> Iterator[None]:
    """Make huggingface_hub use its local cache only, for the duration of the block."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


class OpenClipEncoder:
    """A CLIP-style encoder from open_clip. Views: ``image`` (which is also ``joint``).

    Args:
        arch: open_clip architecture name (``ViT-B-32``…).
        pretrained: open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``…) or a local checkpoint
            path. ``None`` only together with ``random_init=True`` (tests).
        device: ``auto``, ``cpu``, ``cuda``…
        random_init: build the architecture with random weights (mechanics tests, never a default).
        cache_dir: where hub weights are kept (open_clip's own default when ``None``).
    """

    views = ("image", "joint")

    def __init__(
        self,
        arch: str,
        pretrained: str | None,
        *,
        device: str = "auto",
        random_init: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        if pretrained is None and not random_init:
            raise ModelUnavailableError(f"open_clip model {arch!r} needs a pretrained tag or a checkpoint path")
        self.arch = arch
        self.pretrained = pretrained
        self.device = resolve_device(device)
        self.cache_dir = cache_dir
        tag = "random" if pretrained is None else os.path.basename(str(pretrained))
        self.model_id = f"open_clip:{arch}:{tag}"
        self.description = f"CLIP {arch} ({tag})"
        self._model = None
        self._preprocess = None
        self._tokenizer = None
        self._load()

    def _create(self, pretrained):
        import open_clip

        return open_clip.create_model_and_transforms(
            self.arch, pretrained=pretrained, device=self.device, cache_dir=self.cache_dir
        )

    def _load(self) -> None:
        try:
            import open_clip
        except ImportError as exc:  # pragma: no cover
            raise ModelUnavailableError("open_clip is not installed: pip install open-clip-torch") from exc
        if self.arch not in open_clip.list_models():
            raise ModelUnavailableError(
                f"open_clip has no architecture {self.arch!r}; see open_clip.list_models()"
            )
        pretrained = self.pretrained
        local = pretrained is not None and os.path.exists(pretrained)
        with _lock:
            try:
                if pretrained is None or local:
                    model, _, preprocess = self._create(pretrained)
                else:
                    try:  # already in the local cache? then no network at all
                        with _offline_hub():
                            model, _, preprocess = self._create(pretrained)
                    except Exception as cached_exc:  # noqa: BLE001 - open_clip raises many kinds here
                        if not hub_reachable():
                            raise ModelUnavailableError(
                                f"weights {self.arch}/{pretrained} are not cached and the model hub cannot be "
                                "reached; pass a local checkpoint (--model openclip:ARCH:/path/to/ckpt.pt) "
                                "or use --model bundled"
                            ) from cached_exc
                        model, _, preprocess = self._create(pretrained)
            except ModelUnavailableError:
                raise
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                raise ModelUnavailableError(
                    f"could not load open_clip {self.arch} with {pretrained!r}: {exc}"
                ) from exc
        model.eval()
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(self.arch)

    def preprocess(self, image):
        """RGB PIL image → ``(3, H, W)`` tensor with the model's own transform."""
        return self._preprocess(image)

    def _autocast(self):
        import torch

        if self.device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def encode_image_batch(self, batch) -> dict[str, np.ndarray]:
        """``(b, 3, H, W)`` → ``{"image": (b, d), "joint": same array}``, float32, L2-normalised."""
        import torch

        with torch.inference_mode(), self._autocast():
            x = batch.to(self.device, non_blocking=True)
            feats = self._model.encode_image(x)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        out = feats.cpu().numpy().astype(np.float32, copy=False)
        return {"image": out, "joint": out}

    def encode_texts(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """Texts → float32 ``(m, d)``, L2-normalised, in the image space."""
        import torch

        texts = list(texts)
        chunks = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(texts), batch_size):
                tokens = self._tokenizer(texts[start:start + batch_size]).to(self.device)
                feats = self._model.encode_text(tokens)
                chunks.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
        if not chunks:
            dim = int(getattr(self._model, "embed_dim", 0) or self._model.text_projection.shape[1])
            return np.zeros((0, dim), dtype=np.float32)
        return l2_normalize(np.concatenate(chunks))
