"""k-means refinement stop and side-by-side restarts: quality and time, before and after, in one run.

    python bench/kmeans_tol.py                       # Fashion-MNIST-10k (bundled model) and sklearn's digits
    python bench/kmeans_tol.py --folder bench/data/fashion-mnist-70k --model bench/data/random-clip-512 --cache-dir C

For each data set, five seeds of :func:`vlexplore.cluster.kmeans.kmeans` with k = the number of classes:

* ``exact``: refinement until no row changes centre (at most ``REFINE_ITER`` steps), restarts one after another;
* ``tol``: refinement also stops when a step lowers the loss by less than ``REFINE_TOL`` of it, and
  single-threaded restarts run side by side, one per core;
* with ``--variant NAME=TOL,NITER,PPC,DIM`` (repeatable), more: refinement tolerance ``TOL``, ``NITER`` Lloyd
  iterations per restart, ``PPC`` sample rows per centre and ``DIM`` the fewest principal directions the
  restarts run in, 0 = all (defaults: ``REFINE_TOL``, ``FAISS_NITER``, ``POINTS_PER_CENTRE``,
  ``RESTART_MIN_DIM``).

``--before REV``: also the k-means of git revision ``REV`` (its ``vlexplore/cluster/kmeans.py`` with its own
defaults, on today's helpers), run first in each round, so ``loss_ratio`` is against it.

``--k`` adds more cluster counts than the number of classes (ACC is then Hungarian-matched to the
classes). ``loss_ratio`` is a run's k-means loss over the ``exact`` run's (``--no-exact``: ``tol``'s), same data, k and seed.

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
sys.path.insert(0, str(BENCH))
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
    if a.pixels:  # 70,000 x 784 raw pixels: full-rank rows, unlike a random network's embeddings
        from fashion_mnist import load_fashion_mnist

        parts = [load_fashion_mnist(split) for split in ("test", "train")]
        pixels = np.concatenate([p[0].reshape(len(p[0]), -1) for p in parts]).astype(np.float32)
        out["fashion-mnist-70k (raw pixels)"] = (l2_normalize(pixels), np.concatenate([p[1] for p in parts]))
    if a.folder:
        import vlexplore as vx
        from vlexplore.pipeline import load_encoder_or_fallback

        col = vx.scan(a.folder, cache_dir=a.cache_dir)
        cfg = vx.EncodeConfig(model=a.model, cache_dir=a.cache_dir)
        enc, _ = load_encoder_or_fallback(cfg, lazy=True)
        emb = vx.embed(col, cfg, encoder=enc)
        out[f"{Path(a.folder).name} ({Path(a.model).name})"] = (l2_normalize(emb.views["image"]), col.labels)
    return out


def load_before(rev: str):
    """``vlexplore/cluster/kmeans.py`` as of git revision ``rev``, imported beside today's package."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(
        ["git", "show", f"{rev}:vlexplore/cluster/kmeans.py"],
        cwd=BENCH.parent,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "kmeans_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("vlexplore.cluster.kmeans_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "vlexplore.cluster"
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", default=None)
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--no-exact", action="store_true", help="skip the exact run (loss_ratio: against tol)")
    ap.add_argument("--pixels", action="store_true", help="also Fashion-MNIST-70k as raw pixels (784-d)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=TOL,NITER,PPC",
        help="another variant: refinement tolerance, Lloyd iterations per restart, sample rows per centre",
    )
    ap.add_argument("--k", type=int, nargs="+", default=[], help="more k than the number of classes")
    ap.add_argument("--before", default=None, metavar="REV", help="also REV's kmeans.py, run first")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "kmeans_tol.json")
    ap.add_argument("--key", default=None, help="the results' key in the JSON file (default: by data set)")
    a = ap.parse_args()
    km = importlib.import_module("vlexplore.cluster.kmeans")
    from vlexplore.evaluate import evaluate_labels

    defaults = (km.REFINE_TOL, km._cores, km.FAISS_NITER, km.POINTS_PER_CENTRE, km.RESTART_MIN_DIM)
    tol, cores, niter, ppc, dim = defaults
    variants = {"exact": (0.0, lambda: 1, niter, ppc, 0), "tol": (tol, cores, niter, ppc, dim)}
    if a.no_exact:
        del variants["exact"]
    before = load_before(a.before) if a.before else None
    if before is not None:
        variants = {"before": (tol, cores, niter, ppc, dim), **variants}
    for spec in a.variant:
        name, _, values = spec.partition("=")
        parts = [*values.split(","), "", "", ""][:4]
        variants[name] = (
            float(parts[0] or tol),
            cores,
            int(parts[1] or niter),
            int(parts[2] or ppc),
            int(parts[3] or dim),
        )
    rows = []
    for name, (X, y) in data_sets(a).items():
        n_classes = len(np.unique(y))
        for k in dict.fromkeys([n_classes, *a.k]):
            for seed in range(a.seeds):
                exact_loss = None
                for variant, (t, c, it, pp, dm) in variants.items():
                    km.REFINE_TOL, km._cores, km.FAISS_NITER, km.POINTS_PER_CENTRE, km.RESTART_MIN_DIM = (
                        t,
                        c,
                        it,
                        pp,
                        dm,
                    )
                    t0 = time.perf_counter()
                    fit = (before if variant == "before" else km).kmeans(X, k, seed=seed)
                    seconds = time.perf_counter() - t0
                    exact_loss = fit.inertia if exact_loss is None else exact_loss
                    scores = evaluate_labels(np.asarray(y), fit.labels)
                    rows.append(
                        {
                            "data": name,
                            "n": len(X),
                            "k": k,
                            "seed": seed,
                            "variant": variant,
                            "acc": round(float(scores["acc"]), 4),
                            "nmi": round(float(scores["nmi"]), 4),
                            "loss_ratio": round(float(fit.inertia / exact_loss), 5),
                            "seconds": round(seconds, 3),
                        }
                    )
                    print(rows[-1], flush=True)
    km.REFINE_TOL, km._cores, km.FAISS_NITER, km.POINTS_PER_CENTRE, km.RESTART_MIN_DIM = defaults
    summary = {}
    for name, k in dict.fromkeys((r["data"], r["k"]) for r in rows):
        for variant in variants:
            sel = [r for r in rows if r["data"] == name and r["k"] == k and r["variant"] == variant]
            summary.setdefault(f"{name}, k = {k}", {})[variant] = {
                "acc_mean": round(float(np.mean([r["acc"] for r in sel])), 4),
                "nmi_mean": round(float(np.mean([r["nmi"] for r in sel])), 4),
                "loss_ratio_mean": round(float(np.mean([r["loss_ratio"] for r in sel])), 5),
                "seconds_median": round(float(np.median([r["seconds"] for r in sel])), 3),
            }
    out = {
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "refine_tol": tol,
        "variants": {
            name: {"refine_tol": t, "faiss_niter": it, "points_per_centre": pp, "restart_min_dim": dm}
            for name, (t, _, it, pp, dm) in variants.items()
        },
        "command": "python bench/kmeans_tol.py " + " ".join(sys.argv[1:]),
        "summary": summary,
        "runs": rows,
    }
    data = json.loads(a.out.read_text()) if a.out.exists() else {}
    data[a.key or ("with-folder" if a.folder else "default")] = out
    a.out.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
