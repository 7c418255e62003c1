"""The Map view's figure at scale in a real browser: first render and box-selection round trip.

    .venv/bin/python bench/map_scale.py                     # 10,000 and 70,000 points
    .venv/bin/python bench/map_scale.py --sizes 70000 --repeats 5

For each size a synthetic UMAP-like layout (``n`` points in 10 Gaussian blobs, one per cluster,
2 % noise; cluster names and ``relpath<br>caption`` hover texts as the Map view makes them) is
turned into the figure by the Map view's own builder, ``vlexplore.plots.scatter_map``. A throwaway
Streamlit script in a temp dir (importing ``vlexplore.plots`` from the repo) builds it once per server
(``st.cache_resource``, like the view's per-version memo) and draws it exactly as ``views/map.py``
does: ``st.plotly_chart(fig, on_select="rerun", selection_mode=("lasso", "box"))``, followed by a
line ``RUN <k> SELECTED <n>`` (``n`` = ``len(event.selection.points)``).

Measured with Debian chromium (headless, ``--disable-gpu``: WebGL is software-rendered) via playwright:

* ``build_s`` / ``json_mb``: in this process, ``scatter_map`` and ``fig.to_json()`` (what each
  rerun serialises and sends);
* ``page_text_s``: ``page.goto`` → the ``RUN`` line under the chart shows (Streamlit page up, script
  run done, figure received), for comparison with
* ``first_render_s``: ``page.goto`` → the plot is drawn: ``.js-plotly-plot .main-svg`` present,
  every trace in ``_fullData``, the scattergl canvas present, all cluster labels drawn, then two
  animation frames. ``cold`` = first page load of the server (figure built there), ``warm`` =
  later loads in fresh browser contexts (median of ``--repeats``);
* ``select_s``: a box drag (modebar "Box Select", mouse down/move/up around one cluster's points,
  aimed with plotly's own axis mapping as in ``tests/test_browser.py``) → mouse up → the page shows
  the new ``RUN``/``SELECTED`` line (browser → server → rerun → browser). ``drag_s`` is the drag itself.

Results go to ``bench/results/app.json`` under ``"map"`` (other keys are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(
    1, str(Path(__file__).resolve().parent.parent)
)  # the repo, for vlexplore.plots and tools.browser
from app_start import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, loadavg, merge_results, stop_server

from tools.browser import serve_command

NAMES = [
    "sneaker, white sole",
    "ankle boot",
    "handbag",
    "t-shirt, print",
    "trousers, denim",
    "pullover, knit",
    "summer dress",
    "sandal, strap",
    "coat, long",
    "shirt, collar",
]
CAPTIONS = ["a photo of a {} on a white background", "a close-up of a {}", "a {} lying on a table"]

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {bench!r})
    import streamlit as st
    from map_scale import make_figure

    st.set_page_config(layout="wide")
    fig = st.cache_resource(make_figure)({n})
    st.session_state["runs"] = st.session_state.get("runs", 0) + 1
    event = st.plotly_chart(fig.figure, key="map", on_select="rerun", selection_mode=("lasso", "box"),
                            config={{"displaylogo": False, "scrollZoom": True}}, width="stretch")
    points = list(event.selection.points) if event is not None and event.selection else []
    st.markdown(f"RUN {{st.session_state['runs']}} SELECTED {{len(points)}}")
""")

RENDERED = """(nTraces) => {
    const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    if (!gd || !gd.querySelector('.main-svg') || !gd._fullData || gd._fullData.length !== nTraces) return false;
    if (!gd.querySelector('canvas.gl-canvas-context, canvas.gl-canvas')) return false;
    return gd.querySelectorAll('.annotation').length === (gd.layout.annotations || []).length;
}"""
FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
BOX = """([trace, pad]) => {
    const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
    const fd = gd._fullData[trace];
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < fd.x.length; i++) {
        const px = xa.l2p(fd.x[i]), py = ya.l2p(fd.y[i]);
        if (px < x0) x0 = px; if (px > x1) x1 = px; if (py < y0) y0 = py; if (py > y1) y1 = py;
    }
    return [r.left + x0 - pad, r.top + y0 - pad, r.left + x1 + pad, r.top + y1 + pad];
}"""
WEBGL = """() => { const c = document.createElement('canvas'); const g = c.getContext('webgl');
    if (!g) return null; const d = g.getExtension('WEBGL_debug_renderer_info');
    return d ? g.getParameter(d.UNMASKED_RENDERER_WEBGL) : g.getParameter(g.RENDERER); }"""
STATUS = re.compile(r"RUN (\d+) SELECTED (\d+)")


