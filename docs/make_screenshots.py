"""Screenshots of every page of the app, into docs/screenshots/.

    .venv/bin/python docs/make_screenshots.py                   # starts the app on demo/ itself
    .venv/bin/python docs/make_screenshots.py --url http://localhost:8501   # a running `make run`

Uses Debian's Chromium (/usr/bin/chromium) through Playwright; never downloads a browser.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tools.browser import CHROMIUM, CHROMIUM_ARGS, free_port, serve_command, wait_healthy  # noqa: E402


def start_app(folder: str, port: int, env: dict | None = None) -> subprocess.Popen:
    """``streamlit run app.py`` on ``folder`` (like ``make run``), on ``port``."""
    full_env = {**os.environ, "VLEXPLORE_FOLDER": folder, "HF_HUB_OFFLINE": "1", **(env or {})}
    cmd = serve_command(REPO / "app.py", port)
    return subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_idle(page, timeout: float = 120_000) -> None:
    """Until the script has finished and every element has rendered (no loading skeletons)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0", timeout=timeout
    )
    page.wait_for_timeout(500)


def goto(page, title: str, timeout: float = 120_000) -> None:
    """Click the sidebar link named ``title`` (exactly) and wait (up to ``timeout`` ms) for the page to render."""
    page.locator('[data-testid="stSidebarNav"] a').filter(
        has=page.get_by_text(title, exact=True)
    ).first.click()
    page.wait_for_timeout(300)
    wait_idle(page, timeout)


def snap(page, path: Path, *, max_height: int = 3000) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it."""
    height = page.evaluate(
        'Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], [data-testid="stMainBlockContainer"]\')]'
        ".map(e => e.scrollHeight), 900)"
    )
    page.set_viewport_size({"width": 1440, "height": min(int(height) + 40, max_height)})
    page.wait_for_timeout(600)
    page.screenshot(path=path)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.wait_for_timeout(200)


MAP_DRAWN = ".vx-scatter[data-drawn]"


def wait_map(page, timeout: float = 120_000) -> None:
    """Until the WebGL map has drawn every point (the component marks its root ``data-drawn``)."""
    page.wait_for_selector(MAP_DRAWN, state="attached", timeout=timeout)


def box_select(page, frac=(0.35, 0.35, 0.65, 0.65)) -> None:
    """Drag a box over the WebGL map (its Box mode), ``frac`` = left, top, right, bottom of the canvas."""
    wait_map(page)
    page.click(".vx-scatter button[data-mode=rectangle]")
    box = page.locator(".vx-scatter-canvas canvas").first.bounding_box()
    x0, y0 = box["x"] + box["width"] * frac[0], box["y"] + box["height"] * frac[1]
    x1, y1 = box["x"] + box["width"] * frac[2], box["y"] + box["height"] * frac[3]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=3)
    page.mouse.move(x1, y1, steps=3)
    page.mouse.up()


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        t0 = time.monotonic()
        page.goto(url)
        page.get_by_role("heading", name="Clusters").first.wait_for(timeout=300_000)
        wait_idle(page, timeout=300_000)
        print(f"clusters on screen after {time.monotonic() - t0:.1f} s")
        snap(page, out / "clusters.png")

        goto(page, "Map")
        wait_map(page)
        snap(page, out / "map.png")
        box_select(page)
        wait_idle(page)
        page.get_by_text("selected", exact=False).first.wait_for(timeout=30_000)
        wait_idle(page)
        # no stale hover thumbnail in the picture: move out of the map
        page.mouse.move(5, 5, steps=3)
        page.wait_for_timeout(800)
        snap(page, out / "map-selection.png")

        goto(page, "Cluster")
        page.get_by_text("text prototypes").click()
        wait_idle(page)
        page.get_by_role("textbox", name="Prototypes").fill("shoe, bag, shirt")
        page.get_by_role("button", name="Cluster", exact=True).click()
        page.get_by_text("text prototypes:").first.wait_for(timeout=120_000)
        wait_idle(page)
        snap(page, out / "cluster.png")

        for title in ("Evaluate", "Export", "Load"):
            goto(page, title)
            snap(page, out / f"{title.lower()}.png")
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running app (default: start one on --folder)")
    ap.add_argument("--folder", default="demo")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = ap.parse_args()
    if args.url:
        shoot(args.url.rstrip("/"), args.out)
        return
    port = free_port()
    proc = start_app(args.folder, port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        shoot(url, args.out)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
