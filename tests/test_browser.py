"""End-to-end in a real browser: the app on a small copy of the demo folder, the real bundled model.

load (auto-start) → cluster with prototypes "bird, flower, fruit" → box-select on the map and name
the selection → download the CSV and check it. Chromium is Debian's (/usr/bin/chromium);
the test is skipped when it is missing. Every wait is bounded; the server is always stopped.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tools.browser import CHROMIUM, CHROMIUM_ARGS, free_port, serve_command, wait_healthy

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
    folder = base / "images"
    for label in CLASSES:
        files = sorted((REPO / "demo" / label).glob("*.jpg"))[:PER_CLASS]
        (folder / label).mkdir(parents=True)
        for f in files:
            shutil.copy(f, folder / label / f.name)
    port = free_port()
    env = {
        **os.environ,
        "VLEXPLORE_FOLDER": str(folder),
        "VLEXPLORE_CACHE_DIR": str(base / "cache"),
        "VLEXPLORE_ROOTS": str(base),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    log = (base / "server.log").open("wb")
    proc = subprocess.Popen(
        serve_command(REPO / "app.py", port),
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
        if proc.returncode not in (0, -signal.SIGTERM):
            print((base / "server.log").read_text(errors="replace")[-4000:])


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


def box_around_trace(page, trace: int, pad: float = 6.0) -> tuple[float, float, float, float]:
    """Screen box around every point of ``trace`` (plotly's own axis mapping, so no guessing)."""
    return page.evaluate(
        """([trace, pad]) => {
            const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
            const fd = gd._fullData[trace];
            const xs = Array.from(fd.x, v => xa.l2p(v)), ys = Array.from(fd.y, v => ya.l2p(v));
            return [r.left + Math.min(...xs) - pad, r.top + Math.min(...ys) - pad,
                    r.left + Math.max(...xs) + pad, r.top + Math.max(...ys) + pad];
        }""",
        [trace, pad],
    )


def test_main_path_in_a_real_browser(page, app_url, tmp_path):
    # 1. start-up: the folder is scanned, embedded with the bundled model and clustered with no click
    t0 = time.monotonic()
    page.goto(app_url)
    page.get_by_role("heading", name="Clusters").first.wait_for(timeout=FIRST_LOAD_S * 1000)
    wait_idle(page, FIRST_LOAD_S)
    print(f"clusters on screen after {time.monotonic() - t0:.1f} s (cold cache)")
    sidebar = page.locator('[data-testid="stSidebarUserContent"]')
    assert f"{N_IMAGES} images" in sidebar.inner_text()
    assert page.locator('[data-testid="stImage"]').count() >= 8

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

    # 3. the map: box-select the points of the first trace and name them as a new cluster
    goto(page, "Map")
    plot = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first
    plot.wait_for()
    n_trace0 = page.evaluate(
        "document.querySelector('[data-testid=\"stPlotlyChart\"] .js-plotly-plot')._fullData[0]._length"
    )
    assert n_trace0 > 0
    plot.hover()
    page.locator('.modebar-btn[data-val="select"]').first.click()
    x0, y0, x1, y1 = box_around_trace(page, 0)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=6)
    page.mouse.move(x1, y1, steps=6)
    page.mouse.up()
    count = page.get_by_text(re.compile(r"^[\d,]+ images? selected$")).first
    count.wait_for()
    wait_idle(page)
    n_selected = int(count.inner_text().split()[0].replace(",", ""))
    assert n_selected >= n_trace0
    assert page.locator('[data-testid="stImage"]').count() == min(n_selected, 48)
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
