"""The WebGL map.

The pure payload builder (vlexplore.mapdata), the Map page with the component (AppTest: element present and
fed; AppTest runs no JavaScript), and a real browser on a small folder (hover → thumbnail, click → the image
under the map, box-select → the grid).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import CLASS_COLOURS, FakeEncoder, colour_image

import vlexplore as vx
from vlexplore import mapdata

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
PER_CLASS = 6

# ------------------------------------------------------------------------------------- pure data


def test_normalise_keeps_aspect_and_centres():
    x, y = mapdata.normalise(np.array([[0, 0], [4, 1], [2, 0.5]], dtype=float))
    assert x.dtype == np.float32
    assert y.dtype == np.float32
    np.testing.assert_allclose(x, [-1, 1, 0])
    np.testing.assert_allclose(y, [-0.25, 0.25, 0])  # same scale as x: 1/4 of the width


def test_normalise_degenerate_and_non_finite():
    x, y = mapdata.normalise(np.array([[3, 3], [3, 3]]))
    assert (x == 0).all()
    assert (y == 0).all()
    x, y = mapdata.normalise(np.array([[0, 0], [np.nan, 1], [2, 2]]))
    assert np.isfinite(x).all()
    assert x[1] == 0
    assert y[1] == 0
    assert mapdata.normalise(np.zeros((0, 2)))[0].shape == (0,)


def test_map_points_codes_palette_names_order():
    coords = np.random.default_rng(0).normal(size=(7, 2))
    labels = np.array([2, 0, -1, 2, 5, 0, 2])
    p = mapdata.map_points(
        coords, labels, {0: "#111111", 2: "#222222", -1: "#b8b8b8"}, {0: "shoes", 2: "bags"}, order=[2, 0, -1]
    )
    assert p.ids == [2, 0, -1, 5]  # order first, ids missing from it after
    assert p.category.dtype == np.uint16
    assert [p.ids[c] for c in p.category] == labels.tolist()
    assert p.palette == ["#222222", "#111111", "#b8b8b8", mapdata.OTHER_COLOUR]
    assert p.names == ["bags", "shoes", "noise", "cluster 5"]
    assert p.x.min() >= -1
    assert p.x.max() <= 1
    assert p.n == 7


def test_map_points_version_follows_content():
    coords = np.random.default_rng(1).normal(size=(50, 2))
    labels = np.arange(50) % 3
    a = mapdata.map_points(coords, labels, {})
    assert mapdata.map_points(coords, labels, {}).version == a.version
    assert mapdata.map_points(coords, labels[::-1].copy(), {}).version != a.version
    assert mapdata.map_points(coords, labels, {0: "#ff0000"}).version != a.version
    with pytest.raises(ValueError, match="coordinates but"):
        mapdata.map_points(coords[:3], labels, {})


def test_map_points_a_million_is_fast_and_keeps_every_point():
    rng = np.random.default_rng(0)
    p = mapdata.map_points(rng.random((1_000_000, 2), dtype=np.float32), rng.integers(0, 30, 1_000_000), {})
    assert p.n == 1_000_000
    assert len(p.category) == 1_000_000


@pytest.mark.parametrize("n", [0, 1, 5, 6])
def test_encode_decode_round_trip(n):
    coords = np.random.default_rng(n).normal(size=(n, 2))
    p = mapdata.map_points(coords, np.arange(n) % 2, {0: "#123456"})
    payload = mapdata.encode(p, [n - 1, 0, 99] if n else [], extra={"height": 500})
    assert payload[:4] == b"VXM1"
    header, arrays = mapdata.decode(payload)
    assert header["n"] == n
    assert header["height"] == 500
    assert header["points"]
    np.testing.assert_array_equal(arrays["x"], p.x)
    np.testing.assert_array_equal(arrays["y"], p.y)
    np.testing.assert_array_equal(arrays["category"], p.category)
    assert sorted(arrays["selection"].tolist()) == (sorted({0, n - 1}) if n else [])  # 99 is out of range
    light = mapdata.encode(p, [0] if n else [], with_points=False)
    h2, a2 = mapdata.decode(light)
    assert not h2["points"]
    assert "x" not in a2
    assert len(light) < 4096


def test_encode_is_binary_not_json_lists():
    p = mapdata.map_points(np.random.default_rng(0).normal(size=(10_000, 2)), np.zeros(10_000, int), {})
    payload = mapdata.encode(p)
    assert len(payload) < 10_000 * 11  # 4 + 4 + 2 bytes a point, plus the header


def test_decode_indices_from_the_browser():
    raw = base64.b64encode(np.array([5, 1, 5, 70], dtype="<u4").tobytes()).decode()
    assert mapdata.decode_indices({"b64": raw, "n": 4}, 10).tolist() == [1, 5]
    assert mapdata.decode_indices([3, 2, -1, 12, "x"], 10).tolist() == [2, 3]
    assert mapdata.decode_indices(None, 10).tolist() == []
    assert mapdata.decode_indices({"b64": ""}, 10).tolist() == []


# ------------------------------------------------------------------------------------- AppTest


def make_data(base: Path):
    """A folder of 3 colour classes × 6 under ``base``.

    Embedded (fake encoder) and clustered (k=3) on a layout of one tight blob per class, far apart (a box
    around one blob selects exactly that class).
    """
    root, cache = base / "images", base / "cache"
    for c, (label, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(PER_CLASS):
            path = root / label / f"{label}_{i}.png"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                colour_image(colour, (32, 24), seed=10 * c + i).save(path)
    col = vx.scan(root)
    emb = vx.embed(col, vx.EncodeConfig(cache_dir=cache), encoder=FakeEncoder())
    emb = dataclasses.replace(emb, captions=[f"a {p.split('/')[0]} square" for p in col.items["relpath"]])
    k = np.array([list(CLASS_COLOURS).index(p.split("/")[0]) for p in col.items["relpath"]])
    rng = np.random.default_rng(0)
    coords = np.array([[-6.0, -4.0], [6.0, -4.0], [0.0, 6.0]])[k] + rng.normal(scale=0.3, size=(len(k), 2))
    cl = vx.cluster_embedded(emb, vx.ClusterConfig(k=3), coords=coords.astype(np.float32), cache_dir=cache)
    return SimpleNamespace(base=base, root=root, cache=cache, emb=emb, cl=cl, klass=k)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("mapc"))


@pytest.fixture
def env(monkeypatch, data):
    monkeypatch.delenv("VLEXPLORE_FOLDER", raising=False)
    monkeypatch.setenv("VLEXPLORE_ROOTS", str(data.base))
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(data.cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VLEXPLORE_WARM_UMAP", "0")


def seeded(data):
    from ui.state import AppState

    s = AppState(cache_dir=data.cache, auto_started=True)
    s.set_embedded(data.emb, folder=data.root, model="bundled", device="cpu")
    s.set_clustered(data.cl)
    return s


def _bidi(at) -> list:
    return [e for e in at.get("bidi_component")]


def test_map_page_renders_the_webgl_component_fed_with_points(data, env):
    from streamlit.testing.v1 import AppTest

    from ui import scatter
    from ui.state import KEY

    assert scatter.available()
    s = seeded(data)
    s.set_selection([0, 3])
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[KEY] = s
    at.run()
    at.switch_page("views/map.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.get("plotly_chart")  # the WebGL map is the default
    assert at.toggle(key="map-use-webgl").value
    comps = _bidi(at)
    names = [c.proto.component_name for c in comps]
    assert scatter.NAME in names
    assert scatter.THUMBS_NAME in names
    main = comps[names.index(scatter.NAME)].proto
    assert "regl" in main.js_content.lower() or len(main.js_content) > 50_000  # the bundle itself
    header, arrays = mapdata.decode(main.bytes)  # binary payload, not JSON
    assert header["n"] == s.n_images
    assert header["points"]
    assert len(arrays["x"]) == s.n_images
    assert arrays["selection"].tolist() == [0, 3]
    assert set(header["names"]) >= set(s.names.values())
    # the toggle brings the plotly map back
    at.toggle(key="map-use-webgl").set_value(False).run()
    assert at.get("plotly_chart")
    assert scatter.NAME not in [c.proto.component_name for c in _bidi(at)]


def test_thumbnail_answers_are_cached_jpegs_as_data_urls(data, env, tmp_path):
    from ui import scatter

    jpeg = vx.thumbnail(
        data.emb.collection, data.emb.collection.items["relpath"].iat[0], cache_dir=data.cache
    )
    url = scatter.thumb_data_url(jpeg)
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == Path(jpeg).read_bytes()
    png = next(data.root.rglob("*.png"))
    with pytest.raises(ValueError, match="not a cached JPEG thumbnail"):
        scatter.thumb_data_url(png)  # never a full-size original


# ------------------------------------------------------------------------------------- browser

SERVE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    import streamlit as st
    from test_map_component import make_data, seeded
    from ui.state import KEY

    if KEY not in st.session_state:  # the test's folder, embedded (fake encoder, cached) and clustered
        st.session_state[KEY] = seeded(make_data(Path({base!r})))
        st.session_state["map-use-webgl"] = True
    st.navigation([st.Page({page!r}, title="Map")]).run()
""")


