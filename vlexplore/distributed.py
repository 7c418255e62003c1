"""Embedding on a Ray cluster with Ray Data, into the same cache the local engine fills.

The work splits the way Ray Data is built for:

* **reading** — :func:`ray.data.read_binary_files` reads the image files (local disks, NFS, or any
  filesystem pyarrow knows, such as ``s3://``) in read tasks spread over the cluster;
* **inference** — :meth:`ray.data.Dataset.map_batches` runs a pool of actors, each holding one encoder
  (one per GPU when the cluster has GPUs, CPU actors otherwise). An actor decodes its batch in a few
  threads with the very code the local engine uses (:func:`vlexplore.encode.prepare_image`), runs one
  forward pass and returns the L2-normalised vectors;
* **storing** — the driver streams the results back and appends them to the content-keyed Parquet
  cache (:mod:`vlexplore.cache`) batch by batch, exactly as :func:`vlexplore.encode.embed_images` does.

So a run is resumable (finished batches stay cached; only missing images are sent to the cluster), a
local re-run or the app finds every vector in the cache and calls no model, and the embeddings equal
the local engine's to float tolerance. Ray is optional: ``pip install "ray[data]"``.

Usage::

    python -m vlexplore embed FOLDER --engine ray                   # a local Ray runtime on this machine
    python -m vlexplore embed FOLDER --engine ray --address auto    # the cluster this node belongs to

Ray's usage statistics are switched off (``RAY_USAGE_STATS_ENABLED=0``) before Ray starts, so
nothing leaves the machine.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import encode
from .cache import store_for
from .collection import Collection
from .encode import (
    FAILURES_SUFFIX,
    Progress,
    default_batch_size,
    embed_images,
    finish_batch,
    prepare_image,
)
from .errors import ConfigError, ImageReadError, VlexploreError
from .imageio import content_key
from .results import Embedded

log = logging.getLogger(__name__)

#: CPUs a read task asks for: reading bytes is light, and the rest is left to the encoder actors.
READ_TASK_CPUS = 0.25
#: Decoding threads per actor, at most (decoding releases the GIL, so threads run in parallel).
MAX_DECODE_THREADS = 8
#: Object store of a local runtime started here (bytes); a cluster keeps its own setting.
LOCAL_OBJECT_STORE = 512 * 1024**2


class RayUnavailableError(VlexploreError):
    """Ray (with Ray Data) is not installed."""


@dataclass(frozen=True)
class EncoderRecipe:
    """How an actor builds its encoder: a registry name or checkpoint, the device and the weights cache.

    Picklable, so it travels to the actors; each actor calls :meth:`build` once.
    """

    model: str = "bundled"
    device: str = "auto"
    cache_dir: str | None = None

    def __call__(self):
        """Build the encoder on the actor."""
        from .models.registry import load_encoder

        return load_encoder(
            self.model, device=self.device, cache_dir=Path(self.cache_dir) if self.cache_dir else None
        )


@dataclass(frozen=True)
class RayPlan:
    """What a run asks of the cluster: actors, and per actor its GPUs, CPUs and decode threads."""

    actors: int
    gpus_per_actor: float
    cpus_per_actor: float
    batch_size: int

    @property
    def device(self) -> str:
        """Where each actor runs its model."""
        return "cuda" if self.gpus_per_actor > 0 else "cpu"


def ray_module():
    """``ray`` with Ray Data, imported with usage statistics off.

    Raises:
        RayUnavailableError: Ray is not installed (the message gives the install command).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayUnavailableError(
            'the ray engine needs Ray Data: pip install "ray[data]" (or use --engine local)'
        ) from exc
    return ray


def shutdown(ray) -> None:
    """``ray.shutdown()``, then put back the ``print`` Ray swapped into :mod:`builtins` (log deduplication).

    Left in place, numba cannot compile functions that print (UMAP's kernels fail with "Untyped global name
    'print'"), so a map after a Ray run would break.
    """
    import builtins

    ray.shutdown()
    builtins.print = _REAL_PRINT


