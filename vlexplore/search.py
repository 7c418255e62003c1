"""Search a collection in the encoder's joint space: by text, by an image file, or "more like this".

>>> from vlexplore.search import search_images
>>> search_images(emb, text="a red car", top=10)          # path, rank, score
>>> search_images(emb, image="query.jpg")                 # an image file from anywhere
>>> search_images(emb, image=42)                          # more like item 42 (itself left out)

Up to :data:`EXACT_MAX` rows the scores are one numpy matrix product; beyond, a faiss inner-product
index is built once per view and kept on the :class:`~vlexplore.pipeline.Embedded` (without faiss the
numpy path runs in blocks). Rows are L2-normalised, so a score is a cosine similarity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, ImageReadError

#: Rows searched exactly with numpy; above this a faiss index is used (when faiss is installed).
EXACT_MAX = 50_000
#: Query rows per block of the exact search (the score block stays ``block × n``).
QUERY_BLOCK = 1024
RESULT_COLUMNS = ("path", "rank", "score")


class SearchIndex:
    """Inner-product nearest neighbours over the rows of one ``(n, d)`` matrix of unit vectors.

    The faiss index (exact ``IndexFlatIP``) is built on the first query when the matrix has more than
    :data:`EXACT_MAX` rows, then reused.
    """

    #: the matrix this index was built from, set by :func:`search_index` (which rebuilds when it changes)
    source: np.ndarray

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            raise ConfigError(f"search needs an (n, d) matrix, got shape {self.vectors.shape}")
        self._faiss_index = None

    def __getstate__(self) -> dict:  # a faiss index does not pickle: it is rebuilt on the next query
        return {**self.__dict__, "_faiss_index": None}

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def uses_faiss(self) -> bool:
        """True when queries go through faiss (more than :data:`EXACT_MAX` rows and faiss installed)."""
        from .largescale import faiss_module

        return len(self) > EXACT_MAX and faiss_module() is not None

    def _index(self):
        if self._faiss_index is None:
            from .largescale import faiss_module

            faiss = faiss_module()
            index = faiss.IndexFlatIP(self.vectors.shape[1])
            index.add(self.vectors)
            self._faiss_index = index
        return self._faiss_index

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(m, d)`` queries → (``float32 (m, k)`` scores, ``int64 (m, k)`` rows), best first (``k ≤ n``)."""
        Q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if Q.shape[1] != self.vectors.shape[1]:
            raise ConfigError(
                f"the query has {Q.shape[1]} dimensions but the collection's vectors have "
                f"{self.vectors.shape[1]}; embed both with the same model"
            )
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(Q), 0), np.float32), np.zeros((len(Q), 0), np.int64)
        if self.uses_faiss:
            scores, rows = self._index().search(Q, k)
            return scores.astype(np.float32), rows.astype(np.int64)
        scores = np.empty((len(Q), k), np.float32)
        rows = np.empty((len(Q), k), np.int64)
        for start in range(0, len(Q), QUERY_BLOCK):
            S = Q[start : start + QUERY_BLOCK] @ self.vectors.T
            part = (
                np.argpartition(-S, k - 1, axis=1)[:, :k]
                if k < S.shape[1]
                else np.tile(np.arange(k), (len(S), 1))
            )
            part_scores = np.take_along_axis(S, part, axis=1)
            order = np.lexsort((part, -part_scores), axis=1)  # best score first, ties by row
            rows[start : start + len(S)] = np.take_along_axis(part, order, axis=1)
            scores[start : start + len(S)] = np.take_along_axis(part_scores, order, axis=1)
        return scores, rows


def search_index(emb, view: str = "joint") -> SearchIndex:
    """The :class:`SearchIndex` of ``emb.views[view]``, built once and kept on ``emb``."""
    vectors = emb.views.get(view)
    if vectors is None:
        raise ConfigError(f"these embeddings have no {view!r} view (views: {', '.join(emb.views)})")
    cache = emb.__dict__.setdefault("_search_indexes", {})
    index = cache.get(view)
    if index is None or index.source is not vectors:
        index = SearchIndex(vectors)
        index.source = vectors
        cache[view] = index
    return index


