"""vlexplore: explore image collections with vision-language models.

The facade: the few calls the app, the CLI and notebooks use. Heavy
dependencies load on first use, so ``import vlexplore`` is fast.

>>> import vlexplore as vx
>>> col = vx.scan_folder("demo")
>>> emb = vx.embed(col, vx.EncodeConfig(model="bundled"))
>>> cl = vx.cluster_embedded(emb, vx.ClusterConfig(method="prototypes", prototypes=("shoe", "bag")))
>>> vx.to_dataframe(emb, cl).head()
"""

from __future__ import annotations

import importlib

from .config import ClusterConfig, EncodeConfig, default_cache_dir
from .errors import (
    CacheError,
    ConfigError,
    ImageReadError,
    ModelUnavailableError,
    PathNotAllowedError,
    VlexploreError,
)

__version__ = "0.1.0"

_LAZY = {
    "scan_folder": "images",
    "open_image": "images",
    "thumbnail": "images",
    "thumbnails_at": "images",
    "Collection": "images",
    "embed_images": "encode",
    "encode_prompts": "encode",
    "parse_prompts": "encode",
    "cluster_vectors": "cluster",
    "make_clusterer": "cluster",
    "suggest_k": "cluster",
    "cluster_keywords": "explain",
    "ctfidf_keywords": "explain",
    "cluster_names": "explain",
    "representatives": "explain",
    "evaluate_labels": "evaluate",
    "clustering_accuracy": "evaluate",
    "label_free_scores": "evaluate",
    "confusion_table": "evaluate",
    "project_2d": "project",
    "write_table": "export",
    "safe_cell": "export",
    "load_encoder": "models.registry",
    "load_captioner": "models.registry",
    "MODELS": "models.registry",
    "Embedded": "results",
    "Clustered": "results",
    "ClusterInfo": "results",
    "scan": "pipeline",
    "embed": "pipeline",
    "cluster_embedded": "pipeline",
    "suggest_k_embedded": "pipeline",
    "to_dataframe": "pipeline",
    "explore": "pipeline",
    "project_embedded": "pipeline",
    "search_images": "search",
    "duplicates": "curate",
    "outlier_scores": "curate",
}

__all__ = [
    "CacheError",
    "ClusterConfig",
    "ConfigError",
    "EncodeConfig",
    "ImageReadError",
    "ModelUnavailableError",
    "PathNotAllowedError",
    "VlexploreError",
    "default_cache_dir",
    *sorted(_LAZY),
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vlexplore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