_REAL_PRINT = print


def connect(address: str | None = None, *, num_cpus: int | None = None):
    """Join a Ray cluster (``address``: ``auto``, ``HOST:PORT`` or ``ray://HOST:10001``) or start a local one.

    A runtime that is already up in this process is used as it is.

    Returns:
        ``True`` when this call started (or joined) Ray, so the caller should shut it down.
    """
    ray = ray_module()
    if ray.is_initialized():
        return False
    common = {"logging_level": logging.WARNING, "configure_logging": True}
    if address:
        # ship this package's code with the job, so the nodes run the same vlexplore as the driver
        runtime_env = {"py_modules": [str(Path(__file__).resolve().parent)]}
        ray.init(address=address, runtime_env=runtime_env, **common)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE, **common)
    return True


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray, joined or started (:func:`connect`) and quiet; shut down on exit when this call started it."""
    ray = ray_module()
    started = connect(address)
    try:
        _quiet(ray)
        yield ray
    finally:
        if started:
            shutdown(ray)


def run_task(ray, fn: Callable, *args):
    """``fn(*args)`` as one small Ray task.

    A library error raised there (a misspelt model, weights that cannot be had) is raised here as it is, not
    wrapped in Ray's traceback.
    """
    try:
        return ray.get(ray.remote(num_cpus=READ_TASK_CPUS)(fn).remote(*args))
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, VlexploreError):
            raise cause from None
        raise


def plan_resources(
    resources: dict,
    *,
    device: str = "auto",
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    batch_size: int = 0,
) -> RayPlan:
    """Choose the actor pool from the cluster's resources (``ray.cluster_resources()``).

    With GPUs (and ``device`` not ``cpu``): one actor per GPU, each with an equal share of the CPUs for
    decoding (at most :data:`MAX_DECODE_THREADS`). Without: one CPU actor per 4 CPUs (at least one),
    the CPUs shared out after the read tasks' part.
    """
    gpus = float(resources.get("GPU", 0) or 0)
    cpus = float(resources.get("CPU", 1) or 1)
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and gpus < 1 and not gpus_per_actor:
        raise ConfigError("device 'cuda' was asked for, but the Ray cluster has no GPU")
    use_gpu = (gpus >= 1 and device != "cpu") or bool(gpus_per_actor)
    if actors is not None and actors < 1:
        raise ConfigError(f"actors must be >= 1, got {actors}")
    if gpus_per_actor is not None and gpus_per_actor < 0:
        raise ConfigError(f"gpus_per_actor must be >= 0, got {gpus_per_actor}")
    if use_gpu:
        per = gpus_per_actor or 1.0
        n = actors or max(1, int(gpus // per))
    else:
        per = 0.0
        n = actors or max(1, int(cpus // 4))
    spare = max(1.0, cpus - READ_TASK_CPUS * 2)
    cpu_share = max(1.0, min(float(MAX_DECODE_THREADS), math.floor(spare / n * 4) / 4))
    if batch_size < 0:
        raise ConfigError(f"batch_size must be >= 0 (0 = automatic), got {batch_size}")
    return RayPlan(
        actors=n,
        gpus_per_actor=per,
        cpus_per_actor=cpu_share,
        batch_size=batch_size or default_batch_size("cuda" if use_gpu else "cpu"),
    )


class _EmbedActor:
    """One encoder per actor; ``__call__`` turns a batch of file bytes into vectors (or an error per row)."""

    def __init__(self, factory: Callable, views: tuple[str, ...], dims: dict[str, int], threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.encoder = factory()
        self.views = views
        self.dims = dims
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="vlexplore-decode")

    def _prepare(self, data):
        """``(tensor or None, error, lasting, content key)`` of one file's bytes."""
        data = bytes(data)
        key = content_key(data)
        try:
            return prepare_image(data, self.encoder), "", False, key
        except ImageReadError as exc:
            return None, str(exc), exc.lasting, key

    def __call__(self, batch: dict) -> dict:
        """Build the encoder on the actor."""
        import torch

        from .encode import INVALID_OUTPUT

        paths = [str(p) for p in batch["path"]]
        n = len(paths)
        prepared = list(self.pool.map(self._prepare, batch["bytes"]))
        errors = [p[1] for p in prepared]
        lasting = [p[2] for p in prepared]
        ok = [i for i, p in enumerate(prepared) if p[0] is not None]
        out = {v: np.zeros((n, self.dims[v]), dtype=np.float32) for v in self.views}
        if ok:
            raw = self.encoder.encode_image_batch(torch.stack([prepared[i][0] for i in ok]))
            arrays, finite = finish_batch(raw, self.views, len(ok), self.encoder.model_id)
            kept = [i for i, good in zip(ok, finite) if good]
            for i, good in zip(ok, finite):
                if not good:
                    errors[i] = INVALID_OUTPUT
            for v in self.views:
                out[v][kept] = arrays[v]
        return {
            "path": np.array(paths, dtype=object),
            "error": np.array(errors, dtype=object),
            "lasting": np.array(lasting, dtype=bool),
            "key": np.array([p[3] for p in prepared], dtype=object),
            **out,
        }


