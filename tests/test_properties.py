"""Property tests: degenerate input to cluster, evaluate, explain and export.

Whatever the input — one row, k > n, identical or zero vectors, NaN/inf rows, no / one /
duplicate prototypes, empty or odd unicode texts, hostile cell values — each function either
returns a sensible result or raises :class:`vlexplore.errors.ConfigError` with a message.
Any other exception type is a bug (the app shows ``VlexploreError`` messages and would show a
traceback for anything else).

Settings are modest (``max_examples`` ≤ 50, no deadline) so the module runs in seconds.
"""

from __future__ import annotations

import csv
import io
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vlexplore.cluster import cluster_vectors, suggest_k
from vlexplore.config import CLUSTER_METHODS, ClusterConfig
from vlexplore.errors import ConfigError
from vlexplore.evaluate import clustering_accuracy, confusion_table, evaluate_labels, label_free_scores
from vlexplore.explain import cluster_keywords, cluster_names, ctfidf_keywords, representatives
from vlexplore.export import FORMULA_PREFIXES, safe_cell, sanitize_filename, to_dataframe, write_table
from vlexplore.images import Collection

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A few values, so rows repeat, cancel out and collapse to zero often.
cells = st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, 1e-30, 1e30])


@st.composite
def matrices(draw, max_n: int = 12, max_d: int = 5, bad_rows: bool = False):
    """``(n, d)`` float32 arrays with repeats, zero rows and, when ``bad_rows``, NaN/inf rows."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    X = draw(hnp.arrays(np.float32, (n, d), elements=cells))
    if draw(st.booleans()):  # all rows identical
        X[:] = X[0]
    if bad_rows:
        i = draw(st.integers(0, n - 1))
        X[i, draw(st.integers(0, d - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return X


def _prototypes(draw, d: int):
    """None, an empty array, or 1-4 prototypes (possibly duplicates, possibly zero vectors)."""
    kind = draw(st.sampled_from(["none", "empty", "some"]))
    if kind == "none":
        return None
    if kind == "empty":
        return np.zeros((0, d), dtype=np.float32)
    p = draw(st.integers(1, 4))
    P = draw(hnp.arrays(np.float32, (p, d), elements=cells))
    if p > 1 and draw(st.booleans()):
        P[1:] = P[0]  # duplicate prototypes
    return P


def _cluster_config(draw) -> ClusterConfig:
    method = draw(st.sampled_from(CLUSTER_METHODS))
    return ClusterConfig(
        method=method,
        k=draw(st.none() | st.integers(1, 15)),
        linkage=draw(st.sampled_from(["ward", "average"])),
        min_cluster_size=draw(st.none() | st.integers(2, 6)),
        reduce_dims=draw(st.integers(2, 4)),
        threshold=draw(st.none() | st.floats(-1, 1)),
        discover_rest=draw(st.booleans()),
        refine=draw(st.booleans()),
        prototypes=("p",) if method == "prototypes" else (),  # the texts; their embeddings are drawn apart
    )


def _cfg(method: str, **kw) -> ClusterConfig:
    return ClusterConfig(method=method, prototypes=("p",) if method == "prototypes" else (), **kw)


def _quiet(fn, *args, **kwargs):
    """Call ``fn``; sklearn's convergence/duplicate-point warnings are expected on degenerate input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- cluster


@given(st.data())
@SETTINGS
def test_cluster_on_degenerate_input_returns_valid_labels_or_a_config_error(data):
    X = data.draw(matrices())
    cfg = _cluster_config(data.draw)
    P = _prototypes(data.draw, X.shape[1])
    try:
        res = _quiet(cluster_vectors, X, cfg, prototype_embeddings=P)
    except ConfigError as exc:  # either outcome is allowed, so pytest.raises does not fit
        assert str(exc)  # noqa: PT017
        return
    n = len(X)
    assert res.labels.shape == (n,)
    assert res.labels.dtype == np.int64
    assert res.labels.min() >= -1
    assert res.labels.max() < max(res.n_clusters, 1)
    if cfg.method in ("kmeans", "agglomerative"):
        assert (res.labels >= 0).all()
        if cfg.k is not None and P is None:
            assert res.n_clusters == cfg.k <= n
    if cfg.method == "prototypes":
        assert res.similarity is not None
        assert res.similarity.shape == (n,)
        assert np.isfinite(res.similarity).all()
        assert res.n_clusters >= len(P)