@pytest.fixture(scope="module")
def served(data, tmp_path_factory):
    try:
        from tools.browser import CHROMIUM, served
    except ImportError:  # older layout
        from ui.browser import CHROMIUM
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; the browser test needs it")
    pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("mapserve")
    script = tmp / "serve_map.py"
    script.write_text(
        SERVE.format(
            repo=str(REPO),
            tests=str(REPO / "tests"),
            base=str(data.base),
            page=str(REPO / "views" / "map.py"),
        )
    )
    (tmp / ".streamlit").mkdir()
    (tmp / ".streamlit" / "config.toml").write_text((REPO / ".streamlit" / "config.toml").read_text())
    env = {
        **os.environ,
        "VLEXPLORE_ROOTS": str(data.base),
        "VLEXPLORE_CACHE_DIR": str(data.cache),
        "HF_HUB_OFFLINE": "1",
        "VLEXPLORE_WARM_UMAP": "0",
    }
    env.pop("VLEXPLORE_FOLDER", None)
    with served(script, cwd=tmp, env=env, log=tmp / "server.log", timeout=90) as url:
        yield url


SCREEN = """(i) => { const st = document.querySelector('.vx-scatter').__vxScatter;
    const r = st.dom.canvas.getBoundingClientRect(); const [x, y] = st.plot.getScreenPosition(i);
    return [r.left + x, r.top + y]; }"""


