"""Finished clusterings kept in the cache, so reopening a large folder shows its clusters at once.

A clustering of the ``image`` representation is a pure function of the embeddings (model, files, in
order), the captions, the :class:`~vlexplore.config.ClusterConfig` and this library's code. Above
:data:`MIN_ROWS` images, :func:`vlexplore.pipeline.cluster_embedded` stores what it made under a key
of all of those, and the next call with the same key reads it back (k-means with a suggested k at
70,000 × 512 takes seconds; reading takes milliseconds). Other representations ask captioners or
language models and are always made again.

One ``.npz`` per clustering in ``<cache>/clusterings/``: the label and similarity arrays, the arrays
of ``info``, and one JSON document with everything else. It is read with ``allow_pickle=False``
(nothing in the cache can run code) and dicts keyed by cluster id keep their int keys. A file that
cannot be read or does not fit is treated as absent; a cache that cannot be written only costs speed.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .config import ClusterConfig
from .fsutil import atomic_write_bytes
from .results import Clustered, ClusterInfo, Embedded

#: Smaller folders cluster in well under a second: they are not stored.
MIN_ROWS = 20_000
#: The most recently written clusterings kept; older ones (other options, older code) are deleted.
KEEP = 32
FOLDER = "clusterings"
FORMAT = 1
_INT_KEYS = "__int_keys__"
_ARRAY = "__array__"


@cache
def code_digest() -> str:
    """A hash of this package's Python sources and bundled data: a new release (or edit) is a new key."""
    h = hashlib.blake2b(digest_size=12)
    root = Path(__file__).resolve().parent
    for path in sorted([*root.rglob("*.py"), *(root / "data").rglob("*")]):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def clustering_key(emb: Embedded, cfg: ClusterConfig) -> str | None:
    """The key of ``emb`` clustered with ``cfg``; ``None`` when such a clustering is not stored."""
    if cfg.representation != "image" or emb.n < MIN_ROWS:
        return None
    return _key(emb, json.dumps(cfg.to_dict(), sort_keys=True, default=str), with_captions=True)


def _key(emb: Embedded, what: str, *, with_captions: bool) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in (str(FORMAT), code_digest(), emb.model_id, what):
        h.update(part.encode())
        h.update(b"\0")
    h.update("\n".join(emb.collection.fingerprints).encode())
    if with_captions:
        h.update(b"\0")
        h.update("\0".join(emb.captions).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def suggested_k(emb: Embedded, *, seed: int, cache_dir: Path | None) -> int:
    """:func:`vlexplore.cluster.suggest_k` on ``emb``'s image vectors, remembered in the cache.

    Remembered from :data:`MIN_ROWS` images on: it costs about a second at any size (it looks at a sample).
    """
    from .cluster import suggest_k

    if cache_dir is None or emb.n < MIN_ROWS:
        return suggest_k(emb.views["image"], seed=seed)
    path = Path(cache_dir) / FOLDER / f"k-{_key(emb, f'suggest_k seed={seed}', with_captions=False)}.json"
    try:
        k = json.loads(path.read_text(encoding="utf-8"))["k"]
        if isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= emb.n:
            return k
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: made again
        pass
    k = int(suggest_k(emb.views["image"], seed=seed))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps({"k": k}).encode(), durable=False)
        _prune(path.parent)
    except OSError:
        pass
    return k


def _pack(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON data; arrays go to ``arrays`` (by a generated name), int-keyed dicts are tagged."""
    if isinstance(value, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {_ARRAY: name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if value and all(isinstance(k, (int, np.integer)) for k in value):
            return {_INT_KEYS: [[int(k), _pack(v, arrays)] for k, v in value.items()]}
        if not all(isinstance(k, str) for k in value):
            raise TypeError("dict keys must be all str or all int")
        return {k: _pack(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_pack(v, arrays) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__}")


def _unpack(value: Any, arrays: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            return arrays[value[_ARRAY]]
        if set(value) == {_INT_KEYS}:
            return {int(k): _unpack(v, arrays) for k, v in value[_INT_KEYS]}
        return {k: _unpack(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpack(v, arrays) for v in value]
    return value


def save(cache_dir: Path, key: str, clustered: Clustered, *, captions: list[str]) -> bool:
    """Store ``clustered`` (its coordinates aside) under ``key``; ``False`` when it cannot be stored."""
    arrays: dict[str, np.ndarray] = {"labels": np.asarray(clustered.labels, dtype=np.int64)}
    if clustered.similarity is not None:
        arrays["similarity"] = np.asarray(clustered.similarity, dtype=np.float32)
    try:
        meta = _pack(
            {
                "names": clustered.names,
                "keywords": clustered.keywords,
                "metrics": clustered.metrics,
                "prototypes": list(clustered.prototypes),
                "texts": None if list(clustered.texts) == list(captions) else list(clustered.texts),
                "info": dict(clustered.info),
                "n_clusters": clustered.n_clusters,
            },
            arrays,
        )
        arrays["meta"] = np.array(json.dumps(meta))
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        folder = Path(cache_dir) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f"{key}.npz", buf.getvalue(), durable=False)
    except (OSError, TypeError, ValueError):
        return False
    _prune(folder)
    return True


def _prune(folder: Path) -> None:
    """Delete all but the :data:`KEEP` newest clusterings and suggested ks (another process may be deleting too)."""
    try:
        for pattern in ("*.npz", "k-*.json"):
            files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime_ns, reverse=True)
            for old in files[KEEP:]:
                old.unlink(missing_ok=True)
    except OSError:
        pass


def load(cache_dir: Path, key: str, *, cfg: ClusterConfig, captions: list[str], n: int) -> Clustered | None:
    """The clustering stored under ``key`` (coordinates left empty), or ``None``."""
    path = Path(cache_dir) / FOLDER / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        meta = _unpack(json.loads(str(arrays.pop("meta"))), arrays)
        labels = arrays["labels"]
        if labels.shape != (n,):
            return None
        return Clustered(
            labels=labels,
            names=meta["names"],
            keywords=meta["keywords"],
            similarity=arrays.get("similarity"),
            metrics=meta["metrics"],
            config=cfg,
            prototypes=meta["prototypes"],
            texts=list(captions) if meta["texts"] is None else meta["texts"],
            info=ClusterInfo(**meta["info"]),
            n_clusters=int(meta["n_clusters"]),
        )
    except (
        OSError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        zipfile.BadZipFile,
    ):  # absent, damaged, other format
        return None
