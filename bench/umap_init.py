"""UMAP's start at scale: the spectral layout against PCA, time, memory and map quality, on two kinds of data.

    python bench/umap_init.py                                  # 200,000 synthetic 512-d rows in 50 groups
    python bench/umap_init.py --n 100000 --groups 20

:func:`vlexplore.project.project_2d` runs in a fresh process per start (``SPECTRAL_INIT_MAX`` set so that
the start is the one asked for), on the same rows: the seconds, the process's peak memory, and the
share of each point's 10 nearest 2-d neighbours that are in its own group (higher: groups kept apart on
the map). The synthetic rows are unit vectors around ``--groups`` centres, with groups of groups (five
families share a direction) and noise that keeps every dimension in use, so unlike a random network's
embeddings they are full-rank. Results go to ``bench/results/umap_init.json`` under ``--key``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "results" / "umap_init.json"


def synthetic(n: int, groups: int, d: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit rows in ``groups`` groups (five families of groups), with full-rank noise: ``(X, groups)``."""
    rng = np.random.default_rng(seed)
    families = rng.normal(size=(5, d))
    centres = families[np.arange(groups) % 5] + 0.5 * rng.normal(size=(groups, d))
    y = rng.integers(0, groups, n)
    # noise 2.0: at 20,000 rows 76 % of each row's 10 nearest rows (cosine, 512-d) share its group
    X = centres[y] / np.sqrt(d) + rng.normal(scale=2.0 / np.sqrt(d), size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y


def same_group_share(Y: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """The mean share of each point's ``k`` nearest 2-d neighbours (itself excluded) in its own group."""
    import faiss

    index = faiss.IndexFlatL2(2)
    index.add(np.ascontiguousarray(Y, dtype=np.float32))
    _, idx = index.search(np.ascontiguousarray(Y, dtype=np.float32), k + 1)
    return float((y[idx[:, 1:]] == y[:, None]).mean())


def child(data: Path, init: str, out: Path) -> None:
    sys.path.insert(0, str(REPO))
    import vlexplore.project as project

    X = np.load(data)
    project.SPECTRAL_INIT_MAX = len(X) if init == "spectral" else 0
    t = time.perf_counter()
    Y = project.project_2d(X, seed=0)
    seconds = time.perf_counter() - t
    np.save(out, Y)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 1), "peak_mb": round(peak_mb)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--key", default=None, help="results key (default: synthetic-<n>)")
    ap.add_argument("--child", nargs=3, metavar=("DATA", "INIT", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(Path(a.child[0]), a.child[1], Path(a.child[2]))
        return
    import tempfile

    X, y = synthetic(a.n, a.groups)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "X.npy"
        np.save(data, X)
        base_mb = X.nbytes / 2**20
        for init in ("spectral", "pca"):
            layout = Path(tmp) / f"{init}.npy"
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(data), init, str(layout)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["same_group_10nn"] = round(same_group_share(np.load(layout), y), 4)
            row["peak_above_input_mb"] = round(row["peak_mb"] - base_mb)
            rows[init] = row
            print(init, row, flush=True)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results[a.key or f"synthetic-{a.n}"] = {
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(["python bench/umap_init.py", *sys.argv[1:]]),
        "n": a.n,
        "groups": a.groups,
        "runs": rows,
    }
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
