"""transformers captioners: BLIP, BLIP-2, GIT (captions) and BLIP/BLIP-2 question answering.

Loaded from the hub by id, or from a local directory (``from_pretrained`` takes both).
The same rules as the encoders: a missing or broken directory, or a hub id the hub does not have,
is a ``ConfigError``; only a valid hub model that is not cached while the hub cannot be reached is a
``ModelUnavailableError`` (said at once, naming the way out). On CUDA the model runs in bf16/fp16
with inputs copied from pinned memory without blocking; on the CPU in float32 as before.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from ..errors import ConfigError
from .base import cuda_autocast, resolve_device, to_device

_lock = threading.Lock()

FAMILIES = ("blip", "blip-vqa", "blip2", "git")


def guess_family(name: str) -> str:
    """The model family (``blip``, ``blip-vqa``, ``blip2``, ``git``) of a hub id or a local directory.

    A directory's ``config.json`` decides (``model_type`` and ``architectures``); otherwise the name does.
    """
    config = os.path.join(os.path.expanduser(name), "config.json")
    if os.path.isfile(config):
        try:
            with open(config, encoding="utf-8") as f:
                cfg = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {config!r}: {exc}") from exc
        model_type = str(cfg.get("model_type", "")).lower()
        archs = " ".join(cfg.get("architectures") or []).lower()
        if model_type in ("blip-2", "blip_2", "blip2"):
            return "blip2"
        if model_type == "blip":
            return "blip-vqa" if "questionanswering" in archs else "blip"
        if model_type == "git":
            return "git"
    low = os.path.basename(name.rstrip("/")).lower()
    if "blip2" in low or "blip-2" in low:
        return "blip2"
    if "blip" in low and "vqa" in low:
        return "blip-vqa"
    if "blip" in low:
        return "blip"
    if "git" in low:
        return "git"
    raise ConfigError(f"cannot tell the model family of {name!r}; pass family= one of {', '.join(FAMILIES)}")


def _content_tag(name: str) -> str | None:
    """For a local model directory, ``local-<hash>`` of its files' names and contents (not of its place), else ``None``."""
    import hashlib

    from .openclip import file_digest

    directory = os.path.expanduser(name)
    if not os.path.isdir(directory):
        return None
    h = hashlib.blake2b(digest_size=12)
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_file() and not entry.name.startswith("."):
            h.update(f"{entry.name}\0{file_digest(entry.path)}\0".encode())
    return f"local-{h.hexdigest()}"


def _model_class(family: str):
    import transformers as tf

    return {
        "blip": tf.BlipForConditionalGeneration,
        "blip-vqa": tf.BlipForQuestionAnswering,
        "blip2": tf.Blip2ForConditionalGeneration,
        "git": tf.GitForCausalLM,
    }[family]