def synthetic(n: int, seed: int = 0):
    """``n`` 2-d points in 10 blobs (+2 % noise), labels, names and hover texts."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.uniform(-12, 12, size=(10, 2))
    labels = rng.choice(10, size=n, p=np.linspace(2, 1, 10) / np.linspace(2, 1, 10).sum())
    coords = centres[labels] + rng.normal(scale=rng.uniform(0.6, 1.6, 10)[labels, None], size=(n, 2))
    labels[rng.random(n) < 0.02] = -1
    names = {i: NAMES[i] for i in range(10)} | {-1: "other"}
    hover = [
        (
            f"photos/{2015 + i % 9}/{NAMES[max(c, 0)].split(',')[0].replace(' ', '_')}_{i:06d}.jpg",
            CAPTIONS[i % 3].format(NAMES[max(c, 0)].split(",")[0]),
        )
        for i, c in enumerate(labels)
    ]
    return coords.astype("float32"), labels, names, hover


def make_figure(n: int, data=None):
    from vlexplore import edit, plots

    coords, labels, names, hover = synthetic(n) if data is None else data
    order = edit.cluster_order(labels)
    return plots.scatter_map(coords, labels, names, order, plots.cluster_colours(order), hover=hover)


def status(page) -> tuple[int, int]:
    m = STATUS.search(page.locator('[data-testid="stMarkdown"]').last.inner_text())
    return (int(m.group(1)), int(m.group(2))) if m else (0, -1)


def load_once(browser, url: str, n_traces: int, timeout_ms: float) -> tuple[float, float, object, object]:
    """Fresh context, ``goto``: (seconds until the script's last line shows, until the plot is drawn)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    t0 = time.monotonic()
    page.goto(url)
    page.get_by_text(STATUS).first.wait_for(timeout=timeout_ms)
    t_text = time.monotonic() - t0
    page.wait_for_function(RENDERED, arg=n_traces, polling=50, timeout=timeout_ms)
    page.evaluate(FRAMES)
    return round(t_text, 3), round(time.monotonic() - t0, 3), context, page


def select_once(page, trace: int, timeout_ms: float) -> dict:
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.hover()
    page.locator('.modebar-btn[data-val="select"]').first.click()
    runs_before, _ = status(page)
    x0, y0, x1, y1 = page.evaluate(BOX, [trace, 6.0])
    t0 = time.monotonic()
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=6)
    page.mouse.move(x1, y1, steps=6)
    page.mouse.up()
    t_up = time.monotonic()
    page.wait_for_function(
        """(before) => { const els = document.querySelectorAll('[data-testid="stMarkdown"]');
            const m = /RUN (\\d+) SELECTED (\\d+)/.exec(els.length ? els[els.length - 1].innerText : '');
            return m && +m[1] > before && +m[2] > 0; }""",
        arg=runs_before,
        polling=20,
        timeout=timeout_ms,
    )
    t_done = time.monotonic()
    _, n_sel = status(page)
    n_trace = page.evaluate(f"document.querySelector('.js-plotly-plot')._fullData[{trace}]._length")
    return {
        "trace": trace,
        "trace_points": n_trace,
        "selected": n_sel,
        "drag_s": round(t_up - t0, 3),
        "select_s": round(t_done - t_up, 3),
    }


def bench_size(browser, n: int, repeats: int, timeout_s: float) -> dict:
    import subprocess

    import vlexplore.plots  # noqa: F401 - imports are not the builder's time

    data = synthetic(n)
    t0 = time.perf_counter()
    fig = make_figure(n, data)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    size = len(fig.figure.to_json())
    json_s = time.perf_counter() - t0
    out = {
        "n_points": n,
        "n_traces": len(fig.members),
        "hover_text": fig.figure.data[0].text is not None,
        "build_s": round(build_s, 3),
        "to_json_s": round(json_s, 3),
        "json_mb": round(size / 1e6, 2),
        "loadavg_start": loadavg(),
    }
    timeout_ms = timeout_s * 1000
    with tempfile.TemporaryDirectory(prefix="vx-mapscale-") as tmp:
        script = Path(tmp) / "map_app.py"
        script.write_text(SCRIPT.format(root=str(ROOT), bench=str(ROOT / "bench"), n=n))
        port = free_port()
        log = (Path(tmp) / "server.log").open("wb")
        proc = subprocess.Popen(
            serve_command(script, port), cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            from app_start import wait_healthy

            wait_healthy(url, proc, time.monotonic() + 60)
            text_cold, cold, ctx, _ = load_once(browser, url, len(fig.members), timeout_ms)
            ctx.close()
            warm, text_warm, selects = [], [], []
            for i in range(repeats):
                t_text, t, ctx, page = load_once(browser, url, len(fig.members), timeout_ms)
                warm.append(t)
                text_warm.append(t_text)
                if i == 0:
                    out["webgl_renderer"] = page.evaluate(WEBGL)
                    out["viewport"] = "1440x1000"
                selects.append(select_once(page, trace=i % len(fig.members), timeout_ms=timeout_ms))
                ctx.close()
            out["page_text_cold_s"] = text_cold
            out["page_text_warm_median_s"] = round(statistics.median(text_warm), 3)
            out["first_render_cold_s"] = cold
            out["first_render_warm_s"] = warm
            out["first_render_warm_median_s"] = round(statistics.median(warm), 3)
            out["selections"] = selects
            out["select_median_s"] = round(statistics.median(s["select_s"] for s in selects), 3)
            out["drag_median_s"] = round(statistics.median(s["drag_s"] for s in selects), 3)
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.flush()
            print((Path(tmp) / "server.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        finally:
            stop_server(proc)
            log.close()
    out["loadavg_end"] = loadavg()
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 70_000])
    ap.add_argument(
        "--repeats", type=int, default=3, help="warm page loads, each followed by one box selection"
    )
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per wait")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            results = [bench_size(browser, n, args.repeats, args.timeout) for n in args.sizes]
        finally:
            browser.close()
    merge_results(
        "map",
        {
            "what": "vlexplore.plots.scatter_map figure in st.plotly_chart(on_select='rerun'), headless Debian chromium "
            "(--disable-gpu, software WebGL); first render = goto -> plot drawn; select = box mouse-up -> "
            "selection count rerendered by the server",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "sizes": results,
        },
    )
    for r in results:
        print(
            f"{r['n_points']:>7,} points: first render {r.get('first_render_warm_median_s')} s (cold "
            f"{r.get('first_render_cold_s')} s), select {r.get('select_median_s')} s, {r['json_mb']} MB JSON"
        )


if __name__ == "__main__":
    main()