@pytest.mark.parametrize("method", CLUSTER_METHODS)
@given(X=matrices(bad_rows=True))
@SETTINGS
def test_nan_or_inf_rows_are_a_config_error_for_every_method(method, X):
    with pytest.raises(ConfigError, match="NaN or infinite"):
        cluster_vectors(X, _cfg(method), prototype_embeddings=np.eye(X.shape[1], dtype=np.float32))


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
@given(n=st.integers(1, 6), extra=st.integers(1, 5))
@SETTINGS
def test_k_above_n_is_a_config_error_naming_both(method, n, extra):
    X = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match=f"{n + extra} clusters asked for.*only {n} images") as exc:
        cluster_vectors(X, ClusterConfig(method=method, k=n + extra))
    assert exc.value.option == "k"  # the CLI names the flag (--k), the app its control


@pytest.mark.parametrize("method", CLUSTER_METHODS)
def test_a_single_image_is_one_cluster_or_noise(method):
    X = np.array([[0.6, 0.8]], dtype=np.float32)
    res = cluster_vectors(X, _cfg(method), prototype_embeddings=np.array([[1.0, 0.0]], np.float32))
    assert res.labels.tolist() in ([0], [-1])


@pytest.mark.parametrize("method", CLUSTER_METHODS)
def test_identical_vectors_give_one_cluster_without_error(method):
    X = np.tile(np.array([[0.6, 0.8, 0.0]], dtype=np.float32), (20, 1))
    P = np.array([[0.6, 0.8, 0.0], [0.6, 0.8, 0.0]], dtype=np.float32)  # duplicate prototypes
    res = _quiet(cluster_vectors, X, _cfg(method), prototype_embeddings=P)
    assert len(np.unique(res.labels)) == 1


@pytest.mark.parametrize(
    "P",
    [None, np.zeros((0, 3), np.float32), np.zeros((2, 0), np.float32)],
    ids=["none", "zero-rows", "zero-dims"],
)
def test_prototypes_method_without_prototypes_is_a_config_error(P):
    with pytest.raises(ConfigError, match="prototype"):
        cluster_vectors(np.eye(3, dtype=np.float32), _cfg("prototypes"), prototype_embeddings=P)


def test_nan_prototypes_are_a_config_error():
    P = np.array([[np.nan, 0, 0]], dtype=np.float32)
    with pytest.raises(ConfigError, match="NaN"):
        cluster_vectors(np.eye(3, dtype=np.float32), _cfg("prototypes"), prototype_embeddings=P)


@given(X=matrices())
@SETTINGS
def test_suggest_k_is_between_one_and_n(X):
    k = _quiet(suggest_k, X)
    assert 1 <= k <= max(1, len(X) - 1)


# --------------------------------------------------------------------------- evaluate

label_values = st.integers(-1, 4)
class_values = st.sampled_from(["cat", "dog", "", "ünï", "=x"]) | st.integers(0, 3)


@given(st.lists(st.tuples(class_values, label_values), min_size=0, max_size=30), st.booleans())
@SETTINGS
def test_evaluate_gives_bounded_scores_or_a_config_error(rows, same_kind):
    y_true = [t if not same_kind else str(t) for t, _ in rows]
    y_pred = [p for _, p in rows]
    try:
        res = evaluate_labels(y_true, y_pred)
    except ConfigError:
        assert not rows or not same_kind  # only no labels, or classes that mix strings and numbers
        return
    assert 0.0 <= res["acc"] <= 1.0
    assert -1e-9 <= res["nmi"] <= 1.0 + 1e-9
    assert -1.0 <= res["ari"] <= 1.0
    assert 0.0 <= res["noise_share"] <= 1.0
    assert res["n_clusters"] == len({p for p in y_pred if p != -1})
    table = confusion_table(y_true, y_pred)
    assert int(table.to_numpy().sum()) == len(rows)
    assert clustering_accuracy(y_true, y_pred) == res["acc"]


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [
        ([], []),
        ([0], [0, 1]),
        ([[0, 1]], [[0, 1]]),
        ([0, 1], [0.5, 1.0]),
        ([0, 1], [np.nan, 0]),
        ([0, 1], ["a", "b"]),
    ],
)
def test_evaluate_rejects_bad_labels_with_a_config_error(y_true, y_pred):
    with pytest.raises(ConfigError):
        evaluate_labels(y_true, y_pred)