def _describe(factory: Callable) -> tuple[str, tuple[str, ...], dict[str, int]]:
    """``(model_id, views, {view: dim})`` of the encoder ``factory`` builds (one forward pass on a blank image)."""
    import torch
    from PIL import Image

    encoder = factory()
    views = tuple(encoder.views)
    out = encoder.encode_image_batch(torch.stack([encoder.preprocess(Image.new("RGB", (32, 32), "white"))]))
    return encoder.model_id, views, {v: int(np.asarray(out[v]).shape[1]) for v in views}


class _FromCache:
    """Stands in for the encoder when the ray run's results are gathered from the cache.

    Everything the run computed is cached, so :func:`embed_images` only reaches :meth:`preprocess`
    for images the run could not embed for a passing reason (file unreadable); it reports that reason.
    """

    device = "cpu"

    def __init__(self, model_id: str, views: tuple[str, ...]) -> None:
        self.model_id = model_id
        self.views = views
        self.description = model_id

    def preprocess(self, image):
        raise ImageReadError("file cannot be read on the Ray cluster; run again to retry it")

    def encode_image_batch(self, batch):  # never reached: preprocess always raises
        raise VlexploreError("no model is loaded when gathering a ray run's results")

    def encode_texts(self, texts):
        raise VlexploreError("no text model is loaded when gathering a ray run's results")


