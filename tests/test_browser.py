"""End-to-end in a real browser: the app on a small copy of the demo folder, the real bundled model.

load (auto-start) → cluster with prototypes "bird, flower, fruit" → on the WebGL map: hover (thumbnail),
click (the image opens), lasso (the grid shows the selection) and name the selection → download the CSV
and check it. Chromium is Debian's (/usr/bin/chromium); the test is skipped when it is missing.
Every wait is bounded; the server is always stopped.
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from tools.browser import CHROMIUM, CHROMIUM_ARGS, demo_subset, served

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("bird", "flower", "fruit", "coin", "vehicle", "musical_instrument")
PER_CLASS = 8
N_IMAGES = len(CLASSES) * PER_CLASS
FIRST_LOAD_S = 300  # cold cache, model loading, numba compiling UMAP: generous on 2 slow cores
STEP_S = 180
EXPORT_COLUMNS = ["path", "cluster_id", "cluster_label", "umap_x", "umap_y", "caption", "similarity"]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
    base = tmp_path_factory.mktemp("browser")
    folder = demo_subset(base / "images", CLASSES, PER_CLASS)
    env = {
        **os.environ,
        "VLEXPLORE_FOLDER": str(folder),
        "VLEXPLORE_CACHE_DIR": str(base / "cache"),
        "VLEXPLORE_ROOTS": str(base),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    with served(REPO / "app.py", cwd=REPO, env=env, log=base / "server.log") as url:
        yield url


@pytest.fixture
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        pg = context.new_page()
        pg.set_default_timeout(STEP_S * 1000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def wait_idle(page, timeout_s: float = STEP_S) -> None:
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_s * 1000
    )
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0", timeout=timeout_s * 1000
    )


def goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(
        has=page.get_by_text(title, exact=True)
    ).first.click()
    page.wait_for_timeout(300)
    wait_idle(page)


SCREEN = """(i) => { const st = document.querySelector('.vx-scatter').__vxScatter;
    const r = st.dom.canvas.getBoundingClientRect(); const [x, y] = st.plot.getScreenPosition(i);
    return [r.left + x, r.top + y]; }"""


def lasso(page, box: tuple[float, float, float, float], steps: int = 4) -> None:
    """A freeform lasso along the edges of ``box`` (screen pixels).

    Pausing at each corner so the component records it.
    """
    x0, y0, x1, y1 = box
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)):
        page.mouse.move(x, y, steps=steps)
        page.wait_for_timeout(60)
    page.mouse.up()


def test_main_path_in_a_real_browser(page, app_url, tmp_path):
    # 1. start-up: the folder is scanned, embedded with the bundled model and clustered with no click
    t0 = time.monotonic()
    page.goto(app_url)
    try:
        page.get_by_role("heading", name="Clusters").first.wait_for(timeout=FIRST_LOAD_S * 1000)
        wait_idle(page, FIRST_LOAD_S)
    except Exception:
        print(
            f"no clusters after {time.monotonic() - t0:.0f} s; the server's threads and log:\n{app_url.report()}"
        )
        raise
    print(f"clusters on screen after {time.monotonic() - t0:.1f} s (cold cache)")
    sidebar = page.locator('[data-testid="stSidebarUserContent"]')
    assert f"{N_IMAGES} images" in sidebar.inner_text()
    assert page.locator(".vx-grid-img[src^='data:image/jpeg']").count() >= 8  # the grid component

    # 2. re-cluster with text prototypes
    goto(page, "Cluster")
    page.get_by_text("text prototypes", exact=True).click()
    wait_idle(page)
    page.get_by_role("textbox", name="Prototypes").fill("bird, flower, fruit")
    page.get_by_role("button", name="Cluster", exact=True).click()
    page.get_by_text("text prototypes: 3 clusters").wait_for()
    wait_idle(page)
    table = page.locator('[data-testid="stDataFrame"]').first.inner_text()
    assert "bird" in table or page.get_by_text("bird (").count() > 0

    # 3. the map (WebGL): hover shows the thumbnail, a click opens the image, a lasso around the first
    #    cluster's points fills the grid; then name the selection as a new cluster
    goto(page, "Map")
    page.wait_for_selector(".vx-scatter[data-drawn]", state="attached")
    # a quick layout stands in while UMAP is computed; the page swaps UMAP's in by itself
    quick = page.get_by_text("the UMAP layout is being computed")
    print(f"quick layout shown first: {quick.count() > 0}")
    quick.wait_for(state="detached", timeout=FIRST_LOAD_S * 1000)
    page.wait_for_selector(".vx-scatter[data-drawn]", state="attached")
    wait_idle(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 0  # the WebGL map is the default
    assert page.evaluate("document.querySelector('.vx-scatter').dataset.n") == str(N_IMAGES)
    names = {f.name for f in (REPO / "demo").glob("*/*.jpg")}

    x, y = page.evaluate(SCREEN, 0)
    page.mouse.move(x - 5, y - 5)
    page.mouse.move(x, y, steps=3)
    tip = page.locator(".vx-scatter-tip-img[src^='data:image/jpeg;base64,']")
    tip.wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('.vx-scatter-tip-img'); return i.complete && i.naturalWidth > 0; }"
    )
    hovered = page.evaluate("document.querySelector('.vx-scatter').__vxScatter.hovered")
    assert tip.get_attribute("data-index") == str(hovered)
    hover_name = page.inner_text(".vx-scatter-tip-text").split(" · ")[0]
    assert hover_name in names  # the file's name under its thumbnail

    page.mouse.click(x, y)  # opens the image: in the map, and with its path and cluster under it
    page.wait_for_selector(".vx-scatter-pinned-img[src^='data:image/jpeg']")
    clicked = page.evaluate("Number(document.querySelector('.vx-scatter-pinned').dataset.index)")
    clicked_name = page.inner_text(".vx-scatter-pinned-text").split(" · ")[0]
    assert clicked_name in names
    page.locator('[data-testid="stMarkdown"]').filter(has_text=clicked_name).first.wait_for()
    wait_idle(page)
    assert page.locator('[data-testid="stImage"]').count() >= 1

    category = page.evaluate("Array.from(document.querySelector('.vx-scatter').__vxScatter.points.category)")
    members = [i for i, c in enumerate(category) if c == category[clicked]]
    pts = [page.evaluate(SCREEN, i) for i in members]
    pad = 10
    box = (
        min(p[0] for p in pts) - pad,
        min(p[1] for p in pts) - pad,
        max(p[0] for p in pts) + pad,
        max(p[1] for p in pts) + pad,
    )
    lasso(page, box)
    count = page.get_by_text(re.compile(r"^[\d,]+ images? selected$")).first
    count.wait_for()
    wait_idle(page)
    n_selected = int(count.inner_text().split()[0].replace(",", ""))
    selected = page.evaluate("Array.from(document.querySelector('.vx-scatter').__vxScatter.selection)")
    assert set(members) <= set(selected)
    assert len(selected) == n_selected
    assert page.locator(".vx-grid-img").count() >= min(n_selected, 48)
    page.get_by_role("textbox", name="Name them as a new cluster").fill("picked on the map")
    page.get_by_role("textbox", name="Name them as a new cluster").press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Create cluster").click()
    page.get_by_text(f"with {n_selected} images").wait_for()
    wait_idle(page)

    # 4. export: the CSV carries the edit
    goto(page, "Export")
    with page.expect_download(timeout=STEP_S * 1000) as info:
        page.get_by_role("button", name="Download CSV").click()
    target = tmp_path / "clusters.csv"
    info.value.save_as(target)
    df = pd.read_csv(io.StringIO(target.read_text(encoding="utf-8")))
    assert list(df.columns[: len(EXPORT_COLUMNS)]) == EXPORT_COLUMNS
    assert len(df) == N_IMAGES
    assert (df["cluster_label"] == "picked on the map").sum() == n_selected
    assert set(df["cluster_label"]) - {"picked on the map"} <= {"bird", "flower", "fruit"}
    assert df["similarity"].between(-1, 1).all()
