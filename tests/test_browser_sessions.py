"""Saved work survives a server crash, in a real browser.

The app on a small copy of the demo folder (the real bundled model), rename a cluster, ``kill -9`` the server
right after, start it again on the same cache, and a new browser session reopens the folder with the renamed
cluster and says so. Then undo on the Load page takes the rename back, and a second restart shows that too.

Chromium is Debian's (/usr/bin/chromium); skipped when it is missing. Every wait is bounded;
every server this test starts is stopped (by its process group id).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tools.browser import CHROMIUM, CHROMIUM_ARGS, demo_subset, free_port, serve_command, wait_healthy

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("bird", "flower", "vehicle")
PER_CLASS = 6  # 18 images: a PCA map, no UMAP compilation
FIRST_LOAD_S = 300  # cold cache and model loading on 2 slow cores
STEP_S = 180
NEW_NAME = "saved across a crash"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
    base = tmp_path_factory.mktemp("sessions-browser")
    folder = demo_subset(base / "images", CLASSES, PER_CLASS)
    env = {
        **os.environ,
        "VLEXPLORE_FOLDER": str(folder),
        "VLEXPLORE_CACHE_DIR": str(base / "cache"),
        "VLEXPLORE_ROOTS": str(base),
        "VLEXPLORE_WARM_UMAP": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return base, env


class Server:
    """The app served headless in its own process group."""

    def __init__(self, base: Path, env: dict, n: int):
        self.port = free_port()
        self.log_path = base / f"server-{n}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            serve_command(REPO / "app.py", self.port),
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_healthy(self.url, self.proc)

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()


def wait_idle(page, timeout_s: float = STEP_S) -> None:
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_s * 1000
    )


def open_app(p, url: str):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    page.set_default_timeout(STEP_S * 1000)
    page.goto(url)
    page.get_by_role("heading", name="Clusters").first.wait_for(timeout=FIRST_LOAD_S * 1000)
    wait_idle(page, FIRST_LOAD_S)
    return browser, page


def test_an_edit_survives_kill_9_and_reopens_after_restart(setup):
    from playwright.sync_api import sync_playwright

    base, env = setup
    servers: list[Server] = []
    try:
        with sync_playwright() as p:
            servers.append(Server(base, env, 1))
            browser, page = open_app(p, servers[-1].url)
            assert "Reopened" not in page.inner_text('[data-testid="stMain"]')
            page.get_by_role("button", name="Rename").first.click()
            box = page.get_by_role("textbox", name="New name")
            box.fill(NEW_NAME)
            box.press("Enter")
            page.get_by_text(f"to “{NEW_NAME}”").first.wait_for()  # the edit has returned
            wait_idle(page)
            browser.close()
            servers[-1].kill9()  # right after the edit: nothing may be lost

            servers.append(Server(base, env, 2))
            browser, page = open_app(p, servers[-1].url)
            main = page.locator('[data-testid="stMain"]')
            page.get_by_text("Reopened your saved work on this folder (1 edit").wait_for()
            wait_idle(page)  # the notice is drawn before the cluster list: read the page once its run is over
            assert NEW_NAME in main.inner_text()

            # undo on the Load page, then one more restart: the rename is gone for good
            page.locator('[data-testid="stSidebarNav"] a').filter(
                has=page.get_by_text("Load", exact=True)
            ).first.click()
            wait_idle(page)
            page.get_by_role("button", name="Undo last edit").click()
            page.get_by_text("Undone: renamed cluster").wait_for()
            wait_idle(page)
            browser.close()
            servers[-1].kill9()

            servers.append(Server(base, env, 3))
            browser, page = open_app(p, servers[-1].url)
            # (open_app waited for the Clusters page) the undone rename left a default clustering without
            # edits: it is reopened, and there is nothing to say about it
            assert "Reopened" not in page.locator('[data-testid="stMain"]').inner_text()
            assert NEW_NAME not in page.locator('[data-testid="stMain"]').inner_text()
            browser.close()
    finally:
        for server in servers:
            server.stop()
