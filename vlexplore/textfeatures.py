"""Text features for text-guided clustering: TF-IDF rows of captions and the keywords of each caption.

The term analyzer is the one :mod:`vlexplore.explain` counts keywords with (n-grams inside
stop-word-delimited phrases), so a clustering and its names see the same terms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError
from .models.base import l2_normalize

TFIDF_MAX_FEATURES = 6000
#: Above n × features cells a TF-IDF matrix is reduced to :data:`SVD_DIMS` dimensions (LSA).
DENSE_MAX_CELLS = 20_000_000
SVD_DIMS = 256
#: A keyword must occur in at least this many captions ("frequent terms").
KEYWORD_MIN_DF = 2


def _phrase_analyzer(ngram_range: tuple[int, int] = (1, 2)):
    """The term analyzer of :mod:`vlexplore.explain` (n-grams inside stop-word-delimited phrases)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from .explain import CAPTION_STOP_WORDS, _PhraseAnalyzer

    return _PhraseAnalyzer(ngram_range, frozenset(ENGLISH_STOP_WORDS) | CAPTION_STOP_WORDS)


def tfidf_matrix(
    texts: Sequence[str], *, analyzer=None, max_features: int = TFIDF_MAX_FEATURES, seed: int = 0
) -> tuple[np.ndarray, dict]:
    """``n`` texts → ``(X, info)``.

    ``X``: TF-IDF rows, dense ``float32 (n, V)`` L2-normalised, or ``(n, 256)`` TruncatedSVD (LSA) when ``n × V`` is
    large; ``info = {"tfidf_features": V, "svd_dims": 256 | None}``.

    The default ``analyzer`` gives words and bigrams of stop-word-delimited phrases (as the keywords
    of :mod:`vlexplore.explain` see them). Raises ConfigError when the texts hold no words.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer=analyzer or _phrase_analyzer(), max_features=max_features)
    try:
        sparse_x = vec.fit_transform(list(texts))
    except ValueError as exc:
        raise ConfigError(
            "the captions hold no words to vectorise (only stop words, numbers or nothing)"
        ) from exc
    n, v = sparse_x.shape
    if n * v <= DENSE_MAX_CELLS or v <= SVD_DIMS:
        return l2_normalize(sparse_x.toarray()), {"tfidf_features": int(v), "svd_dims": None}
    from sklearn.decomposition import TruncatedSVD

    x = TruncatedSVD(n_components=SVD_DIMS, random_state=seed).fit_transform(sparse_x)
    return l2_normalize(x), {"tfidf_features": int(v), "svd_dims": SVD_DIMS}


def extract_keywords(
    texts: Sequence[str], *, max_keywords: int = 5, min_df: int = KEYWORD_MIN_DF, max_words: int = 3
) -> list[list[str]]:
    """Keywords of each text.

    Its phrases (runs of content words that stop words and punctuation end, as in RAKE) of at most
    ``max_words`` words that occur in ≥ ``min_df`` texts.

    Per text, terms are ranked by count in the text, then length, then collection frequency; a term
    whose words are all in a keyword already chosen is skipped ("letter opener" makes "opener" redundant).

    Returns:
        ``n`` lists of at most ``max_keywords`` keywords (``[]`` when a text has none).
    """
    analyzer = _phrase_analyzer((1, max_words))
    terms = [Counter(analyzer("" if t is None else str(t))) for t in texts]
    df = Counter(term for c in terms for term in c)
    out: list[list[str]] = []
    for counts in terms:
        ranked = sorted(
            (t for t in counts if df[t] >= min_df), key=lambda t: (-counts[t], -len(t.split()), -df[t], t)
        )
        chosen: list[str] = []
        for t in ranked:
            if len(chosen) == max_keywords:
                break
            if not any(set(t.split()) <= set(c.split()) for c in chosen):
                chosen.append(t)
        out.append(chosen)
    return out


def _keyword_analyzer(text: str) -> list[str]:
    """Split "letter opener; vest" into each keyword and its words: ["letter opener", "letter", "opener", "vest"]."""
    out: list[str] = []
    for kw in (k.strip() for k in text.split(";")):
        if kw:
            out.append(kw)
            words = kw.split()
            out.extend(words if len(words) > 1 else [])
    return out
