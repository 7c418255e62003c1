"""Embed images and texts with an :class:`~vlexplore.models.base.Encoder`, through the disk cache.

:func:`embed_images` is resumable: every finished batch is written to the cache at
once, decode failures too, so re-running after an interruption computes only what
is missing and a complete re-run calls no model at all. Images are decoded and
preprocessed in a few threads that run at most about one batch ahead of inference,
so memory stays bounded on any folder size.
"""

from __future__ import annotations

import re
import warnings
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from itertools import compress
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from .cache import store_for
from .collection import Collection
from .errors import CacheError, CacheWriteWarning, ConfigError, ImageReadError, VlexploreError
from .imageio import CHANGED, open_image, read_image_bytes
from .models.base import Encoder, l2_normalize
from .results import Embedded
from .types import Progress

PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a cropped photo of a {}.",
)
DECODE_MAX_SIDE = 512  # JPEG draft hint: both sides stay ≥ this, enough for 224-448 px model inputs
#: Longest side / shortest side of the image handed to ``encoder.preprocess``; beyond it the short side is
#: padded with white. CLIP-style transforms scale the *shorter* side to 224: a 30000×1 strip became a
#: 6.7-million-pixel-wide image (6.7 GB, 40 s) before the centre crop.
MAX_ASPECT = 32
FAILURES_SUFFIX = ":failures"
#: After a run that computed something, a store with more shards than this is compacted
#: (:meth:`~vlexplore.cache.ShardStore.compact`): a 70k collection embedded 64 at a time leaves 1,100.
COMPACT_ABOVE = 256
INVALID_OUTPUT = "the model returned invalid values (NaN or infinity) for this image"

#: The old name of :class:`~vlexplore.results.Embedded`, kept for one release.
EmbedResult = Embedded

GPU_MB_PER_IMAGE = 24
GPU_BATCH_RANGE = (32, 1024)


