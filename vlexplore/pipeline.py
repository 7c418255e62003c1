"""The whole chain as a few calls: scan → embed → caption → cluster → explain → project.

The CLI and the app call these; so can a notebook. Each step takes the previous
step's result; re-clustering reuses embeddings and never touches a model.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from .config import ClusterConfig, EncodeConfig
from .errors import ConfigError, ModelUnavailableError
from .labels import default_name, noise_name
from .results import Clustered, ClusterInfo, Embedded
from .types import Progress

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def load_encoder_or_fallback(cfg: EncodeConfig, *, lazy: bool = False):
    """Load ``cfg.model``; when a valid model's weights cannot be had, load the bundled model and say so.

    Only :class:`ModelUnavailableError` (a real hub model that is not cached while the hub cannot be
    reached) falls back. A mistake — an unknown architecture or tag, a missing or broken checkpoint, a
    device this machine lacks — is a :class:`ConfigError` and is raised as it is: falling back then
    would hide it behind results from another model.

    ``lazy``: a model whose identity is known without its weights (see
    :func:`~vlexplore.models.registry.load_encoder`) loads them on first use, so a folder whose embeddings are
    all cached never needs them. Its unavailable weights are found out there: :func:`embed` then falls back
    as this does, a search says so in one error.

    Returns:
        ``(encoder, note)`` where ``note`` is ``None`` or a sentence for the user (the caller shows it).
    """
    from .models.registry import load_encoder

    cache_dir = cfg.resolved_cache_dir
    try:
        return load_encoder(cfg.model, device=cfg.device, cache_dir=cache_dir, lazy=lazy), None
    except ModelUnavailableError as exc:
        if cfg.model == "bundled":
            raise
        return _bundled_instead(cfg, exc)


def _bundled_instead(cfg: EncodeConfig, exc: ModelUnavailableError):
    from .models.registry import load_encoder

    note = f"{exc} — using the bundled offline model instead."
    log.info(note)  # the caller shows the note; a warning here printed it twice on the console
    return load_encoder("bundled", device=cfg.device, cache_dir=cfg.resolved_cache_dir), note


def scan(
    folder: str | Path,
    *,
    cache_dir: str | Path | None = None,
    captions: str | Path | dict | None = None,
    on_progress: Progress = None,
):
    """Scan ``folder`` recursively (see :func:`vlexplore.collection.scan_folder`).

    ``cache_dir`` holds its stat index; ``captions`` is a caption table or mapping that wins over the folder's
    own sidecars and tables.
    """
    from .collection import scan_folder

    return scan_folder(folder, cache_dir=cache_dir, captions=captions, on_progress=on_progress)


def embed(
    collection,
    cfg: EncodeConfig = EncodeConfig(),
    *,
    encoder=None,
    captioner=None,
    on_progress: Progress = None,
    on_caption_progress: Progress = None,
) -> Embedded:
    """Embed (and caption) every image of ``collection``, reading and filling the disk cache.

    With a ``captioner`` (BLIP, BLIP-2, GIT…), every image is captioned in batches (cached, resumable;
    ``on_caption_progress`` reports it) and the captions name clusters, fill hover text and the export's
    ``caption`` column with any representation; without one, the bundled model's label captions are used.
    """
    from .encode import embed_images
    from .models.lazy import LazyEncoder

    note = None
    if encoder is None:
        encoder, note = load_encoder_or_fallback(cfg)

    def run(encoder):
        return embed_images(
            collection,
            encoder,
            cache_dir=cfg.resolved_cache_dir,
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            on_progress=on_progress,
        )

    try:
        res = run(encoder)
    except ModelUnavailableError as exc:  # a lazy model's weights, wanted for images not cached, are not here
        if not isinstance(encoder, LazyEncoder) or encoder.loaded or cfg.model == "bundled":
            raise
        encoder, note = _bundled_instead(cfg, exc)
        res = run(encoder)
    captions = caption_texts(
        res, encoder, captioner=captioner, cache_dir=cfg.resolved_cache_dir, on_progress=on_caption_progress
    )
    return Embedded(
        collection=res.collection,
        views=res.views,
        captions=captions,
        model_id=res.model_id,
        model_description=getattr(encoder, "description", res.model_id),
        encoder=encoder,
        fallback_note=note,
        n_computed=res.n_computed,
        cache_dir=cfg.resolved_cache_dir,
    )


def caption_texts(
    res, encoder, *, captioner=None, cache_dir=None, prompt: str | None = None, on_progress: Progress = None
) -> list[str]:
    """Captions for an embedding result.

    The user's own (:mod:`vlexplore.sidecar`) where an image has one, else label captions from the bundled
    model's joint view, or a real captioner's (run only on the rest).
    """
    from .sidecar import merge_captions

    col = res.collection
    user = col.captions
    own = {r: "user caption" for r, c in zip(col.items["relpath"].tolist(), user) if c} if any(user) else {}
    if captioner is None:
        if hasattr(encoder, "label_captions") and "joint" in res.views and len(col):
            return merge_captions(col, encoder.label_captions(res.views["joint"]))
        return merge_captions(col, None)
    from .caption import caption_images

    rest = col.without(own) if prompt is None else col  # answers to a question are never the user's
    texts = caption_images(rest, captioner, prompt=prompt, cache_dir=cache_dir, on_progress=on_progress)
    if prompt is not None:
        return texts
    by_path = dict(zip(rest.items["relpath"], texts))
    return merge_captions(col, [by_path.get(r, "") for r in col.items["relpath"]])


def prototype_embeddings(encoder, prototypes: Sequence[str]) -> np.ndarray:
    """Prompts → ``(p, d_joint)`` text embeddings (prompt templates averaged)."""
    from .encode import encode_prompts

    return encode_prompts(list(prototypes), encoder)


def _cache_key(*parts) -> str:
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def project_embedded(
    emb: Embedded,
    *,
    seed: int = 0,
    cache_dir: Path | None = None,
    on_cache_error: Callable[[str], None] | None = None,
) -> np.ndarray:
    """2-d map coordinates of the ``image`` view, cached by content (fingerprints × model × seed).

    A cache that cannot be written only costs the caching: ``on_cache_error`` gets one sentence for
    the user per failed write (``None`` = a :class:`vlexplore.project.CacheWriteWarning`).
    """
    from .project import project_2d

    x = emb.views.get("image")
    if x is None or len(x) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    from .project import UMAP_PCA_DIMS

    key = _cache_key(emb.model_id, seed, f"pca{UMAP_PCA_DIMS}", tuple(emb.collection.fingerprints))
    return project_2d(x, seed=seed, cache_dir=cache_dir, cache_key=key, on_cache_error=on_cache_error)


def suggest_k_embedded(emb: Embedded, *, seed: int = 0, cache_dir: Path | None = None) -> int:
    """The number of clusters :func:`vlexplore.cluster.suggest_k` finds in ``emb``'s image vectors.

    With a ``cache_dir``, remembered for large folders (:func:`vlexplore.clusterstore.suggested_k`).
    """
    from . import clusterstore

    if emb.n == 0:
        raise ConfigError("there are no readable images to cluster; check the skipped-files report")
    return clusterstore.suggested_k(emb, seed=seed, cache_dir=cache_dir)


def cluster_embedded(
    emb: Embedded,
    cfg: ClusterConfig,
    *,
    coords: np.ndarray | None = None,
    cache_dir: Path | None = None,
) -> Clustered:
    """Cluster, explain, project and score an :class:`Embedded` — no model forward passes except for prompts.

    With a ``cache_dir``, large clusterings of the ``image`` representation are stored and read back
    (:mod:`vlexplore.clusterstore`): the same images, captions, options and code give the same result.
    """
    if emb.n == 0:
        raise ConfigError("there are no readable images to cluster; check the skipped-files report")
    from . import clusterstore

    key = clusterstore.clustering_key(emb, cfg) if cache_dir is not None else None
    if key is not None and cache_dir is not None:
        stored = clusterstore.load(cache_dir, key, cfg=cfg, captions=emb.captions, n=emb.n)
        if stored is not None:
            if coords is None:
                coords = project_embedded(emb, seed=cfg.seed, cache_dir=cache_dir)
            stored.coords = coords
            return stored
    clustered = _cluster_embedded(emb, cfg, coords=coords, cache_dir=cache_dir)
    if key is not None and cache_dir is not None:
        clusterstore.save(cache_dir, key, clustered, captions=emb.captions)
    return clustered


def _cluster_embedded(
    emb: Embedded, cfg: ClusterConfig, *, coords: np.ndarray | None, cache_dir: Path | None
) -> Clustered:
    from .cluster import cluster_vectors
    from .evaluate import evaluate_labels, label_free_scores
    from .explain import cluster_keywords, cluster_names
    from .represent import build_representation

    rep = build_representation(emb, cfg)
    x = rep.X
    texts = rep.texts if rep.texts is not None else emb.captions
    protos: list[str] = []
    p_emb = None
    if cfg.prototypes:
        from .encode import parse_prompts

        protos = parse_prompts(", ".join(cfg.prototypes))
        if protos:
            p_emb = prototype_embeddings(emb.encoder, protos)
    if rep.labels is not None:
        labels, similarity = np.asarray(rep.labels, dtype=np.int64), None
    else:
        joint = rep.joint if rep.joint is not None else (x if cfg.representation == "image" else None)
        if p_emb is not None and joint is None:
            raise ConfigError(
                f"text prototypes need a text-comparable view; representation {cfg.representation!r} has none"
            )
        result = cluster_vectors(x, cfg, joint=joint, prototype_embeddings=p_emb, cache_dir=cache_dir)
        labels, similarity = np.asarray(result.labels, dtype=np.int64), result.similarity
        rep.info.update(result.info)
    if cfg.representation in ("nouns", "relations") and "confident" not in rep.info and 2 <= len(x) <= 20_000:
        from .nouns import confident_mask  # neighbourhood-consistency filter (Ma et al. 2026), for the app

        rep.info["confident"] = confident_mask(x, labels, k=min(10, len(x) - 1))
    keywords = cluster_keywords(texts, labels) if any(texts) else {}
    names = cluster_names(
        keywords,
        prototypes=protos if cfg.method == "prototypes" else None,
        noise_name=noise_name(cfg.method),
    )
    from .naming import name_pipeline_clusters  # zero-shot vocabulary names wherever there is a text tower

    names, keywords = name_pipeline_clusters(
        emb,
        labels,
        cfg,
        caption_keywords=keywords,
        caption_names=names,
        own_texts=rep.texts is not None,
        prototypes=protos if cfg.method == "prototypes" else None,
        prototype_emb=p_emb,
        info=rep.info,
    )
    for c in np.unique(labels):
        names.setdefault(int(c), default_name(c, noise=noise_name(cfg.method)))
    if coords is None:
        coords = project_embedded(emb, seed=cfg.seed, cache_dir=cache_dir)
    y = emb.collection.labels
    if y is not None:
        metrics = evaluate_labels(y, labels)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics = label_free_scores(emb.views["image"], labels, seed=cfg.seed)
    return Clustered(
        labels=labels,
        names=names,
        keywords=keywords,
        similarity=similarity,
        coords=coords,
        metrics=metrics,
        config=cfg,
        prototypes=protos,
        texts=texts,
        info=cast(ClusterInfo, rep.info),
    )


def to_dataframe(emb: Embedded, cl: Clustered, *, curation: bool = True) -> pd.DataFrame:
    """The labelled table.

    One row per readable image (see :func:`vlexplore.export.to_dataframe`), with ``duplicate_group``,
    ``outlier_score`` and ``confident`` (:func:`vlexplore.curate.curation_columns`, computed once per ``emb``)
    unless ``curation=False``.
    """
    from .curate import curation_columns
    from .export import DUPLICATE_THRESHOLD, OUTLIER_K
    from .export import to_dataframe as _to_df

    extra = curation_columns(emb, cl, threshold=DUPLICATE_THRESHOLD, k=OUTLIER_K) if curation else None
    df = _to_df(
        emb.collection,
        cl.labels,
        cl.names,
        cl.coords,
        captions=emb.captions,
        similarity=cl.similarity,
        curation=extra,
    )
    if cl.texts and list(cl.texts) != list(emb.captions):  # answers / keywords the clusters were made from
        df.insert(df.columns.get_loc("caption") + 1, "text", list(cl.texts))
    return df


def explore(
    folder: str | Path,
    *,
    encode: EncodeConfig = EncodeConfig(),
    cluster: ClusterConfig = ClusterConfig(),
    captions: str | Path | dict | None = None,
    on_progress: Progress = None,
) -> tuple[Embedded, Clustered]:
    """Folder → embeddings → clusters → names → map, in one call (``captions``: see :func:`scan`)."""
    collection = scan(folder, cache_dir=encode.resolved_cache_dir, captions=captions)
    emb = embed(collection, encode, on_progress=on_progress)
    return emb, cluster_embedded(emb, cluster, cache_dir=encode.resolved_cache_dir)
