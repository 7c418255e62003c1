"""What a cluster is about: keywords from its captions, a display name, representative images.

:func:`cluster_keywords` is the counting-based explanation of Stephan et al. (EACL 2024):
count the words and phrases of each cluster's captions, keep the most frequent, and make
the lists unique across clusters. :func:`ctfidf_keywords` is BERTopic's class-based TF-IDF,
for comparison. Both see the same terms: the words and n-grams of each *phrase* of a
text, a phrase being a run of lower-cased words of at least two letters (hyphenated
compounds such as "t-shirt" stay one word) that punctuation, stop words and numbers end.
So "a photo of a letter opener, or a bulletproof vest" gives "letter opener" and
"bulletproof vest" but no "opener bulletproof" across the comma.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from .cluster import check_matrix
from .errors import ConfigError
from .labels import default_name
from .models.base import row_norms

#: A term word: >= 2 letters, which single hyphens may join ("t-shirt", "x-ray"); no digits.
TERM_PATTERN = r"[^\W\d_](?:[^\W\d_]|-(?=[^\W\d_]))*[^\W\d_]"
#: Captioner boilerplate ("a photo of …", "an image of …"), ignored besides the English stop words,
#: or it would take a keyword slot in one cluster.
CAPTION_STOP_WORDS = frozenset({"photo", "photograph", "image", "picture"})
_TERM = re.compile(TERM_PATTERN)
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_PHRASE_END = re.compile(r"[^\w\s-]+|(?<!\w)-+|-+(?!\w)")
#: A phrase replaces a word it contains in a keyword list when it holds at least this share of the
#: word's count ("bolo tie" for "tie"); a word much more frequent than its phrases stays ("dog").
PHRASE_SHARE = 0.5
#: Separator of keywords in a cluster name.
NAME_SEPARATOR = " · "


def _check_texts_labels(texts: Sequence[str], labels) -> tuple[list[str], np.ndarray]:
    texts = ["" if t is None else str(t) for t in texts]
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ConfigError(f"labels must be 1-d, got shape {labels.shape}")
    if len(texts) != len(labels):
        raise ConfigError(f"got {len(texts)} texts but {len(labels)} labels; they must match one to one")
    if len(labels) and not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"labels must be integer cluster ids (-1 = noise), got dtype {labels.dtype}")
    return texts, labels.astype(np.int64)


def _check_top_n(top_n: int) -> None:
    if isinstance(top_n, bool) or not isinstance(top_n, int | np.integer) or top_n < 1:
        raise ConfigError(f"top_n must be a positive number of keywords, got {top_n!r}")


class _PhraseAnalyzer:
    """Text → its terms: the n-grams inside each phrase (a run of term words; see the module doc)."""

    def __init__(self, ngram_range: tuple[int, int], stop_words: frozenset[str]) -> None:
        self.ngram_range = ngram_range
        self.stop_words = stop_words

    def __call__(self, text: str) -> list[str]:
        lo, hi = self.ngram_range
        terms: list[str] = []
        for chunk in _PHRASE_END.split(text.lower()):
            run: list[str] = []
            for word in [*_WORD.findall(chunk), ""]:  # "" ends the last phrase
                if _TERM.fullmatch(word) and word not in self.stop_words:
                    run.append(word)
                    continue
                for n in range(lo, min(hi, len(run)) + 1):
                    terms.extend(" ".join(run[i : i + n]) for i in range(len(run) - n + 1))
                run = []
        return terms


def _vectorizer(ngram_range: tuple[int, int], extra_stop_words: Iterable[str], *, binary: bool):
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    lo, hi = ngram_range
    if not 1 <= lo <= hi:
        raise ConfigError(f"ngram_range must be (min, max) with 1 <= min <= max, got {ngram_range!r}")
    if isinstance(extra_stop_words, str):
        raise ConfigError(
            f"extra_stop_words must be a collection of words, got the string {extra_stop_words!r}"
        )
    stop = frozenset(ENGLISH_STOP_WORDS) | {w.lower() for w in extra_stop_words}
    return CountVectorizer(analyzer=_PhraseAnalyzer((lo, hi), stop), binary=binary)


def _ranked(row, lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column ids of a sparse row with positive values, best first.

    Ties by column id (= alphabetical), or, given the terms' ``lengths`` in words, first the longer term (a
    phrase before its words).
    """
    cols, vals = row.indices, row.data
    keep = vals > 0
    cols, vals = cols[keep], vals[keep]
    keys = (cols, -vals) if lengths is None else (cols, -lengths[cols], -vals)
    order = np.lexsort(keys)
    return cols[order], vals[order]