@given(X=matrices(max_n=15), labels=st.lists(label_values, min_size=15, max_size=15))
@SETTINGS
def test_label_free_scores_are_nan_or_in_range(X, labels):
    y = np.asarray(labels[: len(X)])
    scores = _quiet(label_free_scores, X, y)
    assert set(scores) == {"silhouette", "davies_bouldin", "calinski_harabasz"}
    s, db, ch = scores["silhouette"], scores["davies_bouldin"], scores["calinski_harabasz"]
    assert np.isnan(s) or -1.0 - 1e-6 <= s <= 1.0 + 1e-6
    assert np.isnan(db) or db >= 0.0
    assert np.isnan(ch) or ch >= 0.0


@given(X=matrices(bad_rows=True))
@SETTINGS
def test_label_free_scores_refuse_nan_rows(X):
    with pytest.raises(ConfigError, match="NaN"):
        label_free_scores(X, np.zeros(len(X), dtype=int))


# --------------------------------------------------------------------------- explain

odd_texts = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "   ",
            "a an the",
            "🐶🐱",
            "日本語のテキスト",
            "x-ray t-shirt",
            "--",
            "a-",
            "Ünïcödé wörds",
            "\u200b\u200bzero width",
            "\x00nul",
            "ﬁ ligature",
            "مرحبا بالعالم",
            '=HYPERLINK("x")',
        ]
    ),
)


@given(st.lists(st.tuples(odd_texts, st.integers(-1, 3)), max_size=25), st.integers(1, 4))
@SETTINGS
def test_keywords_of_odd_texts_cover_every_cluster(rows, top_n):
    texts = [t for t, _ in rows]
    labels = np.array([lab for _, lab in rows], dtype=np.int64)
    for fn in (cluster_keywords, ctfidf_keywords):
        kw = fn(texts, labels, top_n=top_n)
        assert set(kw) == set(labels.tolist())
        assert all(isinstance(w, str) and w and len(terms) <= top_n for terms in kw.values() for w in terms)
    kw = cluster_keywords(texts, labels, top_n=top_n)
    competing = [w for c, terms in kw.items() if c != -1 for w in terms]
    assert len(competing) == len(set(competing))
    names = cluster_names(kw)
    assert set(names) == set(kw)
    assert all(isinstance(v, str) and v for v in names.values())


@given(st.lists(st.text(max_size=12), max_size=5), st.lists(st.integers(-1, 6), max_size=10, unique=True))
@SETTINGS
def test_cluster_names_name_every_cluster_and_prototype(prototypes, ids):
    names = cluster_names({c: [] for c in ids}, prototypes=prototypes)
    assert set(ids) <= set(names)
    assert set(range(len(prototypes))) <= set(names)
    assert all(isinstance(v, str) for v in names.values())


@given(X=matrices(), data=st.data())
@SETTINGS
def test_representatives_are_a_permutation_of_each_cluster(X, data):
    labels = np.array(data.draw(st.lists(st.integers(-1, 2), min_size=len(X), max_size=len(X))))
    reps = _quiet(representatives, X, labels)  # 1e30 overflows the float32 norm (a warning, rows become zero)
    assert set(reps) == set(labels.tolist())
    for c, idx in reps.items():
        assert sorted(idx.tolist()) == np.flatnonzero(labels == c).tolist()


def test_representatives_refuse_nan_rows():
    with pytest.raises(ConfigError, match="NaN"):
        representatives(np.array([[np.nan, 1.0]], np.float32), [0])


