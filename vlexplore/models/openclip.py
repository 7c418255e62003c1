"""open_clip encoders: any architecture with hub weights, an ``hf-hub:`` repo, or local weights.

Where the weights come from:

* ``ARCH`` + pretrained tag (``ViT-B-32`` + ``openai``): open_clip's own list of weights, from the hub.
* ``hf-hub:org/name``: an open_clip repo on the model hub (SigLIP and most newer models).
* ``ARCH`` + a checkpoint file: a local ``state_dict`` (``.pt``, ``.pth``, ``.bin``, ``.safetensors``, ``.npz``).
* ``local-dir:/path``: a directory laid out like an hf-hub repo (``open_clip_config.json`` + weights).

Failures are loud: an unknown architecture or tag, a missing file or a checkpoint that does not
load is a :class:`~vlexplore.errors.ConfigError` naming the closest valid names. Only a *valid*
hub model that cannot be fetched (not cached, hub unreachable) is a
:class:`~vlexplore.errors.ModelUnavailableError` — the one case the pipeline answers with the
bundled model. The hub is tried from its local cache first, so a cached model loads with no
network, and an unreachable hub is known within seconds (not a 46 s retry loop).

Cache identity: the ``model_id`` of local weights carries a hash of the file's content (not its
name or place), so two different ``vitb32.pt`` never share cached embeddings and a copied file does.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelUnavailableError
from .base import closest, cuda_autocast, l2_normalize, resolve_device, to_device
from .digests import DIGEST_FILE, _hub_file_identity, file_digest  # noqa: F401  (re-exported)
from .hub import (  # noqa: F401  (re-exported for the captioner backend)
    first_line,
    hub_failure,
    hub_reachable,
    is_not_cached,
    offline_first,
    quiet_open_clip,
)
from .identity import describe_openclip, guess_from_names

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
#: Weight files open_clip reads (``.npz``: big_vision SigLIP weights).
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz")
#: Which weights file of a model directory is loaded, most preferred first (hf-hub repos' names).
DIR_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
    "model.pt",
)
_lock = threading.Lock()


def check_architecture(arch: str, asked: str | None = None) -> None:
    """Raise :class:`ConfigError` unless open_clip knows ``arch`` (the message names the closest ones)."""
    import open_clip

    names = open_clip.list_models()
    if arch in names:
        return
    asked = asked or arch
    hint = closest(arch, names)
    whole = asked.replace("/", "-")
    if whole in names:  # "ViT-B/32" as OpenAI writes it
        hint = [f"{whole}/{t}" for t in open_clip.list_pretrained_tags_by_model(whole)[:3]] or [whole]
    raise ConfigError(
        f"unknown open_clip architecture {arch!r} in {asked!r}; closest: {', '.join(hint) or 'none'} "
        "(all: open_clip.list_models(); a hub repo is hf-hub:org/name)"
    )


def is_path_like(value: str) -> bool:
    """True when ``value`` reads as a file path rather than a pretrained tag or hub id."""
    value = str(value)
    return (
        os.path.exists(value)
        or value.startswith(("/", ".", "~"))
        or os.sep in value
        or "/" in value
        or value.lower().endswith(CHECKPOINT_SUFFIXES)
    )


def check_pretrained_tag(arch: str, tag: str) -> None:
    """Raise :class:`ConfigError` unless ``tag`` is one of open_clip's pretrained tags for ``arch``."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag.lower().replace("-", "_") in tags:
        return
    if not tags:
        raise ConfigError(
            f"open_clip has no pretrained weights for {arch!r} (asked for {arch}/{tag}); "
            f"pass a checkpoint file: openclip:{arch}:/path/to/ckpt.pt"
        )
    hint = closest(tag, tags)
    raise ConfigError(
        f"open_clip has no pretrained tag {tag!r} for {arch}; closest: "
        f"{', '.join(f'{arch}/{t}' for t in hint) if hint else 'none'} (its tags: {', '.join(tags[:8])}"
        f"{', …' if len(tags) > 8 else ''})"
    )


