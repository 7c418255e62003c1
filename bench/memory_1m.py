"""Memory of what the app holds and computes for 1,000,000 images of 512-d vectors (issue 14, target 5).

    python bench/memory_1m.py                                  # 1M × 512, model = bench/data/random-clip-512
    python bench/memory_1m.py --n 200000 --cache-dir /tmp/c

Vectors only: ``n`` unit rows in 50 Gaussian blobs, written once to ``<cache-dir>/vectors-<n>.npy`` and
opened memory-mapped (``np.load(mmap_mode="r")``), both views (``image``, ``joint``) the same array as
open_clip gives them; a collection table of ``n`` rows (paths, fingerprints, folder labels) like a scan's.
Then, in one fresh child process, the steps the app runs for a folder, with the resident set size
(``/proc/self/statm``) after each and the peak (``ru_maxrss``) at the end:

``collection`` → ``vectors`` (mapped) → ``cluster`` (:func:`vlexplore.pipeline.cluster_embedded`, k-means
with k = 50, names from the model's cached vocabulary, folder-label metrics; the map coordinates are given:
UMAP at 1M is not part of this figure) → ``map_payload`` (the WebGL map's binary columns,
:mod:`vlexplore.mapdata`) → ``search`` (the flat index and one query) → ``table`` (the labelled table,
without curation columns).

The vocabulary is read from the cache the 70k bench filled (``--cache-dir``; run
``python -m vlexplore embed bench/data/fashion-mnist-70k --model bench/data/random-clip-512 --cache-dir C``
and open it once). Results: ``bench/results/memory_1m.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MODEL = BENCH / "data" / "random-clip-512"  # bench/random_clip.py: its cached vocabulary names the clusters


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def vectors(path: Path, n: int, d: int = 512, blobs: int = 50):
    """``n × d`` unit float32 rows in ``blobs`` clusters, written in blocks; returns ``(array, labels)``."""
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(blobs, d)).astype(np.float32)
    labels = rng.integers(0, blobs, size=n)
    if not path.exists():
        out = np.lib.format.open_memmap(
            path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(n, d)
        )
        for start in range(0, n, 65_536):
            lab = labels[start : start + 65_536]
            block = centres[lab] + rng.normal(scale=0.9, size=(len(lab), d)).astype(np.float32)
            out[start : start + len(lab)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        out.flush()
        del out
        path.with_suffix(".tmp.npy").rename(path)
    return np.load(path, mmap_mode="r"), labels


def child(n: int, cache_dir: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pandas as pd

    import vlexplore as vx
    from vlexplore import mapdata
    from vlexplore.collection import Collection
    from vlexplore.models.registry import load_encoder
    from vlexplore.pipeline import cluster_embedded, to_dataframe
    from vlexplore.results import Embedded
    from vlexplore.search import search_index

    stages: dict[str, dict] = {"imports": {"rss_mb": round(rss_mb())}}

    def stage(name: str, t0: float) -> None:
        stages[name] = {"rss_mb": round(rss_mb()), "seconds": round(time.perf_counter() - t0, 2)}
        print(name, stages[name], flush=True)

    t0 = time.perf_counter()
    X, labels = vectors(cache_dir / f"vectors-{n}.npy", n)
    names = np.array([f"class_{i:02d}" for i in range(50)])[labels]
    relpath = [f"{c}/img_{i:07d}.png" for i, c in enumerate(names)]
    items = pd.DataFrame(
        {
            "relpath": relpath,
            "path": [f"/data/{r}" for r in relpath],
            "folder_label": names,
            "bytes": np.full(n, 900, np.int64),
            "mtime_ns": np.zeros(n, np.int64),
            "width": np.full(n, 28, np.int64),
            "height": np.full(n, 28, np.int64),
            "format": "PNG",
            "fingerprint": [f"b3-{i:032x}" for i in range(n)],
        }
    )
    col = Collection(Path("/data"), items, pd.DataFrame({"relpath": [], "reason": []}))
    del relpath, names
    stage("collection", t0)
    t0 = time.perf_counter()
    model_id = load_encoder(str(MODEL), device="cpu", lazy=True).model_id  # its name only: no weights load
    emb = Embedded(collection=col, views={"image": X, "joint": X}, model_id=model_id, captions=[""] * n)
    stage("vectors", t0)
    t0 = time.perf_counter()
    coords = np.random.default_rng(1).normal(size=(n, 2)).astype(np.float32)
    cl = cluster_embedded(emb, vx.ClusterConfig(k=50), coords=coords, cache_dir=cache_dir)
    stage("cluster", t0)
    stages["cluster"]["acc"] = round(float(cl.metrics.get("acc", float("nan"))), 3)
    t0 = time.perf_counter()
    colours = {c: "#1f77b4" for c in range(cl.n_clusters)}
    payload = mapdata.encode(mapdata.map_points(cl.coords, cl.labels, colours, cl.names))
    stage("map_payload", t0)
    stages["map_payload"]["payload_mb"] = round(len(payload) / 2**20, 1)
    t0 = time.perf_counter()
    index = search_index(emb)
    index.query(np.asarray(X[:1]), 48)
    stage("search", t0)
    t0 = time.perf_counter()
    df = to_dataframe(emb, cl, curation=False)
    stage("table", t0)
    del df
    return {
        "n": n,
        "d": int(X.shape[1]),
        "stages": stages,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "vectors_on_disk_mb": round(X.nbytes / 2**20),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--cache-dir", type=Path, default=BENCH / "data" / "cache-70k")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "memory_1m.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print("RESULT " + json.dumps(child(a.n, a.cache_dir)))
        return
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--n", str(a.n), "--cache-dir", str(a.cache_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(1)
    out = json.loads(lines[-1][len("RESULT ") :])
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    out["date"] = time.strftime("%Y-%m-%d %H:%M")
    out["command"] = "python bench/memory_1m.py" + ("" if a.n == 1_000_000 else f" --n {a.n}")
    print(json.dumps(out, indent=2))
    a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
