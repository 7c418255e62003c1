"""Unit tests of the app's pure helpers: label edits, allowed roots, map selection, export tables."""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ui.feedback import ProgressBar
from vlexplore import edit, heatmaps, paths, plots, tables
from vlexplore.errors import ConfigError, PathNotAllowedError
from vlexplore.export import csv_bytes, parquet_bytes

# ----------------------------------------------------------------------------------- edits

LABELS = np.array([0, 0, 1, 1, 1, 2, -1, -1], dtype=np.int64)
NAMES = {0: "dogs", 1: "cats", 2: "cars", -1: "other"}


def test_sizes_and_order_put_noise_last():
    assert edit.cluster_sizes(LABELS) == {-1: 2, 0: 2, 1: 3, 2: 1}
    assert edit.cluster_order(LABELS) == [1, 0, 2, -1]


def test_rename_tidies_whitespace_and_keeps_input():
    out = edit.rename(NAMES, 1, "  house   cats ")
    assert out[1] == "house cats"
    assert NAMES[1] == "cats"


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_rename_refuses_empty_names(bad):
    with pytest.raises(ConfigError, match="cannot be empty"):
        edit.rename(NAMES, 1, bad)


def test_merge_into_smallest_id_and_drop_other_names():
    labels, names, target = edit.merge(LABELS, NAMES, [2, 1])
    assert target == 1
    assert labels.tolist() == [0, 0, 1, 1, 1, 1, -1, -1]
    assert names == {0: "dogs", 1: "cats", -1: "other"}
    assert LABELS.tolist() == [0, 0, 1, 1, 1, 2, -1, -1]  # input untouched


def test_merge_with_new_name_and_with_noise():
    labels, names, target = edit.merge(LABELS, NAMES, [-1, 2], new_name="vehicles")
    assert target == 2
    assert names[2] == "vehicles"
    assert (labels == -1).sum() == 0
    assert (labels == 2).sum() == 3


@pytest.mark.parametrize(("ids", "match"), [([1], "at least two"), ([1, 7], "no such cluster")])
def test_merge_refuses_bad_ids(ids, match):
    with pytest.raises(ConfigError, match=match):
        edit.merge(LABELS, NAMES, ids)


def test_move_and_prune_empty_cluster_names():
    labels = edit.move(LABELS, [5], 0)
    assert labels[5] == 0
    assert 2 not in edit.prune_names(labels, NAMES)
    assert edit.move(LABELS, [0, 1], -1)[:2].tolist() == [-1, -1]


@pytest.mark.parametrize(
    ("indices", "target", "match"), [([], 0, "no images"), ([99], 0, "must lie in"), ([0], -2, ">= -1")]
)
def test_move_refuses_bad_input(indices, target, match):
    with pytest.raises(ConfigError, match=match):
        edit.move(LABELS, indices, target)


def test_new_cluster_gets_fresh_id_and_name():
    labels, names, new_id = edit.new_cluster(LABELS, NAMES, [0, 5, 6], "mixed")
    assert new_id == 3
    assert names[3] == "mixed"
    assert labels[[0, 5, 6]].tolist() == [3, 3, 3]
    assert 2 not in names  # cluster 2 lost its only image


def test_labels_must_be_integers():
    with pytest.raises(ConfigError, match="integer"):
        edit.move(LABELS.astype(float), [0], 1)


def test_paging():
    items = np.arange(10)
    assert edit.pages(10, 4) == 3
    assert edit.pages(0, 4) == 1
    assert edit.page_slice(items, 3, 4).tolist() == [8, 9]
    assert edit.page_slice(items, 99, 4).tolist() == [8, 9]  # clamped
    with pytest.raises(ConfigError):
        edit.pages(10, 0)


# ----------------------------------------------------------------------------------- roots


@pytest.fixture
def tree(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "a" / "b").mkdir(parents=True)
    (allowed / ".hidden").mkdir()
    (allowed / "file.txt").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, allowed / "link_out")
    os.symlink(allowed / "a", allowed / "link_in")
    return allowed, outside


def test_roots_from_env_and_secrets(tmp_path):
    env = {"VLEXPLORE_ROOTS": f"{tmp_path}{os.pathsep}{tmp_path / 'x'}"}
    assert paths.allowed_roots(env) == [tmp_path.resolve(), (tmp_path / "x").resolve()]
    assert paths.allowed_roots({}, secrets_roots=[str(tmp_path)]) == [tmp_path.resolve()]
    default = paths.allowed_roots({})
    assert paths.DEMO_DIR.resolve() in default
    assert Path.home().resolve() in default


