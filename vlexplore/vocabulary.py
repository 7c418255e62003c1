"""The words clusters are named with: which noun bank, which prompt templates, and their embeddings.

Used by :mod:`vlexplore.naming`; the embeddings are cached on disk per model id and template set, and the
last few vocabularies a process asked for are kept in memory (a re-cluster names with the same ~8,800 words;
reading and merging them from the disk cache took 0.1 s of each re-cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: The template an encoder without its own ``prompt_templates`` embeds vocabulary words with: one
#: template, so a new CLIP model embeds the ~8,800 words once in a minute on a CPU, not seven times.
NAMING_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)
#: Vocabularies kept in memory per process (only those read through a disk cache: the same key, the same rows).
MEMO_SIZE = 4
_memo: dict[tuple, tuple[list[str], np.ndarray]] = {}


def has_text_tower(encoder, views=None) -> bool:
    """Whether ``encoder`` can embed texts comparable with a ``joint`` image view (in ``views``, when given)."""
    if encoder is None or not callable(getattr(encoder, "encode_texts", None)):
        return False
    return views is None or "joint" in views


def default_vocabulary(encoder) -> str:
    """The noun bank to name with.

    ``imagenet`` for an encoder whose joint space is ImageNet's classes (the bundled model, which captions
    with class labels), else ``wordnet+imagenet``.

    Through the bundled model's bridge any word becomes a near one-hot pointer to the ImageNet class
    whose text MiniLM finds nearest, however weak the match ("mow" → moped, "tie-in" → bolo tie), and
    contrastive scores pick exactly such pure pointers; the class names themselves are the exact ones
    (``bench/results/naming.json``: colour photos 0.36 vs 0.14 name quality).
    """
    return "imagenet" if callable(getattr(encoder, "label_captions", None)) else "wordnet+imagenet"


def naming_templates(encoder) -> tuple[str, ...]:
    """The encoder's own ``prompt_templates`` when it declares them, else :data:`NAMING_TEMPLATES`.

    The bundled model declares ``"{}"``.
    """
    return tuple(getattr(encoder, "prompt_templates", NAMING_TEMPLATES)) or ("{}",)


def _as_key(v: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    return v if v is None or isinstance(v, str) else tuple(map(str, v))


def vocabulary_embeddings(
    encoder,
    *,
    words: str | Sequence[str] | None = None,
    extra_words: str | Sequence[str] = (),
    source: str = "wordnet+imagenet",
    templates: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[list[str], np.ndarray]:
    """The vocabulary and its joint-space embeddings (cached on disk per model id and template set).

    Args:
        encoder: has ``model_id`` and ``encode_texts``.
        words: replaces the noun bank (a list, or a text split on commas / new lines).
        extra_words: the user's words, added to the vocabulary (first, so they win ties).
        source: the noun bank (``wordnet+imagenet``, ``wordnet``, ``imagenet``); see :func:`vlexplore.nouns.vocabulary`.
        templates: prompt templates; ``None`` = :func:`naming_templates`.
        cache_dir: the cache root; ``None`` = no disk cache.

    Returns:
        ``(words, float32 (m, d_joint) unit rows)``; the rows are read-only when a ``cache_dir`` is given.
    """
    from .nouns import noun_embeddings, unique_texts, vocabulary

    templates = tuple(templates or naming_templates(encoder))
    key = None
    if cache_dir is not None:  # the disk cache already takes the model id for its weights; so does the memo
        key = (str(encoder.model_id), _as_key(words), _as_key(extra_words), source, templates, str(cache_dir))
        if key in _memo:
            vocab, emb = _memo.pop(key)
            _memo[key] = (vocab, emb)  # now the most recent
            return list(vocab), emb
    base = vocabulary(words, source)
    if isinstance(extra_words, str):
        from .encode import parse_prompts

        extra_words = parse_prompts(extra_words)
    vocab = unique_texts([*extra_words, *base])
    emb = noun_embeddings(vocab, encoder, templates=templates, cache_dir=cache_dir)
    if key is not None:
        emb.setflags(write=False)  # shared between calls
        _memo[key] = (list(vocab), emb)
        while len(_memo) > MEMO_SIZE:
            del _memo[next(iter(_memo))]
    return vocab, emb