def missing_path_error(path: str, what: str = "checkpoint file") -> ConfigError:
    """A :class:`ConfigError` for a path that does not exist, naming near files in its folder."""
    p = Path(os.path.expanduser(str(path)))
    parent = p.parent
    near: list[str] = []
    if parent.is_dir():
        try:
            entries = sorted(e.name for e in parent.iterdir())[:5000]
        except OSError:
            entries = []
        near = [str(parent / n) for n in closest(p.name, entries)]
        where = f"closest in {parent}: {', '.join(near)}" if near else f"nothing like it in {parent}"
    else:
        where = f"its folder {parent} does not exist either"
    return ConfigError(f"{what} {str(path)!r} does not exist; {where}")


def find_dir_weights(directory: str | Path) -> Path:
    """The weights file of an open_clip model directory (see :data:`DIR_WEIGHTS`).

    Raises:
        ConfigError: no ``open_clip_config.json`` or no weights file in it.
    """
    d = Path(directory)
    if not (d / "open_clip_config.json").is_file():
        raise ConfigError(
            f"{str(d)!r} is not an open_clip model directory: it has no open_clip_config.json "
            "(or name the architecture: openclip:ARCH:/path/to/ckpt.pt)"
        )
    for name in DIR_WEIGHTS:
        if (d / name).is_file():
            return d / name
    found = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES)
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(
            f"model directory {str(d)!r} has open_clip_config.json but no weights file "
            f"({', '.join(CHECKPOINT_SUFFIXES)})"
        )
    raise ConfigError(
        f"model directory {str(d)!r} holds several weights files ({', '.join(p.name for p in found[:5])}); "
        f"name one: {os.path.join(str(d), found[0].name)}"
    )


def guess_architecture(path: str | Path, default: str = "ViT-B-32") -> str:
    """The open_clip architecture a checkpoint's file name starts with (longest match), else ``default``."""
    import open_clip

    return guess_from_names(path, open_clip.list_models(), default)


def encode_text_short(model, tokens):
    """open_clip's ``encode_text`` on tokens cut after the last end-of-text token.

    Or ``None`` where that would change the result. A CLIP text tower is causal and pools at the end-of-text
    token (the highest id), so the padding after it never reaches the output: a noun padded to 77 tokens costs
    ~10× a cut one.
    """
    from open_clip.transformer import text_global_pool

    mask = getattr(model, "attn_mask", None)
    if getattr(model, "text_pool_type", None) != "argmax" or mask is None or not hasattr(model, "ln_final"):
        return None
    n = int(tokens.argmax(dim=-1).max()) + 1
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :n]).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=mask[:n, :n]))
    x = text_global_pool(x, tokens[:, :n], "argmax")
    proj = model.text_projection
    return x if proj is None else proj(x) if callable(proj) else x @ proj


