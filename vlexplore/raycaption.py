"""Captions on a Ray cluster: the same captioner, cache and content checks as :func:`vlexplore.caption.caption_images`.

The driver sends Ray only the images whose captions are not cached; Ray Data read tasks read their bytes,
an actor pool (one captioner per GPU, else one per 4 CPUs; see :func:`vlexplore.distributed.plan_resources`)
checks each file's bytes against its scanned key, decodes and captions them in batches, and the driver
writes each finished batch into the caption cache, so a run resumes and a local run (or the app) reads
its captions without loading the captioner.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import store_for
from .caption import _namespace, caption_images
from .collection import Collection
from .distributed import READ_TASK_CPUS, _local_path, plan_resources, ray_session, run_task
from .errors import ConfigError, ImageReadError, VlexploreError
from .imageio import content_key, open_image
from .types import Progress

#: Decode size handed to captioners (they resize to 224–384 px themselves).
CAPTION_MAX_SIDE = 1024


@dataclass(frozen=True)
class CaptionerRecipe:
    """How an actor builds its captioner: a registry name or a local directory, and the device. Picklable."""

    name: str
    device: str = "auto"

    def __call__(self):
        """Build the captioner on the actor."""
        from .models.registry import load_captioner

        return load_captioner(self.name, device=self.device)


class _CaptionActor:
    """One captioner per actor: a batch of file bytes → one caption (or an error) per row."""

    def __init__(self, factory: Callable, prompt: str | None, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.captioner = factory()
        self.prompt = prompt

    def __call__(self, batch: dict) -> dict:
        """Build the captioner on the actor."""
        paths = [str(p) for p in batch["path"]]
        keys, images, errors = [], [], []
        for data in batch["bytes"]:
            data = bytes(data)
            keys.append(content_key(data))
            try:
                images.append(self.captioner.preprocess(open_image(data, max_side=CAPTION_MAX_SIDE)))
                errors.append("")
            except ImageReadError as exc:
                images.append(None)
                errors.append(str(exc))
        ok = [i for i, img in enumerate(images) if img is not None]
        captions = [""] * len(paths)
        if ok:
            for i, text in zip(ok, self.captioner.caption_batch([images[i] for i in ok], prompt=self.prompt)):
                captions[i] = text
        return {
            "path": np.array(paths, dtype=object),
            "caption": np.array(captions, dtype=object),
            "error": np.array(errors, dtype=object),
            "key": np.array(keys, dtype=object),
        }


class _CachedCaptions:
    """Stands in for the captioner when the run's captions are gathered from the cache (never captions)."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def preprocess(self, image):
        raise ImageReadError(
            "file could not be captioned on the Ray cluster; run again to retry it", lasting=False
        )

    def caption_batch(self, images, prompt=None):  # pragma: no cover - preprocess always raises
        raise VlexploreError("no captioner is loaded when gathering a ray run's captions")


def _model_id(factory: Callable) -> str:
    return factory().model_id


def caption_images_ray(
    collection: Collection,
    captioner: str | Callable,
    *,
    prompt: str | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    batch_size: int = 16,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    on_progress: Progress = None,
) -> list[str]:
    """Caption ``collection`` on Ray, filling the caption cache; returns one caption per row, like the local call.

    Args:
        collection: from :func:`vlexplore.collection.scan_folder`.
        captioner: a captioner name as the CLI takes it (``blip-base``, a local directory…) or a picklable
            zero-argument callable that builds one on an actor.
        prompt: a question for prompt-guided captions (VQA), or ``None`` for plain captions.
        device: as :func:`vlexplore.distributed.embed_images_ray`.
        cache_dir: the cache root (:func:`vlexplore.config.default_cache_dir` when ``None``).
        address: the Ray cluster to join, as :func:`vlexplore.distributed.embed_images_ray`.
        actors: captioning actors, as :func:`vlexplore.distributed.embed_images_ray`.
        gpus_per_actor: as :func:`vlexplore.distributed.embed_images_ray`.
        on_progress: called with ``(done, total)`` as batches finish.
        batch_size: images per ``caption_batch`` call on an actor.

    Returns:
        ``list[str]`` of ``len(collection)``; ``""`` for images that could not be read.

    Raises:
        RayUnavailableError: Ray is not installed.
        ConfigError: a bad captioner or resources.
    """
    from .config import default_cache_dir

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if isinstance(captioner, str):
        factory: Callable = CaptionerRecipe(captioner, "cpu" if device == "cpu" else "auto")
    elif callable(captioner):
        factory = captioner
    else:
        raise ConfigError(f"captioner must be a name or a callable that builds one, got {captioner!r}")
    with ray_session(address) as ray:
        model_id = run_task(ray, _model_id, factory)
        stand_in = _CachedCaptions(model_id)
        store = store_for(cache_dir, _namespace(stand_in, prompt))
        path_of: dict[str, str] = {}
        for fp, path in zip(collection.fingerprints, collection.paths):
            path_of.setdefault(fp, path)
        unique = list(path_of)
        missing = [fp for fp, hit in zip(unique, store.contains(unique)) if not hit]
        total, done = len(unique), len(unique) - len(missing)
        if on_progress is not None:
            on_progress(done, total)
        if missing:
            plan = plan_resources(
                ray.cluster_resources(),
                device=device,
                actors=actors,
                gpus_per_actor=gpus_per_actor,
                batch_size=batch_size,
            )
            if isinstance(factory, CaptionerRecipe):
                factory = CaptionerRecipe(factory.name, plan.device)
            fp_of = {os.path.abspath(path_of[fp]): fp for fp in missing}
            ds = ray.data.read_binary_files(list(fp_of), include_paths=True, num_cpus=READ_TASK_CPUS)
            ds = ds.map_batches(
                _CaptionActor,
                fn_constructor_kwargs={
                    "factory": factory,
                    "prompt": prompt,
                    "threads": round(plan.cpus_per_actor),
                },
                batch_size=plan.batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=plan.actors),
                num_gpus=plan.gpus_per_actor or None,
                num_cpus=plan.cpus_per_actor,
            )
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                fps = [fp_of[_local_path(p)] for p in batch["path"]]
                # only captions of bytes that still have the scanned key, and of images that were read
                good = [
                    i
                    for i, (fp, key, err) in enumerate(zip(fps, batch["key"], batch["error"]))
                    if str(key) == fp and not err
                ]
                if good:
                    store.append(
                        [fps[i] for i in good], {"caption": [str(batch["caption"][i]) for i in good]}
                    )
                done += len(fps)
                if on_progress is not None:
                    on_progress(done, total)
    return caption_images(collection, stand_in, prompt=prompt, cache_dir=cache_dir, num_workers=0)