def default_batch_size(device: str, *, free_bytes: int | None = None) -> int:
    """Images per forward pass when none is given.

    On CUDA, a power of two that fills about half the free GPU memory (:data:`GPU_MB_PER_IMAGE` per image,
    within :data:`GPU_BATCH_RANGE`; 256 when it cannot be read); 64 elsewhere.

    ``free_bytes``: free GPU memory; ``None`` = ask ``torch.cuda.mem_get_info`` for ``device``.
    """
    if not str(device).startswith("cuda"):
        return 64
    if free_bytes is None:
        try:
            import torch

            free_bytes = int(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, AssertionError, ValueError, AttributeError):  # no driver, or a bad index
            return 256
    fit = max(1, int(free_bytes * 0.5 // (GPU_MB_PER_IMAGE * 2**20)))
    lo, hi = GPU_BATCH_RANGE
    return int(min(hi, max(lo, 2 ** (fit.bit_length() - 1))))


def embed_images(
    collection: Collection,
    encoder: Encoder,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 0,
    num_workers: int = 2,
    on_progress: Progress = None,
) -> Embedded:
    """Embed every image of ``collection``, reading and filling the cache.

    Cached rows are looked up by content key (``fingerprint``) under the namespace ``encoder.model_id``;
    failures of a file's content under ``encoder.model_id + ":failures"`` (column ``error``), so they are
    not retried (passing trouble, such as I/O errors or memory, is). Identical files are computed once.
    Every file is read once and its bytes hashed again before they are decoded: a file that changed
    since the scan is skipped for this run ("load the folder again"), so nothing is ever cached under a
    key its bytes do not have. A read-only or full cache is said once (a warning), and the run goes on
    in memory.

    Args:
        collection: from :func:`vlexplore.images.scan_folder`.
        encoder: any :class:`~vlexplore.models.base.Encoder`.
        cache_dir: the cache root (:func:`vlexplore.config.default_cache_dir` when ``None``).
        batch_size: images per forward pass; ``0`` = :func:`default_batch_size` for ``encoder.device``.
        num_workers: decoding threads; ``0`` decodes in the calling thread.
        on_progress: ``(images done, images total)``, first with the cached count, then after each batch.

    Returns:
        An :class:`~vlexplore.results.Embedded` (no captions, no encoder).

    Raises:
        ConfigError: negative ``batch_size`` or ``num_workers``.
        VlexploreError: the encoder returned arrays of the wrong shape.
    """
    if batch_size < 0:
        raise ConfigError(f"batch_size must be >= 0 (0 = automatic), got {batch_size}")
    if num_workers < 0:
        raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
    views = tuple(encoder.views)
    store = store_for(cache_dir, encoder.model_id)
    failure_store = store_for(cache_dir, encoder.model_id + FAILURES_SUFFIX)

    fps = collection.fingerprints
    unique = list(dict.fromkeys(fps))  # identical files are looked up (and computed) once

    found, values = store.lookup(unique, views)
    cached = cast("dict[str, np.ndarray]", values)  # the views are vector columns (read only when found)
    damaged = _damaged_rows(cached, views) if found.any() else np.zeros(0, dtype=bool)
    if damaged.any():  # bit rot in a shard: compute those rows again rather than hand NaN to clustering
        warnings.warn(
            f"{int(damaged.sum())} cached embeddings in {store.directory} are damaged (NaN, infinite "
            "or not unit length) and are computed again; delete that folder to stop this",
            stacklevel=2,
        )
        found[np.flatnonzero(found)[damaged]] = False
        cached = {v: cached[v][~damaged] for v in views}
    rest = [unique[i] for i in np.flatnonzero(~found).tolist()]
    failed_mask, failed_vals = failure_store.lookup(rest, ["error"])
    errors: dict[str, str] = dict(
        zip([fp for fp, hit in zip(rest, failed_mask) if hit], failed_vals["error"])
    )
    missing = [fp for fp, hit in zip(rest, failed_mask) if not hit]
    # a fully cached folder asks nothing of the model but its identity (a lazy one never loads)
    batch_size = batch_size or (default_batch_size(encoder.device) if missing else 1)

    weight: dict[str, int] = {}  # files per key, and their paths: needed only when something is computed
    paths_of: dict[str, list[str]] = {}
    for fp, path in zip(fps, collection.paths) if missing else ():
        weight[fp] = weight.get(fp, 0) + 1
        paths_of.setdefault(fp, []).append(path)
    total = len(fps)
    done = total - sum(weight[fp] for fp in missing)
    if on_progress is not None:
        on_progress(done, total)

    row_of = dict(zip(compress(unique, found), range(len(unique))))
    blocks: dict[str, list[np.ndarray]] = {v: [cached[v]] for v in views if len(row_of)}
    n_computed = 0
    changed: dict[str, str] = {}  # path -> reason: files whose bytes no longer have the scanned key
    writable = [True]

    def load(fp: str):
        """Decode the first file of ``fp`` whose bytes still hash to ``fp`` (identical files are read once)."""
        for path in paths_of[fp]:
            try:
                data, _ = read_image_bytes(path, expected=fp)
                return fp, prepare_image(data, encoder), None
            except ImageReadError as exc:
                if str(exc) != CHANGED:
                    return fp, None, exc
                changed[path] = CHANGED
        return fp, None, ImageReadError(CHANGED, lasting=False)

    def save(target, keys: list[str], columns: dict) -> None:
        """Append to the cache; a read-only or full cache is said once, and the run goes on in memory."""
        if not writable[0]:
            return
        try:
            target.append(keys, columns)
        except CacheError as exc:
            writable[0] = False
            warnings.warn(
                f"{exc}; this run keeps its results in memory only (free space or fix the "
                "permissions, then run again to fill the cache)",
                CacheWriteWarning,
                stacklevel=3,
            )

    batch_fps: list[str] = []
    tensors: list = []
    new_errors: dict[str, ImageReadError] = {}

    def flush() -> None:
        nonlocal done, n_computed
        if tensors:
            import torch

            out = encoder.encode_image_batch(torch.stack(tensors))
            arrays, finite = finish_batch(out, views, len(tensors), encoder.model_id)
            if not finite.all():
                new_errors.update(
                    (fp, ImageReadError(INVALID_OUTPUT, lasting=False))
                    for fp, ok in zip(batch_fps, finite)
                    if not ok
                )
                batch_fps[:] = [fp for fp, ok in zip(batch_fps, finite) if ok]
            save(store, batch_fps, arrays)
            for fp in batch_fps:
                row_of[fp] = len(row_of)
            for v in views:
                blocks.setdefault(v, []).append(arrays[v])
            n_computed += len(tensors)
        lasting = {fp: str(e) for fp, e in new_errors.items() if e.lasting}
        if lasting:  # failures of the content itself are remembered; passing trouble is retried next time
            save(failure_store, list(lasting), {"error": list(lasting.values())})
        errors.update((fp, str(e)) for fp, e in new_errors.items())
        done += sum(weight[fp] for fp in batch_fps) + sum(weight[fp] for fp in new_errors)
        batch_fps.clear()
        tensors.clear()
        new_errors.clear()
        if on_progress is not None:
            on_progress(done, total)

    with closing(_prefetch(load, missing, num_workers, window=batch_size)) as decoded:
        for fp, tensor, error in decoded:
            if error is not None:
                new_errors[fp] = error
            else:
                batch_fps.append(fp)
                tensors.append(tensor)
            if len(tensors) >= batch_size:
                flush()
        if tensors or new_errors:
            flush()

    if n_computed and writable[0] and len(store.shard_paths()) > COMPACT_ABOVE:  # reopening reads every shard
        store.compact()
    items = collection.items
    failed = (
        {
            r: changed.get(p) or errors[fp]
            for r, p, fp in zip(items["relpath"].tolist(), items["path"].tolist(), fps)
            if p in changed or fp in errors
        }
        if changed or errors
        else {}
    )
    kept = collection.without(failed)
    if len(kept) == 0:
        empty = {v: np.zeros((0, 0), np.float32) for v in views}
        return Embedded(kept, empty, encoder.model_id, n_computed=n_computed)
    if kept is collection and not n_computed and len(row_of) == len(fps):  # every row cached, in order
        rows = np.arange(len(fps), dtype=np.int64)
    else:
        rows = np.fromiter(map(row_of.__getitem__, kept.fingerprints), dtype=np.int64, count=len(kept))
    out_views = {v: _gather(blocks.pop(v), rows) for v in views}
    return Embedded(kept, out_views, encoder.model_id, n_computed=n_computed)


def _gather(blocks: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """``concatenate(blocks)[rows]`` holding at most one extra copy (a cached re-open is one block, often in order).

    ``blocks`` is emptied as it is consumed, so each block is freed once copied.
    """
    if len(blocks) == 1:
        only = blocks.pop()
        if len(rows) == len(only) and np.array_equal(rows, np.arange(len(only))):
            return only
        return only[rows]
    offsets = np.cumsum([0] + [len(b) for b in blocks])
    which = np.searchsorted(offsets, rows, side="right") - 1  # the block each wanted row lives in
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(blocks) + 1))
    out = np.empty((len(rows), blocks[0].shape[1]), dtype=blocks[0].dtype)
    slots = cast("list[np.ndarray | None]", blocks)  # the same list: each slot is set to None once copied
    for i in range(len(blocks)):
        block, slots[i] = blocks[i], None
        at = order[bounds[i] : bounds[i + 1]]
        out[at] = block[rows[at] - offsets[i]]
    blocks.clear()
    return out


def prepare_image(source: str | Path | bytes | bytearray, encoder: Encoder):
    """One image file (path or its bytes) → the encoder's input tensor: the decode every engine shares.

    Raises:
        ImageReadError: the image cannot be decoded (the reason is in the message).
    """
    return encoder.preprocess(_bounded_aspect(open_image(source, max_side=DECODE_MAX_SIDE)))


def finish_batch(
    out, views: tuple[str, ...], n: int, model_id: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """An encoder's raw batch output → (``{view: L2-normalised float32 (n_ok, d)}``, bool ``(n,)`` finite rows).

    Rows with NaN or infinity are dropped (never cached; they would make a collection unclusterable).
    """
    arrays = _check_output(out, views, n, model_id)
    finite = np.logical_and.reduce([np.isfinite(a).all(axis=1) for a in arrays.values()])
    return {v: l2_normalize(a[finite]) for v, a in arrays.items()}, finite


def _bounded_aspect(image: Image.Image, max_aspect: int = MAX_ASPECT) -> Image.Image:
    """``image`` itself.

    Or when one side is over ``max_aspect`` times the other, the image shrunk to at most ``8 ×
    DECODE_MAX_SIDE`` (4096) pixels long and centred on a white band of ratio ``max_aspect : 1``.

    Keeps every preprocessing transform bounded (see :data:`MAX_ASPECT`); ordinary photos and panoramas
    up to ``max_aspect : 1`` are untouched.
    """
    w, h = image.size
    if max(w, h) <= max_aspect * min(w, h):
        return image
    longest = 8 * DECODE_MAX_SIDE
    if max(w, h) > longest:
        image = image.resize(
            (max(1, w * longest // max(w, h)), max(1, h * longest // max(w, h))), Image.Resampling.BOX
        )
        w, h = image.size
    short = -(-max(w, h) // max_aspect)  # ceil
    canvas = Image.new("RGB", (w, short) if w > h else (short, h), (255, 255, 255))
    canvas.paste(image.convert("RGB"), ((canvas.width - w) // 2, (canvas.height - h) // 2))
    return canvas


def _prefetch(load: Callable, jobs: list, num_workers: int, *, window: int) -> Generator[Any, None, None]:
    """``load(job)`` for each job, in order, computed by ``num_workers`` threads at most ``window`` jobs ahead."""
    if num_workers == 0:
        for job in jobs:
            yield load(job)
        return
    pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="vlexplore-decode")
    pending: deque[Future] = deque()
    todo = iter(jobs)
    try:
        for job in todo:
            pending.append(pool.submit(load, job))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            job = next(todo, None)
            if job is not None:
                pending.append(pool.submit(load, job))
            yield result
    finally:  # interrupted (exception, KeyboardInterrupt, consumer gone): drop queued work
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _check_output(out, views: tuple[str, ...], n: int, model_id: str) -> dict[str, np.ndarray]:
    arrays = {}
    for v in views:
        a = np.asarray(out.get(v) if isinstance(out, dict) else None, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] != n:
            raise VlexploreError(
                f"encoder {model_id!r} returned view {v!r} with shape {a.shape}, expected ({n}, d)"
            )
        arrays[v] = a
    return arrays


def _damaged_rows(cached: dict[str, np.ndarray], views: tuple[str, ...]) -> np.ndarray:
    """Bool ``(n_found,)``: cached rows that cannot be what :func:`embed_images` stored (finite, unit or zero length).

    One float32 pass per view: a NaN or infinite entry makes the squared norm non-finite (float32 overflow
    past ~1.8e19 too, and no stored row comes near it); a view held twice is checked once.
    """
    n = len(next(iter(cached.values()))) if views else 0
    bad = np.zeros(n, dtype=bool)
    step = 65_536
    seen: set[int] = set()
    for v in views:
        a = np.asarray(cached[v], dtype=np.float32)
        if id(a) in seen:
            continue
        seen.add(id(a))
        for start in range(0, n, step):
            block = a[start : start + step]
            with np.errstate(over="ignore", invalid="ignore"):
                sq = np.einsum("ij,ij->i", block, block)
            bad[start : start + step] |= ~np.isfinite(sq) | ((np.abs(sq - 1.0) > 2e-3) & (sq != 0.0))
    return bad


def embed_texts(texts: Sequence[str], encoder: Encoder) -> np.ndarray:
    """Texts → ``float32 (m, d_joint)``, rows L2-normalised; ``(0, 0)`` for no texts (the model is not called)."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise ConfigError(f"texts must be strings, got {bad[0]!r}")
    return l2_normalize(encoder.encode_texts(texts))


def encode_prompts(
    prompts: Sequence[str], encoder: Encoder, templates: Sequence[str] | None = None
) -> np.ndarray:
    """Prompt embeddings: each prompt put into every template, embedded, averaged and renormalised.

    Args:
        prompts: ``m`` non-empty texts ("dog", "red car").
        encoder: an encoder; only :meth:`encode_texts` is called (once, ``m × len(templates)`` texts).
        templates: format strings with one ``{}``; empty = the prompts as they are. ``None`` = the
            encoder's own ``prompt_templates`` when it declares them (the bundled model embeds
            prompts as typed), else :data:`PROMPT_TEMPLATES`.

    Returns:
        ``float32 (m, d_joint)``, rows L2-normalised, in prompt order.

    Raises:
        ConfigError: no prompts, a blank prompt, or a template without ``{}``.
    """
    prompts = list(prompts)
    if not prompts:
        raise ConfigError(
            'no text prompts were given; type one or more, separated by commas, e.g. "dog, cat"'
        )
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"prompts must be non-empty texts, got {p!r}")
    if templates is None:
        templates = getattr(encoder, "prompt_templates", PROMPT_TEMPLATES)
    templates = list(templates) or ["{}"]
    for t in templates:
        if "{}" not in t:
            raise ConfigError(f"prompt template {t!r} needs a '{{}}' where the prompt goes")
    texts = [t.format(p.strip()) for p in prompts for t in templates]
    emb = embed_texts(texts, encoder)
    return l2_normalize(emb.reshape(len(prompts), len(templates), -1).mean(axis=1))


def parse_prompts(text: str) -> list[str]:
    """Split free text into prompts: on commas and new lines, stripped, empties and repeats dropped.

    Repeats are found ignoring case and runs of whitespace ("Dog" = "dog"); the first spelling is kept.
    """
    out: list[str] = []
    seen: set[str] = set()
    for part in re.split(r"[,\r\n]+", text or ""):
        prompt = " ".join(part.split())
        if prompt and prompt.casefold() not in seen:
            seen.add(prompt.casefold())
            out.append(prompt)
    return out
