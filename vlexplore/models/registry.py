"""Named models as data, resolved by one factory per kind.

A name is either a registry key (``bundled``, ``ViT-B-32/openai``, ``blip-base``…),
``ARCH/TAG`` for any open_clip architecture and pretrained tag, or a path to a
local checkpoint file / model directory (``openclip:ViT-B-32:/path/to/ckpt.pt``,
``hf:/path/to/blip``).
"""

from __future__ import annotations

import os
import re
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
        "bundled",
        "effnet-lite0+minilm-l6",
        description="Offline: EfficientNet-Lite0 + MiniLM, bridged through ImageNet class names (ships with the app)",
    ),
    "ViT-B-32/openai": ModelSpec(
        "open_clip", "ViT-B-32", "openai", description="CLIP ViT-B/32, OpenAI weights"
    ),
    "ViT-B-32/laion2b_s34b_b79k": ModelSpec(
        "open_clip", "ViT-B-32", "laion2b_s34b_b79k", description="CLIP ViT-B/32, LAION-2B weights"
    ),
    "ViT-B-16/openai": ModelSpec(
        "open_clip", "ViT-B-16", "openai", description="CLIP ViT-B/16, OpenAI weights"
    ),
    "ViT-L-14/openai": ModelSpec(
        "open_clip", "ViT-L-14", "openai", description="CLIP ViT-L/14, OpenAI weights"
    ),
    "ViT-SO400M-14-SigLIP/webli": ModelSpec(
        "open_clip", "ViT-SO400M-14-SigLIP", "webli", description="SigLIP SO400M/14 (large, best quality)"
    ),
    # captioners
    "bundled-labels": ModelSpec(
        "bundled",
        "imagenet-labels",
        kind="captioner",
        description="Offline label captions: the top ImageNet classes as text (not a real captioner)",
    ),
    "blip-base": ModelSpec(
        "transformers",
        "Salesforce/blip-image-captioning-base",
        kind="captioner",
        description="BLIP base captioning",
        options={"family": "blip"},
    ),
    "blip-large": ModelSpec(
        "transformers",
        "Salesforce/blip-image-captioning-large",
        kind="captioner",
        description="BLIP large captioning",
        options={"family": "blip"},
    ),
    "blip-vqa-base": ModelSpec(
        "transformers",
        "Salesforce/blip-vqa-base",
        kind="captioner",
        description="BLIP base visual question answering (for prompts)",
        options={"family": "blip-vqa"},
    ),
    "blip2-opt-2.7b": ModelSpec(
        "transformers",
        "Salesforce/blip2-opt-2.7b",
        kind="captioner",
        description="BLIP-2 OPT-2.7b: captions and question answering (needs a GPU)",
        options={"family": "blip2"},
    ),
    "git-base": ModelSpec(
        "transformers",
        "microsoft/git-base-coco",
        kind="captioner",
        description="GIT base (COCO captions)",
        options={"family": "git"},
    ),
}


def encoder_names() -> list[str]:
    """Registry names of the image/text encoders, the default first."""
    return [k for k, v in MODELS.items() if v.kind == "encoder"]


def captioner_names() -> list[str]:
    """Registry names of the captioners, the offline one first."""
    return [k for k, v in MODELS.items() if v.kind == "captioner"]


#: Short names of registry entries (``blip2`` is BLIP-2 with OPT-2.7b).
ALIASES = {"blip2": "blip2-opt-2.7b"}


