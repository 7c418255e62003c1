"""An open_clip encoder's identity (cache namespace and description) from names and files alone.

The model id of local weights is a hash of their content (:mod:`.digests`), of ``ARCH/TAG`` the names, of an
``hf-hub:`` repo the blob its weights are in the local hub cache: none of them needs torch, open_clip or the
model, so a folder whose embeddings are all cached can be opened without loading it (:mod:`.lazy`).
:class:`~vlexplore.models.openclip.OpenClipEncoder` names itself with the same :func:`describe_openclip`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

from .digests import _hub_file_identity, file_digest

HUB_CONFIG_FILE = "open_clip_config.json"
#: The files open_clip's ``download_pretrained_from_hf`` tries for a repo's weights, in its order.
HUB_WEIGHTS_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def describe_openclip(schema: str | None, arch: str, tag: str, checkpoint: str | None) -> tuple[str, str]:
    """``(model_id, description)`` of open_clip weights.

    ``schema`` is ``hf-hub``, ``local-dir`` or ``None``; ``tag`` the weights' id (a pretrained tag, ``random``,
    ``file-…`` or ``hub-…``); ``checkpoint`` the local weights file, when there is one.
    """
    # the id names the weights by content for local files, never by where they are
    model_id = f"open_clip:{'local-dir' if schema == 'local-dir' else arch}:{tag}"
    if schema == "hf-hub":
        return model_id, f"CLIP {arch.split(':', 1)[1]} (model hub)"
    if checkpoint is not None:
        shown = Path(checkpoint).parent.name if schema == "local-dir" else arch
        weights = re.sub(
            r"([0-9a-f]{8})[0-9a-f]{8,}", r"\1", tag.split("+")[0]
        )  # a hash, shortened for people
        return model_id, f"CLIP {shown} ({Path(checkpoint).name}, {weights})"
    return model_id, f"CLIP {arch} ({'random weights' if tag == 'random' else tag})"


def known_architectures() -> list[str]:
    """open_clip's architecture names: its own list once imported, else its config files' names (no import)."""
    module = sys.modules.get("open_clip")
    if module is not None:
        return list(module.list_models())
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
    return sorted(p.stem for p in folder.glob("*.json"))


def guess_from_names(path: str | Path, names: list[str], default: str) -> str:
    """The architecture of ``names`` a checkpoint's file name starts with (longest match), else ``default``."""
    stem = Path(path).name.lower()
    hits = [a for a in names if stem.startswith(a.lower())]
    return max(hits, key=len) if hits else default


def cached_hub_file(repo: str, filenames: tuple[str, ...]) -> str | None:
    """The first of ``filenames`` the local hub cache holds for ``repo`` (no network), else ``None``."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of open_clip
        return None
    for name in filenames:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def openclip_identity(
    arch: str, pretrained: str | None, *, guess_arch: bool = False, digest_dir=None
) -> tuple[str, str] | None:
    """``(model_id, description)`` the encoder of ``arch`` + ``pretrained`` will have, without building it.

    ``None`` when that cannot be known from files and names (an hf-hub model not in the local hub cache, an
    architecture open_clip does not know, a path that is not there…): load it then, and its error is the one
    loading gives.
    """
    from .openclip import HF_HUB_PREFIX, LOCAL_DIR_PREFIX, find_dir_weights, is_path_like

    try:
        if arch.startswith(HF_HUB_PREFIX):
            repo = arch[len(HF_HUB_PREFIX) :]
            weights = cached_hub_file(repo, HUB_WEIGHTS_FILES)
            if weights is None or cached_hub_file(repo, (HUB_CONFIG_FILE,)) is None:
                return None
            return describe_openclip("hf-hub", arch, _hub_file_identity(weights, digest_dir), None)
        if arch.startswith(LOCAL_DIR_PREFIX):
            directory = Path(os.path.expanduser(arch[len(LOCAL_DIR_PREFIX) :]))
            config = directory / HUB_CONFIG_FILE
            if not directory.is_dir() or not config.is_file():
                return None
            weights_file = (
                find_dir_weights(directory) if pretrained is None else Path(os.path.expanduser(pretrained))
            )
            if not weights_file.is_file():
                return None
            tag = f"file-{file_digest(weights_file, memo_dir=digest_dir)}+cfg-{file_digest(config, memo_dir=digest_dir)}"
            name = f"{LOCAL_DIR_PREFIX}{os.path.abspath(directory)}"
            return describe_openclip("local-dir", name, tag, str(weights_file.resolve()))
        if pretrained is None:
            return None
        names = known_architectures()
        if is_path_like(pretrained):
            path = os.path.expanduser(pretrained)
            if not os.path.isfile(path):
                return None
            arch = guess_from_names(path, names, arch) if guess_arch else arch
            if arch not in names:
                return None
            tag = f"file-{file_digest(path, memo_dir=digest_dir)}"
            return describe_openclip(None, arch, tag, os.path.abspath(path))
        if arch not in names:
            return None
        return describe_openclip(None, arch, pretrained.lower().replace("-", "_"), None)
    except OSError:
        return None
