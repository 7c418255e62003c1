"""Sentence embeddings of texts (captions, answers, keywords): one embedder, each distinct text once, cached."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np

from .models.base import l2_normalize


@functools.lru_cache(maxsize=4)
def _named_embedder(name: str | None):
    from .models.bundled import SentenceEmbedder

    return SentenceEmbedder(name)


def sentence_embedder(emb, cfg):
    """``cfg.options["sentence_model"]`` (a sentence-transformers name or folder).

    Else the encoder's own MiniLM (bundled), else the bundled all-MiniLM-L6-v2.
    """
    from .options import textguided_options

    name = textguided_options(cfg.options).sentence_model
    if name is None and getattr(emb.encoder, "sentence", None) is not None:
        return emb.encoder.sentence
    return _named_embedder(name)


def embed_sentences(texts: Sequence[str], embedder, *, cache_dir: Path | None = None) -> np.ndarray:
    """``n`` texts → ``float32 (n, d)`` L2-normalised.

    Each distinct text is embedded once, and with a ``cache_dir`` kept on disk under
    ``<embedder.model_id>:sentences``, keyed by a hash of the text.
    """
    texts = ["" if t is None else str(t) for t in texts]
    uniq = list(dict.fromkeys(texts))
    if not uniq:
        return np.zeros((0, 0), dtype=np.float32)
    keys = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() for t in uniq]
    store, found = None, np.zeros(len(uniq), dtype=bool)
    cols: dict[str, np.ndarray] = {}  # "vector": float32 (n_found, d)
    if cache_dir is not None and getattr(embedder, "model_id", None):
        from .cache import store_for

        store = store_for(cache_dir, f"{embedder.model_id}:sentences")
        found, values = store.lookup(keys, ["vector"])
        cols = cast("dict[str, np.ndarray]", values)  # a vector column, read whenever a key is found
    missing = np.flatnonzero(~found)
    new = np.asarray(embedder.encode([uniq[i] for i in missing]), dtype=np.float32) if len(missing) else None
    vecs = np.zeros((len(uniq), (new if new is not None else cols["vector"]).shape[1]), dtype=np.float32)
    if found.any():
        vecs[found] = cols["vector"]
    if new is not None:
        vecs[missing] = new
        if store is not None:
            store.append_best_effort([keys[i] for i in missing], {"vector": new})
    index = {t: i for i, t in enumerate(uniq)}
    return l2_normalize(vecs[[index[t] for t in texts]])