def _contains(phrase: str, term: str) -> bool:
    """Whether ``term`` is a run of whole words inside the longer ``phrase``."""
    return len(term) < len(phrase) and f" {term} " in f" {phrase} "


def _take_whole(cols, counts, banned: set[int], vocab, top_n: int) -> list[int]:
    """The first ``top_n`` allowed terms (``cols`` best first, ``counts`` their counts), phrases kept whole.

    A term inside a phrase already taken is skipped (it came later, so it only occurs in that phrase). A
    phrase replaces the shorter terms it contains that were taken before it, in the place of the first of
    them, when it covers at least :data:`PHRASE_SHARE` of each one's count: "bolo tie" (2) replaces
    "tie" (3), while "brown dog" (1) is listed after "dog" (6), which stays.
    """
    count = dict(zip((int(j) for j in cols), counts))
    chosen: list[int] = []
    for j in (int(j) for j in cols):
        if j in banned:
            continue
        term = str(vocab[j])
        if any(_contains(str(vocab[i]), term) for i in chosen):
            continue
        parts = [i for i in chosen if _contains(term, str(vocab[i]))]
        if parts and all(count[j] >= PHRASE_SHARE * count[i] for i in parts):
            at = chosen.index(parts[0])
            chosen = (
                [i for i in chosen[:at] if i not in parts] + [j] + [i for i in chosen[at:] if i not in parts]
            )
        else:
            chosen.append(j)
        if len(chosen) == top_n:
            break
    return chosen


def _per_cluster(docs, labels: np.ndarray, ids: np.ndarray):
    """Sum the rows of a sparse ``(n, V)`` document-term matrix per cluster → CSR ``(len(ids), V)``."""
    from scipy import sparse

    rows = np.searchsorted(ids, labels)
    member = sparse.csr_matrix(
        (np.ones(len(labels)), (rows, np.arange(len(labels)))), shape=(len(ids), len(labels))
    )
    return sparse.csr_matrix(member @ docs)


