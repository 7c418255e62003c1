"""AppTest of the Map page while the UMAP layout is still being computed in the background.

The page shows the quick layout (vlexplore.quickmap.quick_layout) at once, with a one-line caption; what it
draws and what a selection on it picks are those coordinates; once the background job is done the next run
shows UMAP's coordinates (the page's fragment reruns it by itself every few seconds). The Export page never
waits for UMAP: while it runs, the table's umap_x / umap_y are empty (never the quick layout's), and once it
is done they are UMAP's.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from concurrent.futures import Future

import numpy as np
import pytest
from test_app_pages import data, env, run_page, seeded, state_of, texts  # noqa: F401 - fixtures

from vlexplore.mapdata import normalise
from vlexplore.quickmap import quick_layout

CAPTION = "the UMAP layout is being computed and will replace it"


def pending(data, job: Future | None = None):  # noqa: F811
    """The state right after loading: the clusters, NaN map coordinates, the UMAP job not done."""
    s = seeded(data)
    s.clustered = dataclasses.replace(s.clustered, coords=np.full((s.n_images, 2), np.nan, dtype=np.float32))
    s.map_job = Future() if job is None else job
    return s


def umap_coords(n: int) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(n, 2)).astype(np.float32) * 100.0


def _values(v) -> np.ndarray:
    """A plotly trace's ``x`` or ``y``: a list, or plotly's typed array ``{"dtype", "bdata"}``."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(np.float64)
    return np.asarray(v, dtype=np.float64)


def test_the_map_shows_the_quick_layout_with_a_caption_while_umap_runs(data):  # noqa: F811
    s = pending(data)
    at = run_page("map", s, plotly_map=True)
    s = state_of(at)
    assert CAPTION in texts(at.caption)
    assert not at.error, texts(at.error)
    want = quick_layout(data.emb.views["image"], seed=s.clustered.config.seed)
    np.testing.assert_array_equal(s.clustered.coords, want)
    assert s.map_job is not None
    assert not s.map_job.done()
    # what is drawn is those coordinates, and a selection maps drawn points back to the images under them
    fig = s.memo[("map", s.version)]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    for trace, members in zip(spec["data"], fig.members):
        drawn = np.stack([_values(trace["x"]), _values(trace["y"])], axis=1)
        np.testing.assert_allclose(drawn, want[members], rtol=1e-5, atol=1e-5)
    box = want[:, 0] <= np.median(want[:, 0])  # a lasso around the left half of the quick layout
    points = [
        {"curve_number": c, "point_index": i}
        for c, members in enumerate(fig.members)
        for i, image in enumerate(members)
        if box[image]
    ]
    assert set(fig.indices(points).tolist()) == set(np.flatnonzero(box).tolist())


def test_the_umap_layout_replaces_the_quick_one_when_the_job_is_done(data):  # noqa: F811
    s = pending(data)
    at = run_page("map", s, plotly_map=True)
    quick = state_of(at).clustered.coords.copy()
    version = state_of(at).version
    umap = umap_coords(s.n_images)
    s.map_job.set_result((umap, []))
    at.run()  # what the page's fragment does by itself once the job is done
    s = state_of(at)
    assert not at.exception, [e.value for e in at.exception]
    assert CAPTION not in texts(at.caption)
    np.testing.assert_array_equal(s.clustered.coords, umap)
    assert not np.allclose(quick, umap)
    assert s.map_job is None
    assert s.version > version  # the figure is built again from the new coordinates
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    fig = s.memo[("map", s.version)]
    trace, members = spec["data"][0], fig.members[0]
    np.testing.assert_allclose(_values(trace["x"]), umap[members, 0], rtol=1e-5)