def test_start_folder_is_always_allowed(tmp_path):
    env = {"VLEXPLORE_ROOTS": str(tmp_path / "r"), "VLEXPLORE_FOLDER": str(tmp_path / "start")}
    assert (tmp_path / "start").resolve() in paths.allowed_roots(env)


def test_check_folder_accepts_inside_and_symlink_that_stays_inside(tree):
    allowed, _ = tree
    assert paths.check_folder(str(allowed / "a" / "b"), [allowed]) == allowed / "a" / "b"
    assert paths.check_folder(str(allowed / "link_in"), [allowed]) == allowed / "a"


@pytest.mark.parametrize("rel", ["../outside", "link_out", "a/../../outside", "/etc"])
def test_check_folder_refuses_escapes(tree, rel):
    allowed, _ = tree
    path = rel if rel.startswith("/") else str(allowed / rel)
    with pytest.raises(PathNotAllowedError, match="outside the folders this app may read"):
        paths.check_folder(path, [allowed])


@pytest.mark.parametrize(
    ("rel", "match"), [("", "no folder"), ("missing", "does not exist"), ("file.txt", "not a folder")]
)
def test_check_folder_other_errors(tree, rel, match):
    allowed, _ = tree
    with pytest.raises(ConfigError, match=match):
        paths.check_folder(str(allowed / rel) if rel else "", [allowed])


def test_subfolders_hide_hidden_and_escaping_links(tree):
    allowed, _ = tree
    assert paths.subfolders(allowed, [allowed]) == ["a", "link_in"]
    assert paths.parent_within(allowed / "a", [allowed]) == allowed
    assert paths.parent_within(allowed, [allowed]) is None


# ----------------------------------------------------------------------------------- figures


def test_map_has_one_trace_per_cluster_and_maps_selection_back():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(8, 2)).astype(np.float32)
    order = edit.cluster_order(LABELS)
    fig = plots.scatter_map(
        coords, LABELS, NAMES, order, plots.cluster_colours(order), hover=[str(i) for i in range(8)]
    )
    assert [t.name.split(" (")[0] for t in fig.figure.data] == ["cats", "dogs", "cars", "other"]
    # point 1 of trace 0 (cats: images 2, 3, 4) and point 0 of trace 3 (other: 6, 7)
    got = fig.indices(
        [
            {"curve_number": 0, "point_index": 1},
            {"curve_number": 3, "point_index": 0},
            {"curve_number": 9, "point_index": 0},
            {"point_index": 0},
        ]
    )
    assert got.tolist() == [3, 6]
    assert fig.figure.layout.annotations[0].text == "cats"


def test_map_samples_large_collections_and_lumps_small_clusters():
    n = 5000
    labels = np.arange(n) % 60
    order = edit.cluster_order(labels)
    fig = plots.scatter_map(
        np.zeros((n, 2)), labels, {}, order, plots.cluster_colours(order), max_points=1000
    )
    assert fig.n_shown == 1000
    assert len(fig.figure.data) == plots.MAX_TRACES + 1
    assert fig.figure.data[-1].name.startswith("20 smaller clusters")
    assert sum(len(m) for m in fig.members) == 1000


def test_confusion_heatmap_orders_clusters_diagonally():
    table = pd.DataFrame([[0, 9], [8, 1]], index=pd.Index(["a", "b"], name="class"), columns=[0, 1])
    fig = heatmaps.confusion_heatmap(table, {0: "bee", 1: "ant"})
    assert list(fig.data[0].x) == ["ant", "bee"]


# ----------------------------------------------------------------------------------- tables


def test_csv_is_formula_safe_and_parquet_is_not_altered():
    df = pd.DataFrame({"path": ["=cmd|' /C calc'!A0", "ok.png"], "cluster_label": ["+1", "-x"], "n": [1, 2]})
    csv = pd.read_csv(io.BytesIO(csv_bytes(df)))
    assert csv["path"].tolist() == ["'=cmd|' /C calc'!A0", "ok.png"]
    assert csv["cluster_label"].tolist() == ["'+1", "'-x"]
    assert pd.read_parquet(io.BytesIO(parquet_bytes(df)))["cluster_label"].tolist() == ["+1", "-x"]