def _path_like(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or (
        os.sep in name.strip(os.sep) and name.count("/") != 1
    )


def _unknown(name: str, kind: str) -> ConfigError:
    from .base import closest

    if kind == "captioner":
        hint = closest(name, [*captioner_names(), *ALIASES])
        return ConfigError(
            f"unknown captioner {name!r}; closest: {', '.join(hint) or 'none'} "
            f"(choose one of {', '.join(captioner_names())}, a hub id org/name or a local model directory)"
        )
    names = list(MODELS) if kind != "encoder" else encoder_names()
    try:
        import open_clip

        archs = open_clip.list_models()
    except ImportError:  # pragma: no cover
        archs = []
    if name in archs:
        tags = open_clip.list_pretrained_tags_by_model(name)
        shown = ", ".join(f"{name}/{t}" for t in tags[:4]) or f"openclip:{name}:/path/to/ckpt.pt"
        return ConfigError(
            f"open_clip architecture {name!r} needs weights: a pretrained tag ({shown}) "
            f"or a checkpoint file (openclip:{name}:/path/to/ckpt.pt)"
        )
    hint = closest(name, [*names, *archs])
    return ConfigError(
        f"unknown model {name!r}; closest: {', '.join(hint) or 'none'} (use 'bundled', an open_clip "
        "'ARCH/TAG' such as 'ViT-B-32/openai', 'hf-hub:org/name', or a local checkpoint file or model directory)"
    )


def _existing(path: str, what: str) -> str:
    from .openclip import missing_path_error

    expanded = os.path.expanduser(path)
    if not os.path.exists(expanded):
        raise missing_path_error(path, what)
    return expanded


def _checkpoint_spec(arch: str, path: str) -> ModelSpec:
    if not arch:
        raise ConfigError(f"expected openclip:ARCH:CHECKPOINT, got an empty architecture for {path!r}")
    path = _existing(path, "checkpoint file")
    return ModelSpec("open_clip", arch, path, description=f"open_clip {arch} from {path}")


def _dir_spec(directory: str, weights: str | None = None) -> ModelSpec:
    from .openclip import LOCAL_DIR_PREFIX, find_dir_weights

    directory = os.path.abspath(_existing(directory, "model directory"))
    if not os.path.isdir(directory):
        raise ConfigError(f"{directory!r} is a file; local-dir: takes a model directory")
    if weights is None:
        find_dir_weights(directory)  # a ConfigError now rather than after a slow import
    return ModelSpec(
        "open_clip",
        f"{LOCAL_DIR_PREFIX}{directory}",
        weights,
        description=f"open_clip model from {directory}",
    )


def _captioner_spec(name: str) -> ModelSpec:
    target = name[3:] if name.startswith("hf:") else name
    expanded = os.path.expanduser(target)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise ConfigError(
                f"{target!r} is not a transformers model directory: it has no config.json "
                "(save one with model.save_pretrained(DIR) and processor.save_pretrained(DIR))"
            )
        return ModelSpec("transformers", expanded, kind="captioner", description=f"transformers {target}")
    if os.path.exists(expanded):
        raise ConfigError(
            f"{target!r} is a file; a local captioner is a model directory (config.json + weights)"
        )
    if _path_like(target) or target.startswith(("/", ".", "~")):
        from .openclip import missing_path_error

        raise missing_path_error(target, "captioner directory")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", target):
        return ModelSpec("transformers", target, kind="captioner", description=f"transformers {target}")
    raise _unknown(name, "captioner")


def resolve_spec(name: str, *, kind: str = "encoder") -> ModelSpec:
    """Turn a model name or path into a :class:`ModelSpec`.

    Encoders: a registry key (``bundled``, ``ViT-B-32/openai``…); ``ARCH/TAG`` for any open_clip
    architecture and pretrained tag; ``hf-hub:org/name`` (an open_clip repo on the hub: SigLIP and most
    newer models); ``openclip:ARCH:/path/ckpt.pt`` or ``ARCH@/path/ckpt.pt`` (a local checkpoint of a
    named architecture); a model directory holding ``open_clip_config.json`` and its weights (or
    ``local-dir:/path``); a checkpoint file (the config beside it when there is one, else the
    architecture its file name starts with, else ``ViT-B-32``).

    Captioners: a registry key (``blip-base``, ``blip-large``, ``blip2``, ``git-base``…), a hub id
    ``org/name``, ``hf:NAME_OR_DIR`` or a local model directory.

    Architectures and tags are checked against open_clip when the model is loaded.

    Raises:
        ConfigError: an unknown name or a path that does not exist (the message names the closest ones).
    """
    from .openclip import HF_HUB_PREFIX, LOCAL_DIR_PREFIX

    name = (name or "").strip()
    if not name:
        raise ConfigError("no model name given; use 'bundled' or e.g. 'ViT-B-32/openai'")
    key = ALIASES.get(name, name)
    if key in MODELS:
        spec = MODELS[key]
        if spec.kind != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            raise ConfigError(f"{name!r} is a {spec.kind}, not {article} {kind}")
        return spec
    if kind == "captioner":
        return _captioner_spec(name)
    if name.startswith(HF_HUB_PREFIX):
        repo = name[len(HF_HUB_PREFIX) :].strip()
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise ConfigError(f"expected hf-hub:ORG/NAME (e.g. hf-hub:timm/ViT-B-16-SigLIP), got {name!r}")
        return ModelSpec(
            "open_clip", f"{HF_HUB_PREFIX}{repo}", None, description=f"open_clip {repo} (model hub)"
        )
    if name.startswith(LOCAL_DIR_PREFIX):
        return _dir_spec(name[len(LOCAL_DIR_PREFIX) :])
    if name.startswith("openclip:"):
        parts = name.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ConfigError(f"expected openclip:ARCH:CHECKPOINT, got {name!r}")
        return _checkpoint_spec(parts[1], parts[2])
    if "@" in name and not os.path.exists(os.path.expanduser(name)):
        arch, path = name.split("@", 1)
        return _checkpoint_spec(arch, path)
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return _dir_spec(expanded)
    if os.path.isfile(expanded):
        parent = os.path.dirname(os.path.abspath(expanded))
        if os.path.isfile(os.path.join(parent, "open_clip_config.json")):
            return _dir_spec(parent, os.path.abspath(expanded))
        return ModelSpec(
            "open_clip",
            "ViT-B-32",
            expanded,
            description=f"open_clip checkpoint {expanded}",
            options={"guess_arch": True},
        )
    from .openclip import CHECKPOINT_SUFFIXES, missing_path_error

    if _path_like(name) or name.lower().endswith(CHECKPOINT_SUFFIXES):
        raise missing_path_error(name, "checkpoint file or model directory")
    if name.count("/") == 1 and all(name.split("/")):
        arch, tag = name.split("/")
        return ModelSpec("open_clip", arch, tag, description=f"open_clip {arch} ({tag})")
    raise _unknown(name, kind)


def load_encoder(
    name: str = DEFAULT_MODEL, *, device: str = "auto", cache_dir: Path | None = None, lazy: bool = False
):
    """Build the encoder a name stands for (see :func:`resolve_spec`). Weights load here, unless ``lazy``.

    ``cache_dir`` (the vlexplore cache) also remembers local checkpoints' content hashes.

    ``lazy``: an open_clip model whose identity can be known from names and files (a local directory or
    checkpoint, ``ARCH/TAG`` of a known architecture, an ``hf-hub:`` repo in the local hub cache) is a
    :class:`~vlexplore.models.lazy.LazyEncoder`: its weights load on first use, where their errors are
    raised. The bundled model builds its parts on first use either way.

    Raises:
        ConfigError: an unknown name, architecture or tag; a missing or unloadable file; no such device.
        ModelUnavailableError: a valid hub model that cannot be fetched; the message says what to do.
    """
    spec = resolve_spec(name, kind="encoder")
    if spec.backend == "bundled":
        from .bundled import BundledEncoder

        return BundledEncoder(device=device, cache_dir=cache_dir)
    if lazy:
        from .lazy import lazy_openclip

        encoder = lazy_openclip(spec, device=device, cache_dir=cache_dir, name=name)
        if encoder is not None:
            return encoder
    from .openclip import OpenClipEncoder

    return OpenClipEncoder(spec.name, spec.pretrained, device=device, digest_dir=cache_dir, **spec.options)


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
