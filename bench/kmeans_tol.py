"""k-means refinement stop and side-by-side restarts: quality and time, before and after, in one run.

    python bench/kmeans_tol.py                       # Fashion-MNIST-10k (bundled model) and sklearn's digits
    python bench/kmeans_tol.py --folder bench/data/fashion-mnist-70k --model bench/data/random-clip-512 --cache-dir C

For each data set, five seeds of :func:`vlexplore.cluster.kmeans.kmeans` with k = the number of classes:

* ``exact``: refinement until no row changes centre (at most ``REFINE_ITER`` steps), restarts one after another;
* ``tol``: refinement also stops when a step lowers the loss by less than ``REFINE_TOL`` of it, and
  single-threaded restarts run side by side, one per core.

ACC is Hungarian-matched against the folder labels. Writes ``bench/results/kmeans_tol.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
EMB = BENCH / "data" / "fashion-mnist-test-embeddings.npz"


def data_sets(a) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits

    from vlexplore.models.base import l2_normalize

    out = {}
    if EMB.is_file():
        z = np.load(EMB)
        out["fashion-mnist-10k (bundled model)"] = (l2_normalize(z["image"]), z["labels"])
    d = load_digits()
    out["digits (raw pixels)"] = (l2_normalize(d.data.astype(np.float32)), d.target)
    if a.folder:
        import vlexplore as vx
        from vlexplore.pipeline import load_encoder_or_fallback

        col = vx.scan(a.folder, cache_dir=a.cache_dir)
        cfg = vx.EncodeConfig(model=a.model, cache_dir=a.cache_dir)
        enc, _ = load_encoder_or_fallback(cfg, lazy=True)
        emb = vx.embed(col, cfg, encoder=enc)
        out[f"{Path(a.folder).name} ({Path(a.model).name})"] = (l2_normalize(emb.views["image"]), col.labels)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", default=None)
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "kmeans_tol.json")
    a = ap.parse_args()
    km = importlib.import_module("vlexplore.cluster.kmeans")
    from vlexplore.evaluate import evaluate_labels

    tol, cores = km.REFINE_TOL, km._cores
    variants = {"exact": (0.0, lambda: 1), "tol": (tol, cores)}
    rows = []
    for name, (X, y) in data_sets(a).items():
        k = len(np.unique(y))
        for seed in range(a.seeds):
            for variant, (t, c) in variants.items():
                km.REFINE_TOL, km._cores = t, c
                t0 = time.perf_counter()
                fit = km.kmeans(X, k, seed=seed)
                seconds = time.perf_counter() - t0
                acc = evaluate_labels(np.asarray(y), fit.labels)["acc"]
                rows.append(
                    {
                        "data": name,
                        "n": len(X),
                        "k": k,
                        "seed": seed,
                        "variant": variant,
                        "acc": round(float(acc), 4),
                        "seconds": round(seconds, 3),
                    }
                )
                print(rows[-1], flush=True)
    km.REFINE_TOL, km._cores = tol, cores
    summary = {}
    for name in dict.fromkeys(r["data"] for r in rows):
        for variant in variants:
            sel = [r for r in rows if r["data"] == name and r["variant"] == variant]
            summary.setdefault(name, {})[variant] = {
                "acc_mean": round(float(np.mean([r["acc"] for r in sel])), 4),
                "seconds_median": round(float(np.median([r["seconds"] for r in sel])), 3),
            }
    out = {
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "refine_tol": tol,
        "command": "python bench/kmeans_tol.py " + " ".join(sys.argv[1:]),
        "summary": summary,
        "runs": rows,
    }
    data = json.loads(a.out.read_text()) if a.out.exists() else {}
    data["with-folder" if a.folder else "default"] = out
    a.out.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