class OpenClipEncoder:
    """A CLIP-style encoder from open_clip. Views: ``image`` (which is also ``joint``).

    Args:
        arch: open_clip architecture name (``ViT-B-32``…), ``hf-hub:org/name`` or ``local-dir:/path``.
        pretrained: open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``…) or a local checkpoint
            path; for ``local-dir:`` the weights file (``None`` = the directory's own); ``None`` for
            ``hf-hub:``, or together with ``random_init=True`` (tests).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        random_init: build the architecture with random weights (mechanics tests, never a default).
        cache_dir: where hub weights are kept (open_clip's own default when ``None``).
        digest_dir: where checkpoint content hashes are remembered (see :func:`file_digest`).
        guess_arch: ``arch`` was assumed, not named: a checkpoint file named after an architecture
            (``ViT-L-14-….pt``) gets that one.

    Raises:
        ConfigError: unknown architecture or tag, missing file, a checkpoint that does not load, no such device.
        ModelUnavailableError: a valid hub model that is not cached while the hub cannot be reached.
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
        digest_dir: str | Path | None = None,
        guess_arch: bool = False,
    ) -> None:
        self.schema = (
            "hf-hub"
            if arch.startswith(HF_HUB_PREFIX)
            else "local-dir"
            if arch.startswith(LOCAL_DIR_PREFIX)
            else None
        )
        if self.schema is None and pretrained is None and not random_init:
            raise ConfigError(
                f"open_clip model {arch!r} needs a pretrained tag or a checkpoint path "
                f"(e.g. {arch}/openai or openclip:{arch}:/path/to/ckpt.pt)"
            )
        self.arch = arch
        self.pretrained = pretrained
        self.cache_dir = cache_dir
        self.digest_dir = digest_dir
        self.checkpoint: str | None = None  # the local weights file, when there is one
        self.device = resolve_device(device)
        self._model: Any = None  # the open_clip model, built by _load()
        self._preprocess = None
        self._tokenizer: Any = None
        self._guess_arch = guess_arch
        self._load()

    # -- loading ----------------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            import open_clip
        except ImportError as exc:  # pragma: no cover
            raise ModelUnavailableError("open_clip is not installed: pip install open-clip-torch") from exc
        if self.schema == "hf-hub":
            model, preprocess, tag = self._load_hub_repo(open_clip)
        elif self.schema == "local-dir":
            model, preprocess, tag = self._load_local_dir(open_clip)
        elif self.pretrained is None:
            check_architecture(self.arch)
            model, preprocess = self._create(open_clip, self.arch, None, pretrained_text=False)
            tag = "random"
        elif is_path_like(self.pretrained):
            model, preprocess, tag = self._load_checkpoint_file(open_clip)
        else:
            check_architecture(self.arch, f"{self.arch}/{self.pretrained}")
            check_pretrained_tag(self.arch, self.pretrained)
            model, preprocess = offline_first(
                lambda: self._create(open_clip, self.arch, self.pretrained, hub=True),
                f"weights {self.arch}/{self.pretrained}",
                "pass a local checkpoint (--model openclip:ARCH:/path/to/ckpt.pt) or use --model bundled",
            )
            tag = self.pretrained.lower().replace("-", "_")  # open_clip's spelling: one id per set of weights
        self._tokenizer = offline_first(
            lambda: open_clip.get_tokenizer(self.arch, cache_dir=self.cache_dir),
            f"the tokenizer of {self.arch}",
            "use a model whose tokenizer is cached, or --model bundled",
        )
        model.eval()
        self._model = model
        self._preprocess = preprocess
        self.model_id, self.description = describe_openclip(self.schema, self.arch, tag, self.checkpoint)

    def _create(self, open_clip, name: str, pretrained: str | None, *, hub: bool = False, **kwargs):
        with _lock:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name,
                pretrained=pretrained,
                device=self.device,
                cache_dir=self.cache_dir,
                require_pretrained=pretrained is not None or hub,
                **kwargs,
            )
        return model, preprocess

    def _load_checkpoint_file(self, open_clip):
        path = os.path.expanduser(self.pretrained)
        if not os.path.exists(path):
            raise missing_path_error(self.pretrained)
        if os.path.isdir(path):
            raise ConfigError(
                f"{self.pretrained!r} is a directory; name the checkpoint file in it, or pass the directory "
                "alone when it holds open_clip_config.json"
            )
        if self._guess_arch:
            self.arch = guess_architecture(path, self.arch)
        check_architecture(self.arch, f"{self.arch} with {self.pretrained}")
        self.checkpoint = os.path.abspath(path)
        digest = self._digest(path)

        def build():
            try:
                return self._create(open_clip, self.arch, path)
            except Exception as exc:
                if is_not_cached(exc):
                    raise
                assumed = " (assumed; name it: openclip:ARCH:/path/to/ckpt.pt)" if self._guess_arch else ""
                raise ConfigError(
                    f"checkpoint {self.pretrained!r} could not be loaded into open_clip {self.arch}{assumed}: "
                    f"{first_line(exc)}"
                ) from exc

        model, preprocess = offline_first(
            build,
            f"parts of {self.arch}",
            "use a checkpoint of a model that needs nothing from the hub, or --model bundled",
        )
        return model, preprocess, f"file-{digest}"

    def _load_local_dir(self, open_clip):
        directory = os.path.expanduser(self.arch[len(LOCAL_DIR_PREFIX) :])
        if not os.path.isdir(directory):
            raise missing_path_error(directory, "model directory")
        if self.pretrained is not None:
            weights = Path(os.path.expanduser(self.pretrained))
            if not weights.is_file():
                raise missing_path_error(self.pretrained)
            if not (Path(directory) / "open_clip_config.json").is_file():
                raise ConfigError(f"{directory!r} has no open_clip_config.json")
        else:
            weights = find_dir_weights(directory)
        self.arch = f"{LOCAL_DIR_PREFIX}{os.path.abspath(directory)}"
        self.checkpoint = str(weights.resolve())
        config_digest = self._digest(Path(directory) / "open_clip_config.json")
        digest = self._digest(weights)

        def build():
            try:
                # weights loaded here, not by open_clip, which knows fewer file names (not .pt) and, finding
                # none, would build the model with random weights
                model, preprocess = self._create(
                    open_clip, self.arch, None, load_weights=False, pretrained_text=False
                )
                open_clip.load_checkpoint(model, str(weights), strict=True)
            except Exception as exc:
                if is_not_cached(exc):
                    raise
                raise ConfigError(
                    f"model directory {directory!r} could not be loaded ({weights.name}): {first_line(exc)}"
                ) from exc
            return model, preprocess

        model, preprocess = offline_first(build, f"parts of the model in {directory}", "use --model bundled")
        # the id does not name the directory: the same files elsewhere are the same model
        return model, preprocess, f"file-{digest}+cfg-{config_digest}"

    def _load_hub_repo(self, open_clip):
        from open_clip.pretrained import download_pretrained_from_hf

        repo = self.arch[len(HF_HUB_PREFIX) :]
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise ConfigError(f"expected hf-hub:ORG/NAME, got {self.arch!r}")
        what = f"hub model {repo}"

        def build():
            # config and weights first, so a missing file is "not cached" and not a random model
            download_pretrained_from_hf(repo, filename="open_clip_config.json", cache_dir=self.cache_dir)
            weights = download_pretrained_from_hf(repo, cache_dir=self.cache_dir)
            model, preprocess = self._create(open_clip, self.arch, None, hub=True)
            return model, preprocess, weights

        model, preprocess, weights = offline_first(
            build, what, "pass a local model directory or checkpoint, or use --model bundled"
        )
        return model, preprocess, _hub_file_identity(weights, self.digest_dir)

    def _digest(self, path) -> str:
        try:
            return file_digest(path, memo_dir=self.digest_dir)
        except OSError as exc:
            raise ConfigError(f"cannot read {str(path)!r}: {first_line(exc)}") from exc

    # -- inference --------------------------------------------------------------------------------------
    def preprocess(self, image):
        """RGB PIL image → ``(3, H, W)`` tensor with the model's own transform."""
        return self._preprocess(image)

    def _autocast(self):
        return cuda_autocast(self.device)

    def encode_image_batch(self, batch) -> dict[str, np.ndarray]:
        """``(b, 3, H, W)`` → ``{"image": (b, d), "joint": same array}``, float32, L2-normalised.

        On CUDA the batch goes from pinned memory without blocking and the forward runs in bf16/fp16
        autocast; on the CPU it runs in float32 as it is.
        """
        import torch

        with torch.inference_mode(), self._autocast():
            x = to_device(batch, self.device)
            feats = self._model.encode_image(x)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        out = feats.cpu().numpy().astype(np.float32, copy=False)
        return {"image": out, "joint": out}

    @property
    def logit_params(self) -> tuple[float, float | None]:
        """``(scale, bias)`` of the model's image–text score.

        CLIP ``softmax(scale · cos)``, SigLIP (a learned bias) ``sigmoid(scale · cos + bias)``; see
        :func:`vlexplore.cluster.prototypes.score_scale`.
        """
        bias = getattr(self._model, "logit_bias", None)
        scale = float(self._model.logit_scale.detach().float().exp().reshape(-1)[0])
        return scale, None if bias is None else float(bias.detach().float().reshape(-1)[0])

    def encode_texts(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """Texts → float32 ``(m, d)``, L2-normalised, in the image space."""
        import torch

        texts = list(texts)
        chunks = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(texts), batch_size):
                tokens = to_device(self._tokenizer(texts[start : start + batch_size]), self.device)
                feats = encode_text_short(self._model, tokens)
                feats = self._model.encode_text(tokens) if feats is None else feats
                chunks.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
        if not chunks:
            dim = int(getattr(self._model, "embed_dim", 0) or self._model.text_projection.shape[1])
            return np.zeros((0, dim), dtype=np.float32)
        return l2_normalize(np.concatenate(chunks))