def cluster_keywords(
    texts: Sequence[str],
    labels,
    *,
    top_n: int = 5,
    ngram_range: tuple[int, int] = (1, 3),
    extra_stop_words: Iterable[str] = CAPTION_STOP_WORDS,
) -> dict[int, list[str]]:
    """Counting-based, cluster-unique keywords (Stephan et al. 2024).

    Per cluster, each term (word or n-gram) is counted once per member text (its document
    frequency inside the cluster) and the ``top_n`` most frequent are taken (ties: the
    phrase first, then alphabetical). Phrases are kept whole: a word or shorter phrase inside
    a phrase that is kept is dropped from that cluster's list, so "safety pin, web site" gives
    "safety pin", "web site" and not "pin", "safety", "site" (a word counted more than twice as
    often as the phrase stays beside it: "dog", "brown dog"; see :data:`PHRASE_SHARE`). A term in the top list of more
    than one cluster stays only with the cluster where its share (count / cluster size) is
    highest (then the higher count, then the lower id) and is removed from the others, which
    refill from their next terms; this repeats until no term is in two lists. Noise (``-1``) gets its plain top list and does
    not compete.

    Args:
        texts: ``n`` captions (``None`` counts as empty).
        labels: ``(n,)`` int cluster ids.
        top_n: most keywords per cluster.
        ngram_range: term lengths in words (n-grams never cross a phrase end; up to 3 keeps
            "comic book jacket" whole).
        extra_stop_words: ignored besides sklearn's English stop words (captioner boilerplate
            by default; pass ``()`` to keep every word).

    Returns:
        Cluster id → keywords, most frequent first; every id in ``labels`` is a key
        (with ``[]`` when its texts hold no countable words).
    """
    _check_top_n(top_n)
    texts, labels = _check_texts_labels(texts, labels)
    ids = np.unique(labels)
    out: dict[int, list[str]] = {int(c): [] for c in ids}
    vec = _vectorizer(ngram_range, extra_stop_words, binary=True)
    try:
        docs = vec.fit_transform(texts)
    except ValueError:  # empty vocabulary: no texts, or only stop words / one-letter words
        return out
    vocab = vec.get_feature_names_out()
    lengths = np.array([t.count(" ") + 1 for t in vocab])
    counts = _per_cluster(docs, labels, ids)
    sizes = np.bincount(np.searchsorted(ids, labels), minlength=len(ids))

    candidates: dict[int, list[int]] = {}
    count_of: dict[int, dict[int, float]] = {}
    for row, c in enumerate(ids):
        cols, vals = _ranked(counts.getrow(row), lengths)
        if c == -1:
            out[-1] = [str(vocab[j]) for j in _take_whole(cols, vals, set(), vocab, top_n)]
            continue
        candidates[int(c)] = cols.tolist()
        count_of[int(c)] = dict(zip(cols.tolist(), vals.tolist()))
    size_of = {int(c): int(s) for c, s in zip(ids, sizes)}
    banned: dict[int, set[int]] = {c: set() for c in candidates}

    while True:
        tops = {
            c: _take_whole(cols, list(count_of[c].values()), banned[c], vocab, top_n)
            for c, cols in candidates.items()
        }
        holders: dict[int, list[int]] = defaultdict(list)
        for c, terms in tops.items():
            for j in terms:
                holders[j].append(c)
        conflicts = {j: cs for j, cs in holders.items() if len(cs) > 1}
        if not conflicts:
            break
        for j, cs in conflicts.items():

            def strength(c: int, j=j) -> tuple[float, float, int]:
                return count_of[c][j] / size_of[c], count_of[c][j], -c

            winner = max(cs, key=strength)
            for c in cs:
                if c != winner:
                    banned[c].add(j)
    for c, terms in tops.items():
        out[c] = [str(vocab[j]) for j in terms]
    return out


def ctfidf_keywords(
    texts: Sequence[str],
    labels,
    *,
    top_n: int = 5,
    ngram_range: tuple[int, int] = (1, 3),
    extra_stop_words: Iterable[str] = CAPTION_STOP_WORDS,
) -> dict[int, list[str]]:
    """Class-based TF-IDF keywords (as in BERTopic).

    Each cluster's term counts are summed over its texts (as if they were joined into one
    document, without n-grams across text boundaries); a term's weight in cluster ``c`` is
    ``tf(t, c) / words(c) * log(1 + A / f(t))`` with ``A`` the mean number of words per
    cluster and ``f(t)`` the term's frequency over all clusters. Noise (``-1``) is one more
    class. Lists are not forced to be unique.

    Args:
        texts: ``n`` captions.
        labels: ``(n,)`` int cluster ids.
        top_n: most keywords per cluster.
        ngram_range: word n-gram lengths counted, as for :func:`cluster_keywords`.
        extra_stop_words: words never counted, as for :func:`cluster_keywords`.

    Returns:
        Cluster id → keywords, highest weight first (ties alphabetical); ``[]`` when none.
    """
    from scipy import sparse
    from sklearn.preprocessing import normalize

    _check_top_n(top_n)
    texts, labels = _check_texts_labels(texts, labels)
    ids = np.unique(labels)
    out: dict[int, list[str]] = {int(c): [] for c in ids}
    vec = _vectorizer(ngram_range, extra_stop_words, binary=False)
    try:
        docs = vec.fit_transform(texts)
    except ValueError:  # empty vocabulary
        return out
    tf = _per_cluster(docs, labels, ids).astype(np.float64)
    vocab = vec.get_feature_names_out()
    freq = np.asarray(tf.sum(axis=0)).ravel()
    mean_words = tf.sum() / len(ids)
    idf = np.log1p(mean_words / freq)
    weights = sparse.csr_matrix(normalize(tf, norm="l1", axis=1).multiply(idf[None, :]))
    for row, c in enumerate(ids):
        cols, _ = _ranked(weights.getrow(row))
        out[int(c)] = [str(vocab[j]) for j in cols[:top_n]]
    return out