def text_query(emb, text: str) -> np.ndarray:
    """A text → its ``(1, d_joint)`` query vector, through the prompt templates prototypes use."""
    from .pipeline import prototype_embeddings

    if not isinstance(text, str) or not text.strip():
        raise ConfigError('the search text is empty; type what to look for, e.g. "a red car"')
    return prototype_embeddings(_encoder(emb), [text.strip()])


def image_query(emb, image: str | Path | bytes | bytearray, view: str = "joint") -> np.ndarray:
    """An image file (path or bytes) → its ``(1, d)`` query vector in ``view``, through the encoder."""
    import torch

    from .encode import finish_batch, prepare_image

    encoder = _encoder(emb)
    name = "the query image" if isinstance(image, (bytes, bytearray)) else f"query image {str(image)!r}"
    try:
        tensor = prepare_image(image, encoder)
    except ImageReadError as exc:
        raise ConfigError(f"cannot read {name}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc}") from None
    out = encoder.encode_image_batch(torch.stack([tensor]))
    arrays, finite = finish_batch(out, tuple(encoder.views), 1, encoder.model_id)
    if not finite.all() or view not in arrays:
        raise ConfigError(f"the model gave no usable {view!r} vector for {name}")
    return arrays[view]


def _encoder(emb):
    if getattr(emb, "encoder", None) is None:
        raise ConfigError("these embeddings carry no encoder; embed the folder again to search it")
    return emb.encoder


def search_images(
    emb, *, text: str | None = None, image=None, top: int = 20, view: str = "joint"
) -> pd.DataFrame:
    """The ``top`` images most similar to a text or an image query.

    Args:
        emb: a :class:`vlexplore.pipeline.Embedded` (its encoder embeds the query).
        text: what to look for, embedded as prototypes are (prompt templates averaged).
        image: an image file (path or bytes) embedded through the encoder, or the row index of an item
            of the collection ("more like this": its own vector, and the item itself is left out).
        top: how many results (at most the collection's size).
        view: the embedding view compared (default ``joint``, the space texts live in).

    Returns:
        ``DataFrame`` with columns ``path`` (relpath), ``rank`` (1 = best) and ``score`` (cosine).

    Raises:
        ConfigError: neither or both of ``text`` and ``image``, an empty text, an unreadable query image,
            an index outside the collection, or ``top < 1``.
    """
    if (text is None) == (image is None):
        raise ConfigError("give exactly one query: a text or an image")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ConfigError(f"top must be a whole number ≥ 1, got {top!r}")
    exclude = None
    if text is not None:
        if view != "joint":
            raise ConfigError("a text query searches the 'joint' view (texts live there)")
        q = text_query(emb, text)
    elif isinstance(image, (int, np.integer)) and not isinstance(image, bool):
        if not 0 <= int(image) < emb.n:
            raise ConfigError(f"image index {int(image)} is outside the collection (0..{emb.n - 1})")
        exclude = int(image)
        q = search_index(emb, view).vectors[exclude : exclude + 1]
    elif isinstance(image, (str, Path, bytes, bytearray)):
        if isinstance(image, str) and not image.strip():
            raise ConfigError("the query image path is empty")
        q = image_query(emb, image, view)
    else:
        raise ConfigError(
            f"image must be a file path, its bytes or an item index, got {type(image).__name__}"
        )
    if emb.n == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(RESULT_COLUMNS, (object, "int64", "float64"))}
        )
    index = search_index(emb, view)
    scores, rows = index.query(q, int(top) + (exclude is not None))
    scores, rows = scores[0], rows[0]
    if exclude is not None:
        keep = rows != exclude
        scores, rows = scores[keep], rows[keep]
    scores, rows = scores[: int(top)], rows[: int(top)]
    relpaths = emb.collection.items["relpath"].to_numpy()
    return pd.DataFrame(
        {
            "path": relpaths[rows],
            "rank": np.arange(1, len(rows) + 1, dtype=np.int64),
            "score": scores.astype(np.float64),
        }
    )
