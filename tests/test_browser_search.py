"""Search end-to-end in a real browser (the app on a small copy of the demo folder, the bundled model).

Type a query in the sidebar's search box of the Clusters page, press Enter, see the ranked grid; then
"Similar" under a result searches again. Same server and browser fixtures as tests/test_browser.py.
"""

from __future__ import annotations

import re

import pytest
from test_browser import CLASSES, FIRST_LOAD_S, PER_CLASS, REPO, app_url, page, wait_idle  # noqa: F401

pytestmark = pytest.mark.browser


def result_captions(page) -> list[str]:  # noqa: F811
    return [t.strip() for t in page.locator(".vx-grid-caption").all_inner_texts()]


def test_search_from_the_sidebar_shows_a_ranked_grid(page, app_url):  # noqa: F811
    page.goto(app_url)
    page.get_by_role("heading", name="Clusters").first.wait_for(timeout=FIRST_LOAD_S * 1000)
    wait_idle(page, FIRST_LOAD_S)

    box = page.locator('[data-testid="stSidebarUserContent"]').get_by_placeholder("search images")
    box.fill("bird")
    box.press("Enter")
    page.get_by_role("heading", name="Search").first.wait_for()
    page.get_by_text("nearest to").first.wait_for()
    wait_idle(page)
    captions = result_captions(page)
    assert len(captions) == 24  # the default number of results, with rank, score and file name
    ranks = [int(re.match(r"(\d+)\. (-?[01]\.\d{3}) · ", c).group(1)) for c in captions]
    assert ranks == list(range(1, 25))
    scores = [float(re.match(r"\d+\. (-?[01]\.\d{3})", c).group(1)) for c in captions]
    assert scores == sorted(scores, reverse=True)
    names = [f.name for f in sorted((REPO / "demo" / "bird").glob("*.jpg"))[:PER_CLASS]]
    birds = {n if len(n) <= 20 else n[:19] + "…" for n in names}  # (as the captions cut them)
    top = [c.split(" · ", 1)[1] for c in captions[:PER_CLASS]]
    assert sum(name in birds for name in top) >= PER_CLASS // 2, top  # mostly birds first

    # more like this: the first result's "Similar" button searches with that image
    page.get_by_role("button", name="Similar").first.click()
    page.get_by_text("more like:").first.wait_for()
    wait_idle(page)
    assert len(result_captions(page)) == min(24, len(CLASSES) * PER_CLASS - 1)
