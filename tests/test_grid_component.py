"""The thumbnail grid component (ui/grid.py, ui/grid_frontend/grid.js).

Pure item building, the component in AppTest (element present and fed with data URLs; AppTest runs no
JavaScript), and a real browser on a small folder: thumbnails shown as data URLs, "Similar" opens the Search
page with that image's neighbours, ticking images in select mode selects them.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from test_map_component import data, env, seeded  # noqa: F401 - fixtures

from ui import grid

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"


def test_grid_items_inline_thumbnails_and_say_why_one_is_missing(data, tmp_path):  # noqa: F811
    import vlexplore as vx

    relpaths = data.emb.collection.items["relpath"]
    jpeg = vx.thumbnail(data.emb.collection, relpaths.iat[0], cache_dir=data.cache)
    thumbs = {0: jpeg, 1: vx.VlexploreError("unreadable"), 2: next(data.root.rglob("*.png"))}
    items = grid.grid_items([0, 1, 2], thumbs, relpaths.iat.__getitem__, captions={2: "two"}, selected={1})
    assert [it["i"] for it in items] == [0, 1, 2]
    assert items[0]["src"].startswith("data:image/jpeg;base64,")
    assert items[0]["caption"] == relpaths.iat[0].rsplit("/", 1)[-1]
    assert items[0]["title"] == relpaths.iat[0]
    assert not items[0]["error"]
    assert items[1]["src"] == ""
    assert items[1]["error"].endswith(": unreadable")
    assert items[1]["selected"]
    assert items[2]["caption"] == "two"
    assert "not a cached JPEG thumbnail" in items[2]["error"]  # never a full-size original


def _grids(at) -> list[dict]:
    return [json.loads(e.proto.json) for e in at.get("bidi_component") if e.proto.component_name == grid.NAME]


def test_clusters_page_draws_one_component_per_card(data, env):  # noqa: F811
    from streamlit.testing.v1 import AppTest

    from ui.state import KEY

    assert grid.available()
    s = seeded(data)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[KEY] = s
    at.run()
    at.switch_page("views/clusters.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.image  # no st.image: the component draws the thumbnails
    grids = _grids(at)
    assert len(grids) == 3
    items = [it for g in grids for it in g["items"]]
    assert len(items) == data.emb.n
    assert all(it["src"].startswith("data:image/jpeg;base64,") for it in items)
    assert all(g["similar"] and not g["selectable"] and g["columns"] == 8 for g in grids)
    at.toggle(key="select_mode").set_value(True).run()
    assert all(g["selectable"] for g in _grids(at))
    assert not [c for c in at.checkbox if c.key and "-sel-" in c.key]


# ------------------------------------------------------------------------------------- browser

SERVE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    import streamlit as st
    from test_map_component import make_data, seeded
    from ui.state import KEY

    st.set_page_config(layout="wide")
    if KEY not in st.session_state:  # the test's folder, embedded (fake encoder, cached) and clustered
        st.session_state[KEY] = seeded(make_data(Path({base!r})))
    st.navigation([st.Page("views/clusters.py", title="Clusters", default=True),
                   st.Page("views/search.py", title="Search")]).run()
""")


@pytest.fixture(scope="module")
def served(data, tmp_path_factory):  # noqa: F811
    from tools.browser import CHROMIUM, served

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; the browser test needs it")
    pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("gridserve")
    script = tmp / "serve_grid.py"
    script.write_text(SERVE.format(repo=str(REPO), tests=str(REPO / "tests"), base=str(data.base)))
    (tmp / "views").symlink_to(REPO / "views")  # st.switch_page("views/search.py") resolves from here
    (tmp / ".streamlit").mkdir()
    (tmp / ".streamlit" / "config.toml").write_text((REPO / ".streamlit" / "config.toml").read_text())
    server_env = {
        **os.environ,
        "VLEXPLORE_ROOTS": str(data.base),
        "VLEXPLORE_CACHE_DIR": str(data.cache),
        "HF_HUB_OFFLINE": "1",
        "VLEXPLORE_WARM_UMAP": "0",
    }
    server_env.pop("VLEXPLORE_FOLDER", None)
    with served(script, cwd=tmp, env=server_env, log=tmp / "server.log", timeout=90) as url:
        yield url


IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
DECODED = "n => [...document.querySelectorAll('.vx-grid-img')].filter(i => i.complete && i.naturalWidth > 0).length >= n"


@pytest.mark.browser
def test_browser_grid_similar_and_select(served, data):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from tools.browser import CHROMIUM, CHROMIUM_ARGS

    n = data.emb.n
    relpaths = data.emb.collection.items["relpath"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(served)
            page.get_by_role("heading", name="Clusters").first.wait_for()
            page.wait_for_selector(IDLE)
            page.wait_for_function(DECODED, arg=n)
            assert page.locator(".vx-grid-img[src^='data:image/jpeg;base64,']").count() == n
            assert page.locator('[data-testid="stImage"]').count() == 0

            # "Similar" under the first thumbnail: the Search page with that image's neighbours
            first = page.locator(".vx-grid-cell").first
            i = int(first.get_attribute("data-index"))
            first.get_by_role("button", name="Similar").click()
            page.get_by_role("heading", name="Search").first.wait_for()
            page.get_by_text(f"more like: {relpaths.iat[i]}").first.wait_for()
            page.wait_for_selector(IDLE)
            page.wait_for_function(DECODED, arg=5)
            titles = [c.get_attribute("title") for c in page.locator(".vx-grid-img").all()]
            klass = relpaths.iat[i].split("/")[0]
            assert relpaths.iat[i] not in titles
            assert all(t.startswith(f"{klass}/") for t in titles[:5]), titles[:5]

            # select mode: ticking two images selects them (the selection's actions appear), unticking one
            page.locator('[data-testid="stSidebarNav"] a').filter(
                has=page.get_by_text("Clusters")
            ).first.click()
            page.get_by_role("heading", name="Clusters").first.wait_for()
            page.wait_for_selector(IDLE)
            page.get_by_text("Select images (tick them").click()
            page.wait_for_selector(".vx-grid-check")
            page.wait_for_selector(IDLE)
            boxes = page.locator(".vx-grid-check")
            boxes.nth(0).check()
            page.get_by_text("1 image selected").wait_for()
            page.wait_for_selector(IDLE)
            boxes.nth(1).check()
            page.get_by_text("2 images selected").wait_for()
            page.get_by_text("…or move them to").first.wait_for()
            page.get_by_role("button", name="Create cluster").wait_for()
            page.wait_for_selector(IDLE)
            assert page.locator(".vx-grid-cell.vx-selected").count() == 2
            boxes.nth(0).uncheck()
            page.get_by_text("1 image selected").wait_for()
            page.screenshot(path="/tmp/gridwork/test_select.png")
        finally:
            browser.close()
