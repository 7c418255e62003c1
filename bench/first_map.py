"""The first map in a brand-new process: empty numba cache, the next process, and warm.

    .venv/bin/python bench/first_map.py                       # 10,000 x 512, every variant
    .venv/bin/python bench/first_map.py --n 20000 --variants umap
    .venv/bin/python bench/first_map.py --variants quick --data blobs fashion   # what the app does

Each case runs in a fresh child process (``python bench/first_map.py --child ...``) with
``NUMBA_CACHE_DIR`` pointed at a temporary folder of this run, empty for the first process of a
variant; the clock starts before the child imports anything of vlexplore, umap or numba:

* ``cold_s`` — the first layout in a process whose numba cache is empty (everything compiles);
* ``next_s`` — the same in the next process (the cache that the first one wrote);
* ``warm_s`` — a second layout of other data in that same process (nothing left to compile or import).

Variants (``vlexplore.project.project_2d(..., knn=...)``):

* ``umap`` — UMAP finds its own neighbours (pynndescent above ~4k points: the longest compile);
* ``faiss`` — exact cosine neighbours from faiss handed to UMAP (``precomputed_knn``), the default;
* ``quick`` — what the app's Map page does: UMAP (``faiss``) starts in a background thread and, beside it,
  ``vlexplore.quickmap.quick_layout`` (no numba) makes the map shown first. ``cold_s`` / ``next_s`` are then
  the time to that first layout on screen, ``umap_cold_s`` / ``umap_next_s`` the time until UMAP's layout
  replaces it (both from the same start, imports included), ``warm_s`` a warm UMAP layout as above and
  ``quick_warm_s`` a warm quick layout.

Data (``--data``): ``blobs`` — ``n`` vectors in 20 Gaussian blobs (``d``-dimensional, unit-normalised);
``fashion`` — the 10,000 Fashion-MNIST test images' cached embeddings (``bench/data/fashion-mnist-test-
embeddings.npz``, bundled model, 1280-d; ``--n``/``--d`` do not apply). ``same_blob_10nn``: share of each
point's 10 nearest 2-d neighbours from its own blob or class (the layout's quality; ``quick_same_blob_10nn``
for the quick layout, ``pca2_same_blob_10nn`` for a plain 2-d PCA).
Results: ``bench/results/first_map.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "first_map.json"
FASHION = ROOT / "bench" / "data" / "fashion-mnist-test-embeddings.npz"


def blobs(n: int, d: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    labels = rng.integers(0, 20, n)
    X = centres[labels] + rng.normal(scale=1.2, size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), labels


def dataset(name: str, n: int, d: int, seed: int):
    """``(X, labels)`` of ``--data``: blobs of this seed, or Fashion-MNIST's embeddings (a copy per seed)."""
    import numpy as np

    if name == "blobs":
        return blobs(n, d, seed)
    z = np.load(FASHION, allow_pickle=False)
    X = z["image"].astype(np.float32)
    labels = np.unique(z["labels"], return_inverse=True)[1]
    if seed:  # "other data" for the warm run: the same images in another order, another layout
        order = np.random.default_rng(seed).permutation(len(X))
        X, labels = X[order], labels[order]
    return X, labels


def same_blob_10nn(coords, labels) -> float:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=11).fit(coords)
    idx = nn.kneighbors(coords, return_distance=False)[:, 1:]
    return float((labels[idx] == labels[:, None]).mean())