def test_a_cluster_made_on_the_quick_layout_survives_the_swap(data):  # noqa: F811
    s = pending(data)
    at = run_page("map", s, plotly_map=True)
    s = state_of(at)
    chosen = np.flatnonzero(s.clustered.coords[:, 0] <= np.median(s.clustered.coords[:, 0]))
    s.set_selection(chosen)
    at.run()
    at.text_input(key=f"map-newname-{s.version}").set_value("left half").run()
    next(b for b in at.button if b.label == "Create cluster").click().run()
    s = state_of(at)
    new_id = next(c for c, n in s.names.items() if n == "left half")
    assert set(np.flatnonzero(s.labels == new_id).tolist()) == set(chosen.tolist())
    s.map_job.set_result((umap_coords(s.n_images), []))
    at.run()
    s = state_of(at)
    assert s.map_job is None
    assert CAPTION not in texts(at.caption)
    assert set(np.flatnonzero(s.labels == new_id).tolist()) == set(chosen.tolist())


def test_the_webgl_map_draws_the_quick_layout_too(data):  # noqa: F811
    from ui import scatter

    if not scatter.available():
        pytest.skip("the WebGL map's bundle is not built")
    at = run_page("map", pending(data))
    s = state_of(at)
    assert CAPTION in texts(at.caption)
    points = s.memo[("map-webgl", s.version)]
    x, y = normalise(s.clustered.coords)
    np.testing.assert_array_equal(points.x, x)
    np.testing.assert_array_equal(points.y, y)
    np.testing.assert_array_equal(s.clustered.coords, quick_layout(data.emb.views["image"]))


def test_a_layout_from_the_cache_is_shown_without_the_quick_one(data):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    umap = umap_coords(data.emb.n)
    with ThreadPoolExecutor(max_workers=1) as pool:  # a job that finishes at once, as a cache read does
        job = pool.submit(lambda: (umap, []))
        at = run_page("map", pending(data, job), plotly_map=True)
    s = state_of(at)
    assert CAPTION not in texts(at.caption)
    np.testing.assert_array_equal(s.clustered.coords, umap)


def test_export_does_not_wait_for_umap_and_leaves_its_columns_empty_meanwhile(data):  # noqa: F811
    s = pending(data)
    at = run_page("map", s, plotly_map=True)  # the quick layout is on screen
    at.switch_page("views/export.py").run()
    s = state_of(at)
    assert not at.exception, [e.value for e in at.exception]
    assert "still being computed" in texts(at.info)
    frame = at.dataframe[0].value
    assert len(frame) == s.n_images
    assert frame[["umap_x", "umap_y"]].isna().all().all()  # not the quick layout's coordinates
    assert (frame["cluster_id"].to_numpy() == s.labels).all()
    assert not s.map_job.done()  # nothing waited for it
    s.map_job.set_result((umap_coords(s.n_images), []))
    at.run()
    assert "still being computed" not in texts(at.info)
    np.testing.assert_allclose(
        at.dataframe[0].value[["umap_x", "umap_y"]].to_numpy(), umap_coords(s.n_images), rtol=1e-5
    )


def test_export_has_umaps_coordinates_once_the_job_is_done_even_with_the_quick_layout_on_screen(data):  # noqa: F811
    s = pending(data)
    at = run_page("map", s, plotly_map=True)
    s = state_of(at)
    umap = umap_coords(s.n_images)
    s.map_job.set_result((umap, []))
    at.switch_page("views/export.py").run()
    frame = at.dataframe[0].value
    np.testing.assert_allclose(frame[["umap_x", "umap_y"]].to_numpy(), umap, rtol=1e-5)


def test_a_failed_umap_job_takes_the_quick_layout_with_it_and_the_next_run_lays_out_again(data):  # noqa: F811
    import errno

    s = pending(data)
    at = run_page("map", s, plotly_map=True)
    assert CAPTION in texts(at.caption)
    s.map_job.set_exception(OSError(errno.ENOSPC, "No space left on device"))
    at.run()
    s = state_of(at)
    assert "No space left on device" in texts(at.error)
    assert s.map_job is None
    assert not s.map_ready  # not the quick layout passed off as the final one
    at.run()  # space freed: the map is laid out in this run (PCA: fewer than 30 images)
    s = state_of(at)
    assert not at.error, texts(at.error)
    assert s.map_ready
    assert CAPTION not in texts(at.caption)