# --------------------------------------------------------------------------- export

# Anything a file name, caption or cluster name may hold (no NUL: no file system allows it in a name).
cell_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
) | st.sampled_from(
    [
        "=1+1",
        "+1",
        "-1",
        "@SUM(A1)",
        "\t=x",
        "\r=x",
        "a\r=1+1",
        "a\n=1+1",
        "a\r\n=b",
        '"',
        '",=',
        "'",
        " =1",
        "",
        "NaN",
        "null",
    ]
)


@given(safe=cell_text)
@SETTINGS
def test_safe_cell_never_returns_a_formula_start_and_is_reversible(safe):
    out = safe_cell(safe)
    assert not out.startswith(FORMULA_PREFIXES)
    # split as a semicolon, comma or tab locale would: no part starts a formula
    # (a leading space already makes a cell text; after a separator, spaces are skipped as the code does)
    for part in re.split(r"[;,\t]", out)[1:]:
        assert not part.lstrip(" ").startswith(("=", "+", "-", "@")), (safe, out)
    # only quotes are added: the input is the output with them taken out again
    rest = iter(out)
    assert all(ch in rest for ch in safe)
    assert len(out) - len(safe) == out.count("'") - safe.count("'")


def _frame(relpaths, captions, names):
    n = len(relpaths)
    items = pd.DataFrame(
        {
            "relpath": relpaths,
            "path": ["/x"] * n,
            "folder_label": [r.split("/")[0] if "/" in r else "" for r in relpaths],
            "fingerprint": [f"{i:032x}" for i in range(n)],
        }
    )
    collection = Collection(root=None, items=items, skipped=pd.DataFrame({"relpath": [], "reason": []}))
    labels = np.arange(n) % max(1, len(names))
    return to_dataframe(collection, labels, dict(enumerate(names)), np.zeros((n, 2)), captions=captions)


def _spreadsheet_rows(raw: str) -> int:
    """Rows a spreadsheet sees: CR, LF and CRLF outside quotes all end a row (Excel, LibreOffice)."""
    rows, quoted, i = 0, False, 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "\r\n":
            rows += 1
            i += raw[i : i + 2] == "\r\n"
        i += 1
    return rows


@given(
    rows=st.lists(st.tuples(cell_text, cell_text), min_size=1, max_size=8),
    names=st.lists(cell_text, min_size=1, max_size=3),
)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_csv_round_trips_every_text_and_neutralises_formulas(tmp_path_factory, rows, names):
    relpaths = [r for r, _ in rows]
    assume(len(set(relpaths)) == len(relpaths))
    df = _frame(relpaths, [c for _, c in rows], names)
    path = write_table(df, tmp_path_factory.mktemp("csv") / "out.csv")
    raw = path.read_bytes().decode("utf-8")
    assert _spreadsheet_rows(raw) == len(df) + 1  # a bare CR inside a cell would start a new row
    records = list(csv.reader(io.StringIO(raw, newline="")))
    assert len(records) == len(df) + 1
    assert all(len(r) == len(df.columns) for r in records)
    for col in ("path", "caption", "cluster_label", "folder_label"):
        got = [r[list(df.columns).index(col)] for r in records[1:]]
        assert got == [safe_cell(v) for v in df[col]]
        assert not any(v.startswith(FORMULA_PREFIXES) for v in got)


@given(name=st.text(max_size=300))
@SETTINGS
def test_sanitize_filename_gives_a_usable_name(name):
    out = sanitize_filename(name)
    assert out
    assert len(out) <= 120
    assert "/" not in out
    assert "\\" not in out
    assert "\x00" not in out
    assert out not in (".", "..")
    assert not out.startswith((" ", "."))
    assert not out.endswith((" ", "."))
    assert len(out.encode("utf-8", "surrogatepass")) <= 255 * 2


def test_ci_runs_a_derandomised_profile():
    import os

    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.database is None
    if os.environ.get("CI"):
        assert settings.default.derandomize is True
        assert SETTINGS.derandomize is True
