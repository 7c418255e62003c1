"""transformers captioners: BLIP, BLIP-2, GIT (captions) and BLIP/BLIP-2 question answering.

Loaded from the hub by id, or from a local directory (``from_pretrained`` takes both).
When the hub cannot be reached the error says so at once and names the way out.
"""

from __future__ import annotations

import contextlib
import os
import threading

from ..errors import ConfigError, ModelUnavailableError
from .base import resolve_device

_lock = threading.Lock()

FAMILIES = ("blip", "blip-vqa", "blip2", "git")


def guess_family(name: str) -> str:
    """The model family from a hub id or directory name (``blip``, ``blip-vqa``, ``blip2``, ``git``)."""
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
        self.model_id = f"transformers:{tag}:n{num_captions}:t{max_new_tokens}"
        self.description = f"{self.family.upper()} captioner ({tag})"
        if model is not None and processor is not None:
            self.model, self.processor = model.to(self.device).eval(), processor
        else:
            self.model, self.processor = self._load()

    def _load(self):
        from transformers import AutoProcessor

        from .openclip import _offline_hub, hub_reachable

        cls = _model_class(self.family)
        local = os.path.isdir(self.name)
        dtype = None
        if self.device.startswith("cuda"):
            import torch

            dtype = torch.float16
        kwargs = {"dtype": dtype} if dtype is not None else {}

        def create():
            return (
                cls.from_pretrained(self.name, **kwargs).to(self.device).eval(),
                AutoProcessor.from_pretrained(self.name),
            )

        with _lock:
            try:
                if local:
                    return create()
                with _offline_hub() if not local else contextlib.nullcontext():
                    try:
                        return create()
                    except OSError:
                        pass
                if not hub_reachable():
                    raise ModelUnavailableError(
                        f"captioner {self.name!r} is not cached and the model hub cannot be reached; "
                        "pass a local model directory or use the bundled label captioner"
                    )
                return create()
            except ModelUnavailableError:
                raise
            except (OSError, ValueError, KeyError) as exc:
                raise ModelUnavailableError(f"could not load captioner {self.name!r}: {exc}") from exc

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
            raise ConfigError(f"{self.name} cannot answer questions; choose a VQA-capable model (BLIP-VQA, BLIP-2)")
        if self.family == "blip-vqa" and prompt is None:
            prompt = "What is in the picture?"
        text = self._prompt_text(prompt)
        texts = [text] * len(batch) if text is not None else None
        inputs = self.processor(images=batch, text=texts, return_tensors="pt", padding=texts is not None)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs and self.device.startswith("cuda"):
            inputs["pixel_values"] = inputs["pixel_values"].half()
        sample = self.num_captions > 1
        gen = {"max_new_tokens": self.max_new_tokens, "num_return_sequences": self.num_captions}
        if sample:
            gen.update(do_sample=True, top_p=0.9)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen)
        decoded = self.processor.batch_decode(out, skip_special_tokens=True)
        if text is not None and self.family in ("blip2", "git"):
            decoded = [d.split("Answer:", 1)[-1] if "Answer:" in d else d.replace(text, "", 1) for d in decoded]
        decoded = [d.strip() for d in decoded]
        per = self.num_captions
        return [" | ".join(decoded[i * per:(i + 1) * per]) for i in range(len(batch))]