def _name_words(keywords: Sequence[str], n_words: int) -> list[str]:
    chosen: list[str] = []
    for kw in keywords:
        words = set(kw.split())
        if words <= {w for c in chosen for w in c.split()}:
            continue
        chosen = [c for c in chosen if not set(c.split()) < words] + [kw]
        if len(chosen) == n_words:
            break
    return chosen


def cluster_names(
    keywords: dict[int, list[str]],
    *,
    prototypes: Sequence[str] | None = None,
    n_words: int = 3,
    noise_name: str = "other",
) -> dict[int, str]:
    """A short display name per cluster.

    Args:
        keywords: cluster id → keywords (from :func:`cluster_keywords`). The first ``n_words``
            that are not redundant are used: a keyword whose words are all in the name
            already is skipped, and a phrase replaces the shorter keywords it contains
            (``dog, dog park, park, leash`` → ``"dog park · leash"`` for two words).
        prototypes: prototype texts; cluster ``i < len(prototypes)`` is named ``prototypes[i]``
            (also when it has no keywords). Clusters discovered after them use keywords.
        n_words: keywords joined into a name ("dog · leash · park").
        noise_name: the name of ``-1`` ("other", or "noise" for HDBSCAN).

    Returns:
        Cluster id → name; ``"cluster <id>"`` when a cluster has no keywords.
    """
    if isinstance(n_words, bool) or not isinstance(n_words, int | np.integer) or n_words < 1:
        raise ConfigError(f"n_words must be a positive number of words, got {n_words!r}")
    prototypes = list(prototypes or [])
    names: dict[int, str] = {}
    for c in sorted(int(k) for k in keywords):
        if c == -1:
            names[c] = noise_name
        elif c < len(prototypes):
            names[c] = prototypes[c]
        else:
            names[c] = NAME_SEPARATOR.join(_name_words(keywords[c], n_words)) or default_name(c)
    for i, p in enumerate(prototypes):
        names.setdefault(i, p)
    return names


def representatives(X, labels) -> dict[int, np.ndarray]:
    """Each cluster's member indices, the one nearest (cosine) to the cluster mean first.

    One pass over ``X`` in all: rows are grouped by cluster with one sort, and each cluster's rows are
    gathered once (memory: the largest cluster's rows, never a normalised copy of ``X``).

    Args:
        X: ``(n, d)`` vectors.
        labels: ``(n,)`` int cluster ids (``-1`` included like any id).

    Returns:
        Cluster id → ``int64 (n_c,)`` row indices into ``X``; similarities equal to 6 decimals (duplicates,
        and rounding noise) keep index order.
    """
    X = check_matrix(X)
    labels = np.asarray(labels)
    if labels.shape != (len(X),):
        raise ConfigError(f"labels must have shape ({len(X)},) to match X, got {labels.shape}")
    with np.errstate(over="ignore"):  # a row too long for float32 (1e30) counts as zero, as in l2_normalize
        inv = (1.0 / np.maximum(row_norms(X), 1e-12)).astype(np.float32)
    inv[~np.isfinite(inv)] = 0.0
    order = np.argsort(labels, kind="stable")  # by cluster, then by index
    ids, starts = np.unique(labels[order], return_index=True)
    bounds = np.append(starts, len(order))
    out: dict[int, np.ndarray] = {}
    for c, lo, hi in zip(ids.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()):
        idx = order[lo:hi]
        rows, weights = X[idx], inv[idx]
        centre = weights @ rows  # the sum of the unit rows: the mean's direction (its length orders nothing)
        length = float(np.linalg.norm(centre))
        sims = (rows @ (centre / length if length > 0 else centre)) * weights
        out[int(c)] = idx[np.argsort(-np.round(sims, 6), kind="stable")].astype(np.int64)
    return out
