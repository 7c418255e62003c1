"""Named models as data, resolved by one factory per kind.

A name is either a registry key (``bundled``, ``ViT-B-32/openai``, ``blip-base``…),
``ARCH/TAG`` for any open_clip architecture and pretrained tag, or a path to a
local checkpoint file / model directory (``openclip:ViT-B-32:/path/to/ckpt.pt``,
``hf:/path/to/blip``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

DEFAULT_MODEL = "bundled"
DEFAULT_CAPTIONER = "bundled"


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes:
        backend: ``bundled``, ``open_clip`` or ``transformers``.
        name: architecture or hub id.
        pretrained: open_clip pretrained tag or local checkpoint path (``None`` for hub ids).
        kind: ``encoder`` or ``captioner``.
        description: what a person sees in the model picker.
        options: backend-specific keyword arguments.
    """

    backend: str
    name: str
    pretrained: str | None = None
    kind: str = "encoder"
    description: str = ""
    options: dict = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    "bundled": ModelSpec(
        "bundled", "effnet-lite0+minilm-l6",
        description="Offline: EfficientNet-Lite0 + MiniLM, bridged through ImageNet class names (ships with the app)",
    ),
    "ViT-B-32/openai": ModelSpec("open_clip", "ViT-B-32", "openai", description="CLIP ViT-B/32, OpenAI weights"),
    "ViT-B-32/laion2b_s34b_b79k": ModelSpec(
        "open_clip", "ViT-B-32", "laion2b_s34b_b79k", description="CLIP ViT-B/32, LAION-2B weights"
    ),
    "ViT-B-16/openai": ModelSpec("open_clip", "ViT-B-16", "openai", description="CLIP ViT-B/16, OpenAI weights"),
    "ViT-L-14/openai": ModelSpec("open_clip", "ViT-L-14", "openai", description="CLIP ViT-L/14, OpenAI weights"),
    "ViT-SO400M-14-SigLIP/webli": ModelSpec(
        "open_clip", "ViT-SO400M-14-SigLIP", "webli", description="SigLIP SO400M/14 (large, best quality)"
    ),
    # captioners
    "bundled-labels": ModelSpec(
        "bundled", "imagenet-labels", kind="captioner",
        description="Offline label captions: the top ImageNet classes as text (not a real captioner)",
    ),
    "blip-base": ModelSpec(
        "transformers", "Salesforce/blip-image-captioning-base", kind="captioner",
        description="BLIP base captioning", options={"family": "blip"},
    ),
    "blip-large": ModelSpec(
        "transformers", "Salesforce/blip-image-captioning-large", kind="captioner",
        description="BLIP large captioning", options={"family": "blip"},
    ),
    "blip-vqa-base": ModelSpec(
        "transformers", "Salesforce/blip-vqa-base", kind="captioner",
        description="BLIP base visual question answering (for prompts)", options={"family": "blip-vqa"},
    ),
    "blip2-opt-2.7b": ModelSpec(
        "transformers", "Salesforce/blip2-opt-2.7b", kind="captioner",
        description="BLIP-2 OPT-2.7b: captions and question answering (needs a GPU)", options={"family": "blip2"},
    ),
    "git-base": ModelSpec(
        "transformers", "microsoft/git-base-coco", kind="captioner",
        description="GIT base (COCO captions)", options={"family": "git"},
    ),
}


def encoder_names() -> list[str]:
    """Registry names of the image/text encoders, the default first."""
    return [k for k, v in MODELS.items() if v.kind == "encoder"]


def captioner_names() -> list[str]:
    """Registry names of the captioners, the offline one first."""
    return [k for k, v in MODELS.items() if v.kind == "captioner"]


def resolve_spec(name: str, *, kind: str = "encoder") -> ModelSpec:
    """Turn a model name or path into a :class:`ModelSpec`.

    Accepted: a registry key; ``ARCH/TAG`` (open_clip); ``openclip:ARCH:/path/ckpt``;
    a local ``.pt``/``.bin``/``.safetensors`` file (``ViT-B-32`` architecture assumed,
    or named as ``ARCH@/path``); ``hf:NAME_OR_DIR`` or an existing directory (transformers captioner).
    """
    name = (name or "").strip()
    if not name:
        raise ConfigError("no model name given; use 'bundled' or e.g. 'ViT-B-32/openai'")
    if name in MODELS:
        spec = MODELS[name]
        if spec.kind != kind:
            raise ConfigError(f"{name!r} is a {spec.kind}, not a {kind}")
        return spec
    if kind == "captioner":
        target = name[3:] if name.startswith("hf:") else name
        if name.startswith("hf:") or Path(target).is_dir() or "/" in target:
            return ModelSpec("transformers", target, kind="captioner", description=f"transformers {target}")
        raise ConfigError(f"unknown captioner {name!r}; choose one of {', '.join(captioner_names())}")
    if name.startswith("openclip:"):
        parts = name.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ConfigError(f"expected openclip:ARCH:CHECKPOINT, got {name!r}")
        return ModelSpec("open_clip", parts[1], parts[2], description=f"open_clip {parts[1]} from {parts[2]}")
    if "@" in name and os.path.exists(name.split("@", 1)[1]):
        arch, path = name.split("@", 1)
        return ModelSpec("open_clip", arch, path, description=f"open_clip {arch} from {path}")
    if os.path.isfile(name):
        return ModelSpec("open_clip", "ViT-B-32", name, description=f"open_clip ViT-B-32 from {name}")
    if name.count("/") == 1 and not os.path.exists(name):
        arch, tag = name.split("/")
        return ModelSpec("open_clip", arch, tag, description=f"open_clip {arch} ({tag})")
    raise ConfigError(
        f"unknown model {name!r}: use 'bundled', an open_clip 'ARCH/TAG' such as 'ViT-B-32/openai', "
        "or a local checkpoint path"
    )


def load_encoder(name: str = DEFAULT_MODEL, *, device: str = "auto", cache_dir: Path | None = None):
    """Build the encoder a name stands for (see :func:`resolve_spec`). Weights load lazily or here.

    Raises:
        ModelUnavailableError: the weights cannot be had; the message says what to do.
    """
    spec = resolve_spec(name, kind="encoder")
    if spec.backend == "bundled":
        from .bundled import BundledEncoder

        return BundledEncoder(device=device, cache_dir=cache_dir)
    from .openclip import OpenClipEncoder

    return OpenClipEncoder(spec.name, spec.pretrained, device=device, **spec.options)


def load_captioner(name: str = DEFAULT_CAPTIONER, *, device: str = "auto", encoder=None):
    """Build the captioner a name stands for. ``bundled-labels`` needs the bundled ``encoder`` (shared weights)."""
    if name == "bundled":
        name = "bundled-labels"
    spec = resolve_spec(name, kind="captioner")
    if spec.backend == "bundled":
        from .bundled import BundledEncoder

        return encoder if isinstance(encoder, BundledEncoder) else BundledEncoder(device=device)
    from .hf_caption import HFCaptioner

    return HFCaptioner(spec.name, device=device, family=spec.options.get("family"))
