"""The WebGL map (ui/scatter.py, regl-scatterplot) at a million points, beside the plotly map.

    .venv/bin/python bench/map_webgl.py                          # 1,000,000 points; plotly at 200,000 and 1,000,000
    .venv/bin/python bench/map_webgl.py --sizes 100000 --plotly-sizes 100000 --repeats 1

Data: ``n`` uniformly random points in the unit square, each in one of 10 clusters (random labels),
so a box over a fixed share of the square holds a known share of the points (a box of side
sqrt(0.1) holds ~10 %: ~100,000 of 1,000,000).

A throwaway Streamlit script (temp dir, the repo's .streamlit/config.toml) builds the map once per
server (``st.cache_resource``) and draws it, then a grid like the Map page's: the first 48 selected
points as ``st.image`` thumbnails (cached JPEGs), under a line ``RUN <k> SELECTED <n>``.

Measured in headless Debian chromium (``--disable-gpu``: WebGL runs on SwiftShader, on the CPU):

* ``build_s`` / ``encode_s`` / ``payload_mb``: ``vlexplore.mapdata.map_points`` and ``encode`` in this process;
* ``first_draw_s``: ``page.goto`` → regl-scatterplot has drawn every point (the component marks its
  root ``data-drawn`` when ``draw()`` resolves), cold (first load of the server) and warm (fresh
  browser contexts); ``js_receive_to_draw_s`` is that last step measured inside the page;
* ``select_s``: box drag (the component's Box mode) over ~10 % of the square → mouse up → the page
  shows the new ``SELECTED`` line and all 48 grid images have loaded (browser → server → rerun →
  browser, selection sent as base64 uint32, points not resent). Timed in the page: from mouse-up it
  checks every 10 ms (``select_wall_s``: when the test driver, whose checks wait for a busy page, saw it);
  ``phases_s`` splits it (mouse-up → selection sent → the rerun's payload back → grid) and gives
  ``up_to_map_frame``, when the map's own frame with the selection was drawn, and ``held_s``, how long
  the component held that frame back for the grid.

The plotly rows draw the same points the way the Map page did (one ``go.Scattergl`` trace per
cluster, marker size 2, no hover text, ``st.plotly_chart(on_select="rerun")``), box-selecting the
same region with plotly's modebar; a size that does not finish within ``--timeout`` is recorded as such.
Results: ``bench/results/map_webgl.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
try:
    from tools.browser import CHROMIUM, CHROMIUM_ARGS, free_port, serve_command, wait_healthy
except ImportError:  # older layout
    from ui.browser import CHROMIUM, CHROMIUM_ARGS, free_port, serve_command, wait_healthy

OUT = ROOT / "bench" / "results" / "map_webgl.json"
BOX_SIDE = 0.1**0.5  # share of the unit square → share of the points
GRID = 48

COMMON = """
    import sys
    sys.path.insert(0, {root!r})
    import numpy as np
    import streamlit as st
    from PIL import Image

    N = {n}
    st.set_page_config(layout="wide")

    @st.cache_resource
    def data(n):
        rng = np.random.default_rng(0)
        return rng.random((n, 2), dtype=np.float32), rng.integers(0, 10, n)

    @st.cache_resource
    def thumbs():
        out = []
        for k in range(50):
            p = {tmp!r} + f"/thumb{{k}}.jpg"
            Image.new("RGB", (192, 192), (k * 5, 255 - k * 5, 128)).save(p, quality=85)
            out.append(p)
        return out

    coords, labels = data(N)
    COLOURS = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
               "#9d755d", "#bab0ac"]
    st.session_state["runs"] = st.session_state.get("runs", 0) + 1
"""

WEBGL_SCRIPT = (
    COMMON
    + """
    from ui import scatter
    from vlexplore import mapdata

    if {bundle!r}:  # another build of the component (--compare-bundle), measured in the same run
        from pathlib import Path
        scatter.BUNDLE = Path({bundle!r})

    pts = st.cache_resource(lambda n: mapdata.map_points(coords, labels, dict(enumerate(COLOURS))))(N)
    sel = st.session_state.get("sel", np.zeros(0, np.int64))

    def on_select(ix):
        st.session_state["sel"] = ix

    scatter.scatter_map(pts, selection=sel, thumb=lambda i: thumbs()[i % 50], on_select=on_select,
                        key="map", mode="rectangle")
    sel = st.session_state.get("sel", np.zeros(0, np.int64))
    st.markdown(f"RUN {{st.session_state['runs']}} SELECTED {{len(sel)}}")
    cols = st.columns(8)
    for j, i in enumerate(sel[:{grid}]):
        cols[j % 8].image(thumbs()[int(i) % 50], caption=f"img{{int(i)}}")