class HFCaptioner:
    """Caption or answer questions about images with a transformers model.

    Args:
        name: hub id (``Salesforce/blip-image-captioning-base``) or a local model directory.
        device: ``auto``, ``cpu``, ``cuda``…
        family: one of :data:`FAMILIES`; guessed from the name when ``None``.
        num_captions: captions sampled per image (the paper samples 5); 1 = greedy/beam decoding.
        max_new_tokens: caption length cap (≈ 30–40 tokens in the paper).
    """

    def __init__(
        self,
        name: str,
        *,
        device: str = "auto",
        family: str | None = None,
        num_captions: int = 1,
        max_new_tokens: int = 30,
        model=None,
        processor=None,
    ) -> None:
        self.name = name
        self.family = family or guess_family(name)
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown captioner family {self.family!r}; use one of {', '.join(FAMILIES)}")
        if num_captions < 1:
            raise ConfigError(f"num_captions must be >= 1, got {num_captions}")
        self.device = resolve_device(device)
        self.num_captions = num_captions
        self.max_new_tokens = max_new_tokens
        self.supports_prompts = self.family in ("blip-vqa", "blip2", "git")
        tag = os.path.basename(name.rstrip("/"))
        self.model_id = f"transformers:{_content_tag(name) or tag}:n{num_captions}:t{max_new_tokens}"
        self.description = f"{self.family.upper()} captioner ({tag})"
        if model is not None and processor is not None:
            self.model, self.processor = model.to(self.device).eval(), processor
        else:
            self.model, self.processor = self._load()

    def _load(self):
        from transformers import AutoProcessor

        from .openclip import first_line, is_not_cached, missing_path_error, offline_first

        cls = _model_class(self.family)
        local = os.path.isdir(os.path.expanduser(self.name))
        kwargs = {}
        if self.device.startswith("cuda"):
            from .base import cuda_half_dtype

            kwargs["dtype"] = cuda_half_dtype()

        from .base import quiet_weight_loading

        quiet_weight_loading()

        def create():
            return (
                cls.from_pretrained(source, **kwargs).to(self.device).eval(),
                AutoProcessor.from_pretrained(source),
            )

        if local:
            source = os.path.expanduser(self.name)
            if not os.path.isfile(os.path.join(source, "config.json")):
                raise ConfigError(
                    f"{self.name!r} is not a transformers model directory: it has no config.json"
                )

            def create_local():
                try:
                    return create()
                except Exception as exc:
                    if is_not_cached(exc):
                        raise
                    raise ConfigError(
                        f"captioner directory {self.name!r} could not be loaded as {self.family}: {first_line(exc)}"
                    ) from exc

            with _lock:
                return offline_first(
                    create_local, f"parts of the captioner in {self.name}", "use the bundled label captioner"
                )
        if self.name.startswith(("/", ".", "~")):
            raise missing_path_error(self.name, "captioner directory")
        source = self.name
        with _lock:
            return offline_first(
                create,
                f"captioner {self.name!r}",
                "pass a local model directory or use the bundled label captioner",
            )

    def preprocess(self, image):
        """Captioners take PIL images as they are; the processor batches them."""
        return image

    def _prompt_text(self, prompt: str | None) -> str | None:
        if prompt is None:
            return None
        if self.family == "blip2":
            return f"Question: {prompt} Answer:"
        return prompt

    def caption_batch(self, batch: list, prompt: str | None = None) -> list[str]:
        """PIL images → ``num_captions`` texts each, joined with " | " (a prompt turns captions into answers)."""
        import torch

        if prompt is not None and not self.supports_prompts:
            raise ConfigError(
                f"{self.name} cannot answer questions; choose a VQA-capable model (BLIP-VQA, BLIP-2)"
            )
        if self.family == "blip-vqa" and prompt is None:
            prompt = "What is in the picture?"
        text = self._prompt_text(prompt)
        texts = [text] * len(batch) if text is not None else None
        inputs = self.processor(images=batch, text=texts, return_tensors="pt", padding=texts is not None)
        cuda = self.device.startswith("cuda")
        inputs = {k: to_device(v, self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        if "pixel_values" in inputs and cuda:
            inputs["pixel_values"] = inputs["pixel_values"].to(getattr(self.model, "dtype", torch.float16))
        sample = self.num_captions > 1
        gen: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_return_sequences": self.num_captions,
        }
        if sample:
            gen.update(do_sample=True, top_p=0.9)
        with torch.inference_mode(), cuda_autocast(self.device):
            out = self.model.generate(**inputs, **gen)
        decoded = self.processor.batch_decode(out, skip_special_tokens=True)
        if text is not None and self.family in ("blip2", "git"):
            decoded = [
                d.split("Answer:", 1)[-1] if "Answer:" in d else d.replace(text, "", 1) for d in decoded
            ]
        decoded = [d.strip() for d in decoded]
        per = self.num_captions
        return [" | ".join(decoded[i * per : (i + 1) * per]) for i in range(len(batch))]