def embed_images_ray(
    collection: Collection,
    encoder: str | Callable = "bundled",
    *,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    batch_size: int = 0,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    on_progress: Progress = None,
) -> Embedded:
    """Embed ``collection`` on Ray, filling the cache; the result equals :func:`embed_images`' to float tolerance.

    Args:
        collection: from :func:`vlexplore.images.scan_folder`.
        encoder: a model name as the CLI takes it (``bundled``, ``ViT-B-32/openai``, a checkpoint path), or a
            picklable zero-argument callable that builds an :class:`~vlexplore.models.base.Encoder` on an actor.
        device: ``auto`` (GPUs when the cluster has them), ``cpu`` or ``cuda``.
        cache_dir: the cache root (:func:`vlexplore.config.default_cache_dir` when ``None``); the driver writes it.
        batch_size: images per forward pass (0 = 256 on GPU actors, 64 on CPU actors).
        address: the cluster to join (``auto``, ``HOST:PORT``, ``ray://HOST:10001``); ``None`` starts a
            local runtime unless one is already running in this process.
        actors: encoder actors (default: one per GPU, or one per 4 CPUs).
        gpus_per_actor: GPUs each actor asks for (default 1 when the cluster has GPUs, else 0).
        on_progress: ``(images done, images total)``.

    Returns:
        An :class:`~vlexplore.results.Embedded`; ``n_computed`` counts the images the cluster embedded.

    Raises:
        RayUnavailableError: Ray is not installed. ConfigError: bad resources.
    """
    from .config import default_cache_dir

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if isinstance(encoder, str):
        factory: Callable = EncoderRecipe(encoder, "cpu" if device == "cpu" else "auto", None)
    elif callable(encoder):
        factory = encoder
    else:
        raise ConfigError(f"encoder must be a model name or a callable that builds one, got {encoder!r}")
    with ray_session(address) as ray:
        model_id, views, dims = run_task(ray, _describe, factory)
        store = store_for(cache_dir, model_id)
        failure_store = store_for(cache_dir, model_id + FAILURES_SUFFIX)

        weight: dict[str, int] = {}
        path_of: dict[str, str] = {}
        for fp, path in zip(collection.fingerprints, collection.paths):
            weight[fp] = weight.get(fp, 0) + 1
            path_of.setdefault(fp, path)
        unique = list(weight)
        rest = [fp for fp, hit in zip(unique, store.contains(unique)) if not hit]
        missing = [fp for fp, hit in zip(rest, failure_store.contains(rest)) if not hit]
        total = len(collection)
        done = total - sum(weight[fp] for fp in missing)
        if on_progress is not None:
            on_progress(done, total)

        n_computed = 0
        if missing:
            plan = plan_resources(
                ray.cluster_resources(),
                device=device,
                actors=actors,
                gpus_per_actor=gpus_per_actor,
                batch_size=batch_size,
            )
            if isinstance(factory, EncoderRecipe):
                factory = EncoderRecipe(factory.model, plan.device, factory.cache_dir)
            log.info(
                "ray: %d images on %d actor(s) (%s, %.2f CPUs each), batches of %d",
                len(missing),
                plan.actors,
                plan.device,
                plan.cpus_per_actor,
                plan.batch_size,
            )
            fp_of = {os.path.abspath(path_of[fp]): fp for fp in missing}
            ds = ray.data.read_binary_files(
                [os.path.abspath(path_of[fp]) for fp in missing], include_paths=True, num_cpus=READ_TASK_CPUS
            )
            ds = ds.map_batches(
                _EmbedActor,
                fn_constructor_kwargs={
                    "factory": factory,
                    "views": views,
                    "dims": dims,
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
                # bytes that no longer hash to the scanned key (the file changed) are stored under neither
                same = np.array([str(k) == fp for k, fp in zip(batch["key"], fps)], dtype=bool)
                errors = [str(e) for e in batch["error"]]
                good = np.array([not e for e in errors], dtype=bool) & same
                if good.any():
                    store.append([fp for fp, g in zip(fps, good) if g], {v: batch[v][good] for v in views})
                    n_computed += int(good.sum())
                lasting = {
                    fp: e for fp, e, keep, ok in zip(fps, errors, batch["lasting"], same) if e and keep and ok
                }
                if lasting:
                    failure_store.append(list(lasting), {"error": list(lasting.values())})
                done += sum(weight[fp] for fp in fps)
                if on_progress is not None:
                    on_progress(done, total)
        if n_computed and len(store.shard_paths()) > encode.COMPACT_ABOVE:  # as a local run does
            store.compact()
    result = embed_images(collection, _FromCache(model_id, views), cache_dir=cache_dir, num_workers=0)
    result.n_computed = n_computed
    return result


def _quiet(ray) -> None:
    """Ray Data's own progress output off: the caller's ``on_progress`` reports progress."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _local_path(path) -> str:
    """A path as Ray Data reports it, in the form the driver sent (a ``file://`` scheme dropped)."""
    path = str(path)
    return path[len("file://") :] if path.startswith("file://") else path