HELD = """() => { const st = document.querySelector('.vx-scatter').__vxScatter; const s = st.stats;
    return {releasedBy: s.releasedBy, releases: s.releases, selectedOnMap: st.plot.get('selectedPoints').length,
            framesWhileHeld: s.frameTimes.filter(t => t > s.holdStart && t < s.holdEnd).length}; }"""
HELD_THEN_DRAWN = """() => { const s = document.querySelector('.vx-scatter').__vxScatter.stats;
    return s.holdEnd > s.holdStart && s.frameTimes.some(t => t > s.holdEnd); }"""


def box_select(page, pts: np.ndarray, pad: float = 12) -> None:
    """A box drag (the map in Box mode) around the screen points ``pts``."""
    (x0, y0), (x1, y1) = pts.min(axis=0) - pad, pts.max(axis=0) + pad
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


@pytest.mark.browser
def test_browser_hover_click_and_box_select(served, data):
    from playwright.sync_api import sync_playwright

    try:
        from tools.browser import CHROMIUM, CHROMIUM_ARGS
    except ImportError:
        from ui.browser import CHROMIUM, CHROMIUM_ARGS
    step = 60_000
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(step)
            page.goto(served)
            page.wait_for_selector(".vx-scatter[data-drawn]", state="attached")
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
            assert page.evaluate("document.querySelector('.vx-scatter').dataset.n") == str(data.emb.n)

            # hover: a thumbnail <img> (a data: URL of the cached JPEG) appears beside the cursor
            x, y = page.evaluate(SCREEN, 0)
            page.mouse.move(x - 4, y - 4)
            page.mouse.move(x, y, steps=3)
            page.wait_for_selector(".vx-scatter-tip-img[src^='data:image/jpeg;base64,']")
            relpath0 = data.emb.collection.items["relpath"].iat[0]
            assert relpath0.rsplit("/", 1)[-1] in page.inner_text(".vx-scatter-tip-text")

            # click: the image opens (a pinned panel in the map, the image and its path under the map)
            page.mouse.click(x, y)
            page.wait_for_selector(".vx-scatter-pinned-img[src^='data:image/jpeg']")
            page.get_by_text(relpath0).first.wait_for()

            # box-select one class's blob: the grid shows exactly those images
            page.click("button[data-mode=rectangle]")
            members = np.flatnonzero(data.klass == data.klass[0]).tolist()
            box_select(page, np.array([page.evaluate(SCREEN, int(i)) for i in members]))
            page.get_by_text(f"{len(members)} images selected").first.wait_for()
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
            page.wait_for_function(f"document.querySelectorAll('.vx-grid-img').length >= {len(members)}")
            captions = page.locator(".vx-grid-caption").all_inner_texts()
            names = {data.emb.collection.items["relpath"].iat[i].rsplit("/", 1)[-1] for i in members}
            assert names <= {c.strip() for c in captions} | {
                n for n in names if any(n[:20] in c for c in captions)
            }
            assert page.evaluate("document.querySelector('.vx-scatter').__vxScatter.selection.length") == len(
                members
            )

            # where frames are slow (WebGL on the CPU, a million points) the frame that highlights a new
            # selection waits until the app has answered and the grid has loaded; then the map catches up
            page.evaluate("document.querySelector('.vx-scatter').__vxScatter.alwaysHold = true")
            page.click(".vx-scatter-pinned-close")  # the opened image's panel may cover a blob
            others = np.flatnonzero(
                data.klass == (data.klass[0] + 1) % len(set(data.klass.tolist()))
            ).tolist()
            since = page.evaluate("performance.now()")
            picked = f"() => document.querySelector('.vx-scatter').__vxScatter.stats.holdStart > {since}"
            for attempt in range(2):  # a drag on a loaded machine may come too fast to register: once more
                box_select(page, np.array([page.evaluate(SCREEN, int(i)) for i in others]))
                try:
                    page.wait_for_function(picked, timeout=10_000)
                    break
                except Exception:
                    if attempt:
                        raise
            page.get_by_text(f"{len(others)} images selected").first.wait_for()
            page.wait_for_function(HELD_THEN_DRAWN)
            held = page.evaluate(HELD)
            assert held["releasedBy"] == "settled", held
            assert held["framesWhileHeld"] == 0
            assert held["selectedOnMap"] == len(others)
            assert sorted(
                page.evaluate("Array.from(document.querySelector('.vx-scatter').__vxScatter.selection)")
            ) == sorted(others)
            captions = {c.strip() for c in page.locator(".vx-grid-caption").all_inner_texts()}
            names = {data.emb.collection.items["relpath"].iat[i].rsplit("/", 1)[-1] for i in others}
            assert names <= captions | {n for n in names if any(n[:20] in c for c in captions)}
        finally:
            browser.close()