def test_purity_tables():
    table = pd.DataFrame([[3, 1], [0, 4]], index=["a", "b"], columns=[0, 1])
    per_folder = tables.folder_purity(table, {0: "A", 1: "B"})
    assert per_folder["mostly in cluster"].tolist() == ["A", "B"]
    assert per_folder["share"].tolist() == [0.75, 1.0]
    per_cluster = tables.cluster_purity(table, {0: "A", 1: "B"})
    assert per_cluster.set_index("cluster")["purity"].to_dict() == {"A": 1.0, "B": 0.8}


# ----------------------------------------------------------------------------------- progress


def test_progress_text_has_rate_and_time_left():
    bar = object.__new__(ProgressBar)
    bar.what, bar.unit, bar._t0, bar._d0 = "Embedding", "images", 100.0, 0
    text = bar.text(500, 2000, 110.0)
    assert text == "Embedding: 500 / 2,000 images · 50 images/s · 00:30 left"  # rate and time left: tqdm's
    assert bar.text(400, 2000, 100.2) == "Embedding: 400 / 2,000 images · starting…"


def test_no_pages_directory_beside_app():
    """No ``pages/`` folder beside app.py: the pages live in ``views/``.

    A ``pages/`` folder puts Streamlit in its old multipage mode until the first
    ``st.navigation`` call of the process: a session that opens (or reconnects to) /map on a fresh
    server then runs views/map.py alone — no app.py, no sidebar, no start-up folder.
    """
    assert not (Path(paths.REPO_DIR) / "pages").exists()


# ----------------------------------------------------------------------------------- map layout


def _pending_map_state(job=None):
    import vlexplore as vx
    from ui.state import AppState

    n = 4
    rng = np.random.default_rng(0)
    collection = SimpleNamespace(fingerprints=[f"fp{i}" for i in range(n)])
    emb = SimpleNamespace(
        n=n,
        views={"image": rng.normal(size=(n, 6)).astype(np.float32)},
        collection=collection,
        model_id="fake",
    )
    clustered = vx.Clustered(
        labels=np.zeros(n, dtype=np.int64),
        names={0: "a"},
        keywords={},
        similarity=None,
        coords=np.full((n, 2), np.nan, dtype=np.float32),
        metrics={},
        config=vx.ClusterConfig(),
    )
    return AppState(emb=emb, clustered=clustered, labels=np.zeros(n, dtype=np.int64), map_job=job)


@pytest.fixture
def shown(monkeypatch):
    """What ``ensure_map`` put on the page: ``{"error": [...], "warning": [...]}``."""
    from ui import actions

    seen: dict[str, list[str]] = {"error": [], "warning": []}
    monkeypatch.setattr(actions.st, "error", lambda text, **kw: seen["error"].append(text))
    monkeypatch.setattr(actions.st, "warning", lambda text, **kw: seen["warning"].append(text))
    return seen


def test_a_failed_background_map_is_not_kept_and_the_next_rerun_retries(tmp_path, monkeypatch, shown):
    import errno
    from concurrent.futures import Future

    from ui import actions

    job = Future()
    job.set_exception(OSError(errno.ENOSPC, "No space left on device"))
    state = _pending_map_state(job)
    state.cache_dir = tmp_path

    actions.ensure_map(state)  # the failure is shown once (no traceback) and the job dropped

    assert state.map_job is None
    assert not state.map_ready
    assert len(shown["error"]) == 1
    assert "No space left on device" in shown["error"][0]
    # space freed: the next rerun lays the map out again instead of re-raising the stored failure
    actions.ensure_map(state)
    assert state.map_ready
    assert len(shown["error"]) == 1
    assert (tmp_path / "projections").is_dir()


def test_a_map_that_cannot_be_cached_is_shown_with_one_warning(tmp_path, monkeypatch, shown):
    import errno
    from concurrent.futures import ThreadPoolExecutor

    from ui import actions
    from vlexplore import project as pj

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(pj, "_save", read_only)
    state = _pending_map_state()
    state.cache_dir = tmp_path
    with ThreadPoolExecutor(max_workers=1) as pool:  # as the app's map worker
        state.map_job = pool.submit(actions.layout_map, state.emb, seed=0, cache_dir=tmp_path)
        actions.ensure_map(state)

    assert state.map_ready
    assert state.map_job is None
    assert not shown["error"]
    assert len(shown["warning"]) == 1
    assert "Read-only file system" in shown["warning"][0]
    actions.ensure_map(state)  # told once: nothing new on the next rerun
    assert len(shown["warning"]) == 1
