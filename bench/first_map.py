"""The first map in a brand-new process: empty numba cache, the next process, and warm.

    .venv/bin/python bench/first_map.py                       # 10,000 x 512, every variant
    .venv/bin/python bench/first_map.py --n 20000 --variants umap

Each case runs in a fresh child process (``python bench/first_map.py --child ...``) with
``NUMBA_CACHE_DIR`` pointed at a temporary folder of this run, empty for the first process of a
variant; the clock starts before the child imports anything of vlexplore, umap or numba:

* ``cold_s`` — the first layout in a process whose numba cache is empty (everything compiles);
* ``next_s`` — the same in the next process (the cache that the first one wrote);
* ``warm_s`` — a second layout of other data in that same process (nothing left to compile or import).

Variants (``vlexplore.project.project_2d(..., knn=...)``):

* ``umap`` — UMAP finds its own neighbours (pynndescent above ~4k points: the longest compile);
* ``faiss`` — exact cosine neighbours from faiss handed to UMAP (``precomputed_knn``), the default.

Data: ``n`` vectors in 20 Gaussian blobs (``d``-dimensional, unit-normalised). ``same_blob_10nn``:
share of each point's 10 nearest 2-d neighbours from its own blob (the layout's quality).
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


def blobs(n: int, d: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    labels = rng.integers(0, 20, n)
    X = centres[labels] + rng.normal(scale=1.2, size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), labels


def same_blob_10nn(coords, labels) -> float:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=11).fit(coords)
    idx = nn.kneighbors(coords, return_distance=False)[:, 1:]
    return float((labels[idx] == labels[:, None]).mean())


def child(variant: str, n: int, d: int, warm: bool) -> None:
    sys.path.insert(0, str(ROOT))
    X, labels = blobs(n, d, seed=0)
    t_data = time.perf_counter()
    from vlexplore.project import project_2d

    out: dict = {}
    coords = project_2d(X, knn=variant)
    out["first_s"] = round(time.perf_counter() - t_data, 2)  # imports included, the data excluded
    out["same_blob_10nn"] = round(same_blob_10nn(coords, labels), 3)
    if warm:
        X2, _labels2 = blobs(n, d, seed=1)
        t = time.perf_counter()
        coords = project_2d(X2, knn=variant)
        out["warm_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps(out))


def run_child(variant: str, n: int, d: int, numba_dir: Path, warm: bool) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", variant, "--n", str(n), "--d", str(d)]
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
    ap.add_argument("--variants", nargs="+", default=["umap", "faiss"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.n, a.d, a.warm)
        return
    results = []
    for variant in a.variants:
        with tempfile.TemporaryDirectory(prefix="vx-numba-") as numba_dir:
            cold = run_child(variant, a.n, a.d, Path(numba_dir), warm=False)
            nxt = run_child(variant, a.n, a.d, Path(numba_dir), warm=True)
        row = {
            "variant": variant,
            "cold_s": cold.get("first_s"),
            "next_s": nxt.get("first_s"),
            "warm_s": nxt.get("warm_s"),
            "same_blob_10nn": cold.get("same_blob_10nn"),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        if row["warm_s"]:
            row["cold_over_warm"] = round(row["cold_s"] / row["warm_s"], 2) if row["cold_s"] else None
            row["next_over_warm"] = round(row["next_s"] / row["warm_s"], 2) if row["next_s"] else None
        errors = [r["error"] for r in (cold, nxt) if "error" in r]
        if errors:
            row["error"] = errors[0]
        print(json.dumps(row), flush=True)
        results.append(row)
        write(a, results)
    print(f"wrote {a.out}")


def write(a, results: list[dict]) -> None:
    """The results so far (after each variant: a slow run keeps what it measured)."""
    doc = {
        "what": "first 2-d map (vlexplore.project.project_2d) in fresh processes; numba cache empty, then filled",
        "command": "python bench/first_map.py " + " ".join(sys.argv[1:]),
        "data": f"{a.n} x {a.d} unit vectors in 20 Gaussian blobs",
        "targets": "cold <= 3x warm, next <= 1.5x warm (issue 14, target 2)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