"""
)

PLOTLY_SCRIPT = (
    COMMON
    + """
    import plotly.graph_objects as go

    @st.cache_resource
    def figure(n):
        fig = go.Figure()
        for c in range(10):
            idx = np.flatnonzero(labels == c)
            fig.add_trace(go.Scattergl(x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=f"c{{c}}",
                                       marker={{"size": 2, "color": COLOURS[c], "line": {{"width": 0}}}},
                                       hovertemplate=f"c{{c}}<extra></extra>"))
        fig.update_layout(height=640, margin={{"l": 8, "r": 8, "t": 40, "b": 8}}, dragmode="lasso",
                          xaxis={{"visible": False, "range": [-0.02, 1.02]}},
                          yaxis={{"visible": False, "range": [-0.02, 1.02]}},
                          plot_bgcolor="white", uirevision="map")
        members = [np.flatnonzero(labels == c) for c in range(10)]
        return fig, members

    fig, members = figure(N)
    event = st.plotly_chart(fig, key="map", on_select="rerun", selection_mode=("lasso", "box"),
                            config={{"displaylogo": False}}, width="stretch")
    points = list(event.selection.points) if event is not None and event.selection else []
    sel = np.unique([int(members[p["curve_number"]][p["point_index"]]) for p in points]).astype(np.int64)
    st.markdown(f"RUN {{st.session_state['runs']}} SELECTED {{len(sel)}}")
    cols = st.columns(8)
    for j, i in enumerate(sel[:{grid}]):
        cols[j % 8].image(thumbs()[int(i) % 50], caption=f"img{{int(i)}}")
