"""The app on a 70,000-image collection whose embeddings are cached: is it usable, and how fast?

    python bench/app_70k.py                                  # bench/data/fashion-mnist-70k, bench/data/cache
    python bench/app_70k.py --folder F --cache-dir C --shots docs/screenshots

One server (``streamlit run app.py`` with ``VLEXPLORE_FOLDER`` / ``VLEXPLORE_CACHE_DIR``), headless Debian
chromium. Measured, from the moment the page is opened:

* ``clusters_s`` — the Clusters page with its first thumbnail decoded (embeddings come from the cache;
  clustering, names and thumbnails are made now);
* ``recluster_s`` — the Cluster page's form sent with another k (``--k``; default 3 more than the clusters
  shown) until the page shows that many clusters (``recluster_server``: the app's own time for it); ``server_timings``: the Load page's account of the opening;
* ``next_thumbnail_page_s`` — page 2 of the first cluster's thumbnails, until its first thumbnail changes;
* ``map_s`` — the Map page with its scatterplot drawn (the UMAP layout runs in a background thread from
  start-up; the first open of a collection waits for it, later opens read it from the cache);
* ``select_s`` — a box selection on the map (``box``: over the middle 30 % of the points drawn) until the
  selection's thumbnail grid shows;
* ``export_s`` — the Export page rendered;
* ``server_rss_mb`` / ``server_peak_rss_mb`` — the server's resident memory after the Export page, and its
  peak over the whole run (``VmHWM``);
* ``machine_speed`` — measured before the server starts: the best of three 10⁷-step Python loops, and of three
  2048² float32 matrix products on every core (this machine is shared and its speed varies from day to day: a
  figure is read beside the speed it was measured at);
* ``umap_on_screen_s`` (``--wait-umap S``) — from opening until UMAP's layout has replaced the quick one on
  the Map page (the peak then includes UMAP).

Results go to ``bench/results/app.json`` under ``"app_70k"``; screenshots (optional) to ``--shots``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))
from make_screenshots import box_select, goto, snap, wait_idle, wait_map  # noqa: E402

from tools.browser import CHROMIUM, CHROMIUM_ARGS, free_port, serve_command, wait_healthy  # noqa: E402

FIRST_IMG = '[data-testid="stMain"] [data-testid="stImage"] img, [data-testid="stMain"] img.vx-grid-img'
FIRST_THUMB = """() => {
    const img = document.querySelector('[data-testid="stMain"] [data-testid="stImage"] img, [data-testid="stMain"] img.vx-grid-img');
    return !!img && img.complete && img.naturalWidth > 0;
}"""


def record(out: dict, key: str, value) -> None:
    """``out[key] = value``, said on stderr at once (a long run shows its progress)."""
    out[key] = value
    print(f"{key}: {value}", file=sys.stderr, flush=True)


def machine_speed() -> dict:
    """How fast this machine is right now: ``python_loop_s`` (10⁷ additions) and ``sgemm_gflops`` (best of 3)."""
    import numpy as np

    loops = []
    for _ in range(3):
        t, total = time.perf_counter(), 0
        for i in range(10_000_000):
            total += i
        loops.append(time.perf_counter() - t)
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    gemm = []
    for _ in range(3):
        t = time.perf_counter()
        a @ a
        gemm.append(2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return {"python_loop_s": round(min(loops), 2), "sgemm_gflops": round(max(gemm), 1)}


def rss_mb(pid: int, *, peak: bool = False) -> float | None:
    """The server's resident set now (``peak``: its highest so far), in MB, from ``/proc``."""
    field = "VmHWM:" if peak else "VmRSS:"
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def busy_box(page, share: float = 0.3) -> tuple[float, float, float, float]:
    """A box over the middle of the points drawn on the map (left, top, right, bottom, canvas fractions).

    The middle ``share`` of the drawn pixels in each direction, the legend's side left out: a fixed box can fall
    between the clusters of a layout (the quick layout at 1M draws about two hundred small islands).
    """
    import io

    import numpy as np
    from PIL import Image

    shot = page.locator(".vx-scatter-canvas canvas").first.screenshot()
    ink = np.asarray(Image.open(io.BytesIO(shot)).convert("L")) < 200
    ink[:, : ink.shape[1] // 4] = False  # the legend
    ys, xs = np.nonzero(ink)
    if not len(xs):
        return (0.35, 0.35, 0.65, 0.65)
    lo, hi = 0.5 - share / 2, 0.5 + share / 2
    (x0, x1), (y0, y1) = np.quantile(xs, [lo, hi]) / ink.shape[1], np.quantile(ys, [lo, hi]) / ink.shape[0]
    return (round(float(x0), 3), round(float(y0), 3), round(float(x1), 3), round(float(y1), 3))


def forget_clusterings(cache_dir: Path, ks: list[int]) -> None:
    """Delete the stored clusterings with ``ks`` clusters, so the re-clusters are computed, not read back."""
    import numpy as np

    for path in (cache_dir / "clusterings").glob("*.npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                n_clusters = json.loads(str(z["meta"])).get("n_clusters")
        except (OSError, ValueError, KeyError):
            continue
        if n_clusters in ks:
            path.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=BENCH / "data" / "fashion-mnist-70k")
    ap.add_argument("--cache-dir", type=Path, default=BENCH / "data" / "cache")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds for any one wait")
    ap.add_argument(
        "--model", default="bundled", help="VLEXPLORE_MODEL: the model the folder was embedded with"
    )
    ap.add_argument(
        "--k",
        type=int,
        nargs="+",
        default=None,
        help="the re-clusters ask for these many clusters, one after another (default: 3 more than shown);"
        " stored clusterings with these k are deleted first, so each is computed",
    )
    ap.add_argument(
        "--wait-umap",
        type=float,
        default=0.0,
        help="at the end, wait up to this many seconds for UMAP's layout to replace the quick one",
    )
    ap.add_argument("--key", default="app_70k", help="where in --out the figures go")
    ap.add_argument("--shots", type=Path, default=None, help="write screenshots here")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "app.json")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    n_files = sum(1 for _ in a.folder.rglob("*.png"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "VLEXPLORE_FOLDER": str(a.folder.resolve()),
        "VLEXPLORE_CACHE_DIR": str(a.cache_dir.resolve()),
        "HF_HUB_OFFLINE": "1",
        "VLEXPLORE_ROOTS": str(a.folder.resolve()),
        "VLEXPLORE_MODEL": a.model,
    }
    log = Path("/tmp") / f"vlexplore-app70k-{port}.log"
    cmd = serve_command(ROOT / "app.py", port)
    out: dict = {
        "folder": str(
            a.folder.resolve().relative_to(ROOT) if a.folder.resolve().is_relative_to(ROOT) else a.folder.name
        ),
        "model": a.model,
        "n_image_files": n_files,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine_speed": machine_speed(),
    }
    ms = a.timeout * 1000
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_healthy(url, proc, timeout=120)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            t0 = time.monotonic()
            page.goto(url)
            page.get_by_role("heading", name="Clusters").first.wait_for(timeout=ms)
            page.wait_for_function(FIRST_THUMB, timeout=ms, polling=100)
            record(out, "clusters_s", round(time.monotonic() - t0, 2))
            wait_idle(page, timeout=ms)
            record(out, "clusters_idle_s", round(time.monotonic() - t0, 2))
            out["sidebar"] = " ".join(
                page.locator('[data-testid="stSidebarUserContent"]').inner_text().split()
            )[:240]
            if a.shots:
                snap(page, a.shots / "scale-clusters.png")

            # the first card's image pager: its "2" button, until the card's first thumbnail changes
            first_src = page.locator(FIRST_IMG).first.get_attribute("src")
            page_two = page.locator('[data-testid="stMain"] button').filter(has_text="2").first
            if page_two.count():
                t = time.monotonic()
                page_two.click()
                page.wait_for_function(
                    "(s) => { const i = document.querySelector('" + FIRST_IMG + "');"
                    " return !!i && i.getAttribute('src') !== s && i.complete && i.naturalWidth > 0; }",
                    arg=first_src,
                    timeout=ms,
                    polling=50,
                )
                wait_idle(page, timeout=ms)
                record(out, "next_thumbnail_page_s", round(time.monotonic() - t, 2))

            shown = re.search(r"([\d,]+) clusters", out["sidebar"])
            ks = a.k or [int(shown.group(1).replace(",", "")) + 3 if shown else 12]
            # the server's own account of the opening (the Load page's "Time:" line)
            goto(page, "Load")
            timing = page.get_by_text("Time:").first
            if timing.count():
                out["server_timings"] = " ".join(timing.inner_text().split())

            # re-cluster: the Cluster page's form with another k, until its table shows the new clusters
            goto(page, "Cluster")
            out["reclusters"] = []
            for k_new in ks:
                forget_clusterings(a.cache_dir, [k_new])
                k_box = page.get_by_role("spinbutton", name="Number of clusters k")
                k_box.fill(str(k_new))
                k_box.press("Tab")
                t = time.monotonic()
                page.get_by_role("button", name="Cluster", exact=True).click()
                # the app's own account ("k-means: 30 clusters in 1.1 s.") comes with the new clusters' table,
                # also when k is the one shown before
                said = page.get_by_text(re.compile(rf"\b{k_new} clusters in [\d.]+ s")).first
                said.wait_for(timeout=ms)
                page.get_by_role("heading", name=f"{k_new} clusters").first.wait_for(timeout=ms)
                row = {"k": k_new, "s": round(time.monotonic() - t, 2)}
                row["server"] = " ".join(said.inner_text().split())
                out["reclusters"].append(row)
                print(f"recluster: {row}", file=sys.stderr, flush=True)
                wait_idle(page, timeout=ms)
            first = out["reclusters"][0]
            out["recluster_k"], out["recluster_s"] = first["k"], first["s"]
            out["recluster_server"] = first.get("server")

            t = time.monotonic()
            goto(page, "Map")
            wait_map(page, timeout=ms)
            wait_idle(page, timeout=ms)
            record(out, "map_s", round(time.monotonic() - t, 2))
            out["map_caption"] = " ".join(
                page.locator('[data-testid="stCaptionContainer"]').first.inner_text().split()
            )
            if a.shots:
                snap(page, a.shots / "scale-map.png")
            t = time.monotonic()
            out["box"] = busy_box(page)
            box_select(page, out["box"])
            page.get_by_text("Selected images by cluster").first.wait_for(timeout=ms)
            page.wait_for_function(FIRST_THUMB, timeout=ms, polling=50)
            wait_idle(page, timeout=ms)
            record(out, "select_s", round(time.monotonic() - t, 2))
            out["selection"] = " ".join(
                page.get_by_text("Selected images by cluster").first.inner_text().split()
            )[:200]
            if a.shots:
                snap(page, a.shots / "scale-map-selection.png")

            t = time.monotonic()
            goto(page, "Export")
            record(out, "export_s", round(time.monotonic() - t, 2))
            out["server_rss_mb"] = rss_mb(proc.pid)
            if a.wait_umap:  # the Map page until UMAP's layout has replaced the quick one
                goto(page, "Map", ms)
                deadline = time.monotonic() + a.wait_umap
                while time.monotonic() < deadline and page.get_by_text("A quick first layout").count():
                    time.sleep(10)
                    goto(page, "Map", ms)  # a page run can wait seconds for the GIL while UMAP's epochs run
                if not page.get_by_text("A quick first layout").count():
                    wait_map(page, timeout=ms)
                    record(out, "umap_on_screen_s", round(time.monotonic() - t0, 1))
            browser.close()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
    finally:
        out["server_peak_rss_mb"] = rss_mb(proc.pid, peak=True)
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a layout thread busy in numba does not stop on SIGTERM
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
    print(json.dumps(out, indent=2))
    data = json.loads(a.out.read_text()) if a.out.exists() else {}
    data[a.key] = out
    a.out.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
