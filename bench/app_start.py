"""Start-up time of the app: server start → clusters on screen in a headless browser.

    .venv/bin/python bench/app_start.py                 # 1 cold start + 3 warm starts
    .venv/bin/python bench/app_start.py --repeats 5 --folder demo

What is measured, per run (a fresh ``streamlit run app.py`` on a free port, ``VLEXPLORE_FOLDER``
= the demo folder, ``VLEXPLORE_CACHE_DIR`` = one temp dir for the whole benchmark,
``HF_HUB_OFFLINE=1``, ``NUMBA_CACHE_DIR`` unset so numba's cache also lives in that dir):

* t = 0 just before the server process is spawned (Debian chromium is already running; every
  run gets a fresh browser context, hence a fresh Streamlit session);
* ``health_s``: ``/_stcore/health`` answers 200; the page is opened right then (``goto_s``);
* ``clusters_s`` — **"clusters on screen"**: the page has an ``h1`` "Clusters" and the first
  thumbnail of the first cluster card (``img.vx-grid-img``, or ``[data-testid=stImage] img``) is
  visible and decoded (``complete && naturalWidth > 0``);
* ``idle_s``: the script run has finished (``stApp[data-test-script-state=notRunning]``, no skeleton).

Run (a) "cold" starts with the empty cache dir (embeddings, thumbnails, numba kernels all made);
runs (b) "warm" restart the server on the same cache dir. Target for (b): median ≤ 10 s.
Not cleared between runs: the OS page cache and the repo's ``__pycache__`` (a truly first start
on a fresh machine is slower). The server is always killed (its process group); waits are bounded.
Results go to ``bench/results/app.json`` under ``"start"`` (other keys are kept). ``--env KEY=VALUE``
passes extra server environment (e.g. ``OMP_NUM_THREADS=1``) and ``--repo DIR`` serves another
checkout's ``app.py`` (a patched copy); such runs are stored under ``start.with_env`` so the plain
run stays the headline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "app.json"
sys.path.insert(0, str(ROOT))
from tools.browser import CHROMIUM, CHROMIUM_ARGS, free_port, serve_command  # noqa: E402  (map_scale imports them from here)
from tools.browser import wait_healthy as _wait_healthy  # noqa: E402

CLUSTERS_ON_SCREEN = """() => {
    const h1 = [...document.querySelectorAll('h1')].some(h => h.textContent.trim().startsWith('Clusters'));
    if (!h1) return false;
    const img = document.querySelector('[data-testid="stMain"] [data-testid="stImage"] img, [data-testid="stMain"] img.vx-grid-img');
    if (!img || !img.complete || img.naturalWidth === 0) return false;
    const r = img.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
}"""
IDLE = """() => document.querySelector('[data-testid="stApp"][data-test-script-state="notRunning"]') !== null
    && document.querySelectorAll('[data-testid="stSkeleton"]').length === 0"""


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def merge_results(key: str, value: dict) -> None:
    """Write ``value`` under ``key`` of ``bench/results/app.json``, keeping the other keys."""
    data = {}
    if OUT.exists():
        try:
            data = json.loads(OUT.read_text())
        except json.JSONDecodeError:
            data = {}
    data[key] = value
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2) + "\n")


def start_server(
    folder: Path, cache: Path, port: int, log: Path, extra_env: dict, repo: Path = ROOT
) -> subprocess.Popen:
    env = {
        **os.environ,
        "VLEXPLORE_FOLDER": str(folder),
        "VLEXPLORE_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.pop("NUMBA_CACHE_DIR", None)
    env.update(extra_env)
    cmd = serve_command(repo / "app.py", port)
    with log.open("ab") as fh:
        return subprocess.Popen(
            cmd, cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def wait_healthy(url: str, proc: subprocess.Popen, deadline: float) -> None:
    """Wait for the server's health endpoint until the monotonic ``deadline``."""
    _wait_healthy(url, proc, timeout=max(0.0, deadline - time.monotonic()), poll=0.1)