def child_quick(data: str, n: int, d: int, warm: bool) -> None:
    """The app's way: UMAP in a background thread, the quick layout beside it; the clock starts before imports."""
    import threading

    sys.path.insert(0, str(ROOT))
    X, labels = dataset(data, n, d, seed=0)
    t0 = time.perf_counter()
    done: dict = {}

    def umap_job() -> None:
        from vlexplore.project import project_2d

        done["coords"] = project_2d(X, knn="faiss")
        done["t"] = time.perf_counter() - t0

    job = threading.Thread(target=umap_job)
    job.start()
    from vlexplore.quickmap import quick_layout

    quick = quick_layout(X)
    out: dict = {"first_s": round(time.perf_counter() - t0, 2)}
    job.join()
    out["umap_s"] = round(done["t"], 2)
    out["quick_same_blob_10nn"] = round(same_blob_10nn(quick, labels), 3)
    out["same_blob_10nn"] = round(same_blob_10nn(done["coords"], labels), 3)
    if warm:
        from vlexplore.project import _pca, project_2d

        out["pca2_same_blob_10nn"] = round(same_blob_10nn(_pca(X, 0), labels), 3)
        X2, _labels2 = dataset(data, n, d, seed=1)
        t = time.perf_counter()
        quick_layout(X2)
        out["quick_warm_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        project_2d(X2, knn="faiss")
        out["warm_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps(out))


def child(variant: str, data: str, n: int, d: int, warm: bool) -> None:
    if variant == "quick":
        child_quick(data, n, d, warm)
        return
    sys.path.insert(0, str(ROOT))
    X, labels = dataset(data, n, d, seed=0)
    t_data = time.perf_counter()
    from vlexplore.project import project_2d

    out: dict = {}
    coords = project_2d(X, knn=variant)
    out["first_s"] = round(time.perf_counter() - t_data, 2)  # imports included, the data excluded
    out["same_blob_10nn"] = round(same_blob_10nn(coords, labels), 3)
    if warm:
        X2, _labels2 = dataset(data, n, d, seed=1)
        t = time.perf_counter()
        coords = project_2d(X2, knn=variant)
        out["warm_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps(out))


def run_child(variant: str, data: str, n: int, d: int, numba_dir: Path, warm: bool) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", variant, "--data", data, "--n", str(n), "--d", str(d)]
    if warm:
        cmd.append("--warm")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][:300] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--variants", nargs="+", default=["umap", "faiss"], choices=["umap", "faiss", "quick"])
    ap.add_argument("--data", nargs="+", default=["blobs"], choices=["blobs", "fashion"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.data[0], a.n, a.d, a.warm)
        return
    results = []
    for data in a.data:
        for variant in a.variants:
            results.append(measure(variant, data, a.n, a.d))
            print(json.dumps(results[-1]), flush=True)
            write(a, results)
    print(f"wrote {a.out}")


def measure(variant: str, data: str, n: int, d: int) -> dict:
    """One variant on one dataset: a process with an empty numba cache, then the next one (and warm)."""
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="vx-numba-") as numba_dir:
        cold = run_child(variant, data, n, d, Path(numba_dir), warm=False)
        nxt = run_child(variant, data, n, d, Path(numba_dir), warm=True)
    row = {
        "variant": variant,
        "data": data if data == "fashion" else f"blobs {n} x {d}",
        "cold_s": cold.get("first_s"),
        "next_s": nxt.get("first_s"),
        "warm_s": nxt.get("warm_s"),
        "same_blob_10nn": cold.get("same_blob_10nn"),
    }
    if variant == "quick":
        row.update(
            umap_cold_s=cold.get("umap_s"),
            umap_next_s=nxt.get("umap_s"),
            quick_warm_s=nxt.get("quick_warm_s"),
            quick_same_blob_10nn=cold.get("quick_same_blob_10nn"),
            pca2_same_blob_10nn=nxt.get("pca2_same_blob_10nn"),
        )
    if row["warm_s"]:
        for key in ("cold_s", "next_s", "umap_cold_s", "umap_next_s"):
            if row.get(key):
                row[f"{key[:-2]}_over_warm"] = round(row[key] / row["warm_s"], 2)
    row["loadavg_before_after"] = [load, [round(x, 2) for x in os.getloadavg()]]
    errors = [r["error"] for r in (cold, nxt) if "error" in r]
    if errors:
        row["error"] = errors[0]
    return row


def write(a, results: list[dict]) -> None:
    """The results so far (after each variant: a slow run keeps what it measured)."""
    doc = {
        "what": "first 2-d map (vlexplore.project.project_2d) in fresh processes; numba cache empty, then filled",
        "command": "python bench/first_map.py " + " ".join(sys.argv[1:]),
        "data": [
            f"{a.n} x {a.d} unit vectors in 20 Gaussian blobs"
            if d == "blobs"
            else "Fashion-MNIST test embeddings"
            for d in a.data
        ],
        "targets": "a layout on screen: cold <= 3x warm, next <= 1.5x warm (issue 14, target 2)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
