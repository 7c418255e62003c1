"""Captions and question answers per image, batched, cached on disk, resumable.

``caption_images(collection, captioner, prompt=None)`` runs a real captioner
(BLIP, BLIP-2, GIT via transformers). The bundled offline model has no
captioner: its *label captions* come from its own logits for free
(:meth:`vlexplore.models.bundled.BundledEncoder.label_captions`).
"""

from __future__ import annotations

import hashlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .config import default_cache_dir
from .errors import CacheError, CacheWriteWarning, ImageReadError
from .types import Progress


def _namespace(captioner, prompt: str | None) -> str:
    tag = "caption" if prompt is None else "vqa-" + hashlib.sha1(prompt.encode()).hexdigest()[:10]
    return f"{captioner.model_id}:{tag}"


def caption_images(
    collection,
    captioner,
    *,
    prompt: str | None = None,
    cache_dir: Path | None = None,
    batch_size: int = 16,
    num_workers: int = 2,
    on_progress: Progress = None,
) -> list[str]:
    """One caption (or answer to ``prompt``) per image of ``collection``, in row order.

    Cached rows are read back; only missing images go through the model, and each
    finished batch is written at once, so an interrupted run resumes. An image that
    cannot be decoded gets an empty caption (embedding already reported it).

    Returns:
        ``list[str]`` of length ``len(collection)``.
    """
    from .cache import store_for
    from .imageio import open_image, read_image_bytes

    store = store_for(
        Path(cache_dir) if cache_dir is not None else default_cache_dir(), _namespace(captioner, prompt)
    )
    keys = list(collection.fingerprints)
    paths = list(collection.paths)
    found, cols = store.lookup(keys, ["caption"])
    out: list[str] = [""] * len(keys)
    cached = iter(cols.get("caption", []))
    for i, ok in enumerate(found):
        if ok:
            out[i] = next(cached)
    missing = [i for i, ok in enumerate(found) if not ok]
    total, done = len(keys), len(keys) - len(missing)
    if on_progress:
        on_progress(done, total)

    def load(i: int):
        try:  # the bytes decoded are the bytes the key was made from (a changed file is left out)
            data, _ = read_image_bytes(paths[i], expected=keys[i])
            return i, captioner.preprocess(open_image(data, max_side=1024))
        except ImageReadError:
            return i, None

    writable = True

    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        for start in range(0, len(missing), batch_size):
            chunk = list(pool.map(load, missing[start : start + batch_size]))
            good = [(i, img) for i, img in chunk if img is not None]
            texts = captioner.caption_batch([img for _, img in good], prompt=prompt) if good else []
            for (i, _), text in zip(good, texts, strict=True):
                out[i] = text
            if good and writable:  # only captions of images that were read: a failure is never cached
                try:
                    store.append([keys[i] for i, _ in good], {"caption": [out[i] for i, _ in good]})
                except CacheError as exc:
                    writable = False
                    warnings.warn(
                        f"{exc}; captions of this run are kept in memory only",
                        CacheWriteWarning,
                        stacklevel=2,
                    )
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
    return out