def one_start(
    browser,
    folder: Path,
    cache: Path,
    log: Path,
    timeout_s: float,
    label: str,
    extra_env: dict,
    repo: Path = ROOT,
) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    load0 = loadavg()
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    proc = start_server(folder, cache, port, log, extra_env, repo)
    out: dict = {"run": label, "loadavg_start": load0}
    try:
        wait_healthy(url, proc, deadline)
        out["health_s"] = round(time.monotonic() - t0, 2)
        page.goto(url, timeout=max(1.0, deadline - time.monotonic()) * 1000)
        out["goto_s"] = round(time.monotonic() - t0, 2)
        page.wait_for_function(
            CLUSTERS_ON_SCREEN, timeout=max(1.0, deadline - time.monotonic()) * 1000, polling=50
        )
        out["clusters_s"] = round(time.monotonic() - t0, 2)
        page.wait_for_function(IDLE, timeout=max(1.0, deadline - time.monotonic()) * 1000, polling=50)
        out["idle_s"] = round(time.monotonic() - t0, 2)
        side = page.locator('[data-testid="stSidebarUserContent"]').inner_text(timeout=5000)
        out["sidebar"] = " ".join(side.split())[:200]
        out["n_thumbnails"] = page.locator(
            '[data-testid="stMain"] [data-testid="stImage"], [data-testid="stMain"] img.vx-grid-img'
        ).count()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        stop_server(proc)
        context.close()
    out["loadavg_end"] = loadavg()
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=ROOT / "demo")
    ap.add_argument("--repeats", type=int, default=3, help="warm restarts (median reported)")
    ap.add_argument("--cold-timeout", type=float, default=300.0)
    ap.add_argument("--warm-timeout", type=float, default=120.0)
    ap.add_argument("--target-warm-s", type=float, default=10.0)
    ap.add_argument(
        "--env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra server environment (an experiment: stored under start.with_env.<KEY=VALUE ...>)",
    )
    ap.add_argument(
        "--repo",
        type=Path,
        default=ROOT,
        help="serve app.py of another checkout (e.g. a patched copy); stored under start.with_env",
    )
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="serve from this cache (e.g. a 70k collection embedded beforehand) instead of an empty "
        "temp dir: the first run then opens a collection whose embeddings exist",
    )
    ap.add_argument("--key", default="start", help="where the results go in app.json (default: start)")
    args = ap.parse_args()
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    from playwright.sync_api import sync_playwright

    folder = args.folder.resolve()
    n_files = sum(1 for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    with tempfile.TemporaryDirectory(prefix="vx-appstart-") as tmp:
        cache, log = Path(tmp) / "cache", Path(tmp) / "server.log"
        if args.cache_dir is not None:
            cache = args.cache_dir.resolve()
        first = "cold" if args.cache_dir is None else "first (embeddings cached)"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                cold = one_start(browser, folder, cache, log, args.cold_timeout, first, extra_env, args.repo)
                warm = [
                    one_start(
                        browser, folder, cache, log, args.warm_timeout, f"warm{i + 1}", extra_env, args.repo
                    )
                    for i in range(args.repeats)
                ]
            finally:
                browser.close()
        if any("error" in r for r in [cold, *warm]):
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
    ok = [r["clusters_s"] for r in warm if "clusters_s" in r]
    median = round(statistics.median(ok), 2) if ok else None
    result = {
        "what": "server spawn -> h1 'Clusters' + first cluster-card thumbnail img decoded and visible "
        "in headless Debian chromium (fresh browser context per run)",
        "folder": str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder),
        "n_image_files": n_files,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cold": cold,
        "warm": warm,
        "warm_clusters_median_s": median,
        "target_warm_s": args.target_warm_s,
        "target_met": median is not None and median <= args.target_warm_s,
    }
    if args.key != "start":
        result["cache_dir"] = str(args.cache_dir) if args.cache_dir else "fresh temp dir"
        merge_results(args.key, result)
        print(
            f"{first}: {cold.get('clusters_s')} s; warm median: {median} s → {OUT.relative_to(ROOT)} [{args.key}]"
        )
        return
    variant = " ".join(args.env + ([f"repo={args.repo}"] if args.repo.resolve() != ROOT else []))
    try:
        base = json.loads(OUT.read_text()).get("start", {})
    except (OSError, json.JSONDecodeError):
        base = {}
    if variant:  # an experiment: kept beside the plain run, which stays the headline
        result["variant"] = variant
        base.setdefault("with_env", {})[variant] = result
        result = base
    elif "with_env" in base:  # a plain run replaces the headline and keeps the experiments
        result["with_env"] = base["with_env"]
    merge_results("start", result)
    print(
        f"cold: {cold.get('clusters_s')} s; warm median: {median} s (target ≤ {args.target_warm_s} s) "
        f"→ {OUT.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