"""
)

STATUS_JS = """(before) => { const els = document.querySelectorAll('[data-testid="stMarkdown"]');
    for (const e of els) { const m = /RUN (\\d+) SELECTED (\\d+)/.exec(e.innerText);
      if (m) { if (+m[1] <= before || +m[2] === 0) return false;
        const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
        const ok = imgs.length >= Math.min(+m[2], GRID) && imgs.every(i => i.complete && i.naturalWidth > 0);
        if (ok) window.__vxGridDone = performance.now(); return ok; } }
    return false; }""".replace("GRID", str(GRID))
RUNS_JS = """() => { for (const e of document.querySelectorAll('[data-testid="stMarkdown"]')) {
    const m = /RUN (\\d+) SELECTED (\\d+)/.exec(e.innerText); if (m) return [+m[1], +m[2]]; } return [0, -1]; }"""
PLOTLY_DRAWN = """() => { const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    return !!(gd && gd._fullData && gd._fullData.length === 10 && gd.querySelector('canvas')); }"""
PHASES_JS = """() => { const s = document.querySelector('.vx-scatter').__vxScatter.stats;
    const r = (a, b) => (a && b) ? Math.round(b - a) / 1000 : null;
    const up = window.__vxUp, done = window.__vxGridDone;
    return {up_to_sent: r(up, s.lastSelectionSent), sent_to_payload: r(s.lastSelectionSent, s.lastPayload),
            payload_to_grid: r(s.lastPayload, done), up_to_grid: r(up, done), payload_m: s.lastPayloadM,
            frames_after_up: (s.frameTimes || []).filter(t => t > up && t <= done).map(t => r(up, t)),
            up_to_map_frame: r(up, (s.frameTimes || []).find(t => t > up)),
            held_s: (s.holdStart > up) ? r(s.holdStart, s.holdEnd) : null, released_by: s.releasedBy}; }"""
MAP_FRAME_JS = """() => ((document.querySelector('.vx-scatter').__vxScatter.stats.frameTimes || [])
    .some(t => t > window.__vxUp))"""
# from mouse-up, the page itself checks every 10 ms whether the grid is complete (STATUS_JS), so the time is
# taken when the page had the grid, not when a (possibly busy) page next answers the test driver
MOUSEUP_JS = """(before) => { window.__vxUp = null; window.__vxGridDone = null;
    const done = (STATUS);
    const tick = () => { if (!done(before)) setTimeout(tick, 10); };
    window.addEventListener('mouseup', () => { window.__vxUp = performance.now(); setTimeout(tick, 10); },
                            {capture: true, once: true}); }""".replace("STATUS", STATUS_JS)
GRID_DONE_JS = "() => window.__vxGridDone != null"
FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def serve(script: str, tmp: Path):
    path = tmp / "map_app.py"
    path.write_text(script)
    (tmp / ".streamlit").mkdir(exist_ok=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", tmp / ".streamlit" / "config.toml")
    port = free_port()
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        serve_command(path, port), cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, log, f"http://127.0.0.1:{port}"


def stop(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def drag(page, box, steps: int = 8) -> tuple[float, float]:
    """Mouse down at one corner of ``box``, ``steps`` moves to the other, mouse up.

    After each move the page draws a frame before the next one (a lasso ignores moves that come faster than
    its minimum delay, and a software-rendered frame of a million points takes a second, so moves would pile
    up).
    """
    x0, y0, x1, y1 = box
    t0 = time.monotonic()
    # the component's box starts where the first move ends: press just outside the corner, move onto it
    page.mouse.move(x0 - 4, y0 - 4)
    page.mouse.down()
    for k in range(steps + 1):
        page.mouse.move(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps)
        page.evaluate(FRAMES)
        page.wait_for_timeout(20)
    page.mouse.up()
    return t0, time.monotonic()


def webgl_box(page, corners) -> list[float]:
    """Screen box of normalised ``corners`` ``[x0, y0, x1, y1]``.

    A linear map fitted to the screen positions regl-scatterplot reports for the extreme points (no assumption
    about its camera or aspect ratio).
    """
    return page.evaluate(
        """([x0, y0, x1, y1]) => {
        const st = document.querySelector('.vx-scatter').__vxScatter;
        const r = st.dom.canvas.getBoundingClientRect();
        const {x, y} = st.points;
        let ax = 0, bx = 0, ay = 0, by = 0;
        for (let i = 1; i < x.length; i++) {
            if (x[i] < x[ax]) ax = i; if (x[i] > x[bx]) bx = i; if (y[i] < y[ay]) ay = i; if (y[i] > y[by]) by = i;
        }
        const [sax] = st.plot.getScreenPosition(ax), [sbx] = st.plot.getScreenPosition(bx);
        const say = st.plot.getScreenPosition(ay)[1], sby = st.plot.getScreenPosition(by)[1];
        const fx = (v) => r.left + sax + (v - x[ax]) * (sbx - sax) / (x[bx] - x[ax]);
        const fy = (v) => r.top + say + (v - y[ay]) * (sby - say) / (y[by] - y[ay]);
        return [fx(x0), fy(y1), fx(x1), fy(y0)];
    }""",
        corners,
    )


def plotly_box(page) -> list[float]:
    return page.evaluate(
        """(side) => {
        const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [r.left + xa.l2p(0.2), r.top + ya.l2p(0.2 + side), r.left + xa.l2p(0.2 + side), r.top + ya.l2p(0.2)];
    }""",
        BOX_SIDE,
    )


def run_one(browser, url: str, kind: str, timeout_ms: float, select: bool, corners=None) -> dict:
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(timeout_ms)
    out: dict = {}
    try:
        t0 = time.monotonic()
        page.goto(url)
        if kind == "webgl":
            page.wait_for_selector(".vx-scatter[data-drawn]", timeout=timeout_ms, state="attached")
            out["first_draw_s"] = round(time.monotonic() - t0, 3)
            js = page.evaluate("""() => { const s = document.querySelector('.vx-scatter').__vxScatter.stats;
                return [s.received, s.drawn]; }""")
            out["js_receive_to_draw_s"] = round((js[1] - js[0]) / 1000, 3)
        else:
            page.wait_for_function(PLOTLY_DRAWN, polling=50, timeout=timeout_ms)
            page.evaluate(FRAMES)
            out["first_draw_s"] = round(time.monotonic() - t0, 3)
        if not select:
            return out
        page.wait_for_timeout(1500)  # let the follow-up rerun (the component reporting what it holds) settle
        page.wait_for_selector(
            '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms
        )
        before = page.evaluate(RUNS_JS)[0]
        if kind == "webgl":
            page.click("button[data-mode=rectangle]")
            box = webgl_box(page, corners)
            page.evaluate(MOUSEUP_JS, before)
        else:
            page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.hover()
            page.locator('.modebar-btn[data-val="select"]').first.click()
            box = plotly_box(page)
        t_down, t_up = drag(page, box, steps=4)
        if kind == "webgl":
            page.wait_for_function(GRID_DONE_JS, polling=20, timeout=timeout_ms)
        else:
            page.wait_for_function(STATUS_JS, arg=before, polling=20, timeout=timeout_ms)
        t_done = time.monotonic()
        out["selected"] = page.evaluate(RUNS_JS)[1]
        if kind == "webgl":
            # the map's own frame showing the selection (it may come after the grid)
            with contextlib.suppress(Exception):
                page.wait_for_function(MAP_FRAME_JS, polling=20, timeout=30_000)
            out["phases_s"] = page.evaluate(PHASES_JS)
        out["drag_s"] = round(t_up - t_down, 3)
        out["select_wall_s"] = round(t_done - t_up, 3)  # mouse-up → the test driver sees the grid
        # mouse-up → the page has the grid (in the page; plotly: the driver's view)
        out["select_s"] = out["phases_s"]["up_to_grid"] if kind == "webgl" else out["select_wall_s"]
        return out
    finally:
        ctx.close()


def bench(browser, kind: str, n: int, repeats: int, timeout_s: float, rev: str = "") -> dict:
    """One map kind at one size; ``rev``: draw with the component as built at that git revision."""
    import numpy as np

    out: dict = {"map": kind, "n_points": n, "loadavg_start": loadavg()}
    out["bundle"] = f"dist/scatter.js at {rev}" if rev else "dist/scatter.js (working tree)"
    if kind == "webgl":
        from vlexplore import mapdata

        rng = np.random.default_rng(0)
        coords, labels = rng.random((n, 2), dtype=np.float32), rng.integers(0, 10, n)
        t0 = time.perf_counter()
        pts = mapdata.map_points(coords, labels, {i: "#4c78a8" for i in range(10)})
        out["build_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        payload = mapdata.encode(pts, np.arange(0, n, 10))
        out["encode_s"] = round(time.perf_counter() - t0, 3)
        out["payload_mb"] = round(len(payload) / 1e6, 2)
        script = WEBGL_SCRIPT
        lo = np.asarray([[0.2, 0.2], [0.2 + BOX_SIDE, 0.2 + BOX_SIDE]], dtype=np.float64)
        c = coords.astype(np.float64)
        mid, half = (c.min(0) + c.max(0)) / 2, float(np.max(c.max(0) - c.min(0))) / 2
        nlo, nhi = (lo - mid) / half
        corners = [float(nlo[0]), float(nlo[1]), float(nhi[0]), float(nhi[1])]
    else:
        corners = None
        script = PLOTLY_SCRIPT
    timeout_ms = timeout_s * 1000
    with tempfile.TemporaryDirectory(prefix=f"vx-map{kind}-") as tmp:
        bundle = ""
        if rev:
            bundle = str(Path(tmp) / "scatter.js")
            js = subprocess.run(
                ["git", "show", f"{rev}:ui/scatter_frontend/dist/scatter.js"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout
            Path(bundle).write_bytes(js)
        proc, log, url = serve(
            textwrap.dedent(script).format(root=str(ROOT), n=n, tmp=tmp, grid=GRID, bundle=bundle), Path(tmp)
        )
        try:
            wait_healthy(url, proc, timeout=90)
            runs = [run_one(browser, url, kind, timeout_ms, select=False)]  # cold: the server builds the map
            out["first_draw_cold_s"] = runs[0]["first_draw_s"]
            warm = [
                run_one(browser, url, kind, timeout_ms, select=True, corners=corners) for _ in range(repeats)
            ]
            out["runs"] = warm
            out["first_draw_warm_median_s"] = round(statistics.median(r["first_draw_s"] for r in warm), 3)
            out["select_median_s"] = round(statistics.median(r["select_s"] for r in warm), 3)
            out["selected"] = [r["selected"] for r in warm]
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            log.flush()
            print((Path(tmp) / "server.log").read_text(errors="replace")[-2000:], file=sys.stderr)
        finally:
            stop(proc)
            log.close()
    out["loadavg_end"] = loadavg()
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--plotly-sizes", type=int, nargs="*", default=[200_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--timeout", type=float, default=300, help="seconds per step before a size counts as failed"
    )
    ap.add_argument(
        "--compare-rev",
        nargs="*",
        default=[],
        help="git revisions whose build of the component (dist/scatter.js) is measured first, in the same run",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            renderer = None
            for n in args.sizes:
                for rev in args.compare_rev:
                    results.append(bench(browser, "webgl", n, args.repeats, args.timeout, rev))
                results.append(bench(browser, "webgl", n, args.repeats, args.timeout))
            for n in args.plotly_sizes:
                results.append(bench(browser, "plotly", n, args.repeats, args.timeout))
            pg = browser.new_page()
            renderer = pg.evaluate("""() => { const g = document.createElement('canvas').getContext('webgl');
                if (!g) return null; const d = g.getExtension('WEBGL_debug_renderer_info');
                return d ? g.getParameter(d.UNMASKED_RENDERER_WEBGL) : g.getParameter(g.RENDERER); }""")
            pg.close()
        finally:
            browser.close()
    doc = {
        "what": "WebGL map (ui/scatter.py over regl-scatterplot) vs plotly scattergl map, headless Debian chromium",
        "command": "python bench/map_webgl.py " + " ".join(sys.argv[1:]),
        "data": "uniform random points in the unit square, 10 random clusters; box = sqrt(0.1) side (~10 % of points)",
        "grid": f"first {GRID} selected as st.image thumbnails; select_s waits until they have loaded",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "webgl_renderer": renderer,
            "chromium_args": CHROMIUM_ARGS,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
