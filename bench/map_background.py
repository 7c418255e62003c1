"""What a map being laid out in the background costs the rest of the app: GIL stalls and re-cluster time.

    python bench/map_background.py --folder bench/data/fashion-mnist-70k --model bench/data/random-clip-512 --cache-dir C

The app lays out UMAP in a worker thread while the user re-clusters. In one fresh process per variant:

* ``alone``: k-means (``--k``) on the rows, twice, nothing else running;
* then :func:`vlexplore.project.project_2d` starts in a thread (as the app's map worker) and k-means runs again
  and again (``--pause`` seconds apart) until the layout is done; meanwhile a probe thread sleeps 2 ms at a time and records how late it
  wakes (a thread that holds the GIL makes it late).

Variants: ``gil`` (umap as shipped), ``nogil`` (UMAP's epochs without the GIL,
:func:`~vlexplore.project.layout_epochs_release_the_gil`) and ``nice`` (that, and the layout thread at Linux nice +10).
The app does not nice its map worker: a niced thread that holds the GIL (numba compiling UMAP on a cold cache, the
pure-Python parts of a layout) is descheduled while holding it whenever the cores are busy, and the page runs wait
behind it. ``nice`` shows what it would buy once compiled. Results go to ``bench/results/map_background.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
OUT = BENCH / "results" / "map_background.json"


def rows(a) -> np.ndarray:
    import vlexplore as vx
    from vlexplore.models.base import l2_normalize
    from vlexplore.pipeline import load_encoder_or_fallback

    col = vx.scan(a.folder, cache_dir=a.cache_dir)
    cfg = vx.EncodeConfig(model=a.model, cache_dir=a.cache_dir)
    enc, _ = load_encoder_or_fallback(cfg, lazy=True)
    return l2_normalize(vx.embed(col, cfg, encoder=enc).views["image"])


def run(a) -> dict:
    import vlexplore.project as project
    from vlexplore.cluster.kmeans import kmeans

    if a.variant == "gil":
        project.layout_epochs_release_the_gil = lambda: False  # umap as shipped
    X = rows(a)
    alone = []
    for seed in range(2):
        t = time.perf_counter()
        kmeans(X, a.k, seed=seed)
        alone.append(round(time.perf_counter() - t, 2))
    project.warm_up_umap(a.cache_dir)  # compiled first, as the app's warm-up does
    stalls: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            time.sleep(0.002)
            stalls.append(time.perf_counter() - t - 0.002)

    def layout() -> None:
        if a.variant == "nice":
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            project.project_2d(X, seed=0)
        finally:
            done.set()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=layout), threading.Thread(target=probe)]
    for th in threads:
        th.start()
    beside = []
    while not done.is_set():
        t = time.perf_counter()
        kmeans(X, a.k, seed=len(beside))
        if not done.is_set():  # only re-clusters that ran beside the layout from start to end
            beside.append(round(time.perf_counter() - t, 2))
        done.wait(a.pause)  # a user looks at the result before the next click
    for th in threads:
        th.join()
    s = np.asarray(stalls)
    return {
        "n": len(X),
        "k": a.k,
        "pause_s": a.pause,
        "kmeans_alone_s": alone,
        "kmeans_beside_layout_s": beside,
        "layout_s": round(time.perf_counter() - t0, 1),
        "probe_stalls_over_50ms": int((s > 0.05).sum()),
        "probe_longest_stall_s": round(float(s.max()), 3) if len(s) else None,
        "probe_stall_p99_s": round(float(np.quantile(s, 0.99)), 4) if len(s) else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, required=True)
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--pause", type=float, default=0.0, help="seconds between re-clusters beside the layout")
    ap.add_argument("--variants", nargs="+", default=["gil", "nogil"])
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # one variant, in this process
    a = ap.parse_args()
    if a.variant:
        print(json.dumps(run(a)))
        return
    out = {}
    for variant in a.variants:
        cmd = [sys.executable, __file__, "--folder", str(a.folder), "--model", a.model, "--k", str(a.k)]
        cmd += ["--pause", str(a.pause)]
        cmd += ["--variant", variant] + (["--cache-dir", a.cache_dir] if a.cache_dir else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        print(variant, out[variant], flush=True)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    command = "python bench/map_background.py " + " ".join(sys.argv[1:])
    if a.cache_dir:
        command = command.replace(a.cache_dir, "C")
    key = f"{a.folder.name}-k{a.k}" + (f"-pause{a.pause:g}" if a.pause else "")
    results[key] = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "variants": out,
    }
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
