"""Re-clustering speed and quality: k-means, agglomerative and HDBSCAN against faiss's own k-means.

Speed is measured on synthetic blobs (512-d, unit rows) and reported as a RATIO to faiss's k-means
with its defaults (``faiss.Kmeans(d, k).train(X)`` then one ``search`` for every row's label) run in
the same process right before, best of ``--repeat`` each — the machine is shared, only ratios are
comparable. Quality (ACC, Hungarian matching) is measured on Fashion-MNIST-10k (bundled model's
``image`` view) and on sklearn's digits (1,797 8×8 images, raw pixels), so defaults are not tuned to
one data set. Writes ``bench/results/recluster.json``::

    python bench/recluster.py                    # everything (about 15 minutes on two busy cores)
    python bench/recluster.py --parts speed      # speed only
    python bench/recluster.py --slow             # also exact Ward on the raw 1280-d embeddings
    python bench/recluster.py --threads 2        # faiss/BLAS on two threads (default: one, both sides)

The Fashion-MNIST embeddings are read from ``bench/data/fashion-mnist-test-embeddings.npz``; when it is
missing they are computed once (``bench/fashion_mnist.py`` export + the bundled model, ~10-20 min).
"""

from __future__ import annotations

import argparse
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
#: Figures measured on main before this work (the issue's numbers, 2 cores; ACC from bench/quality.py).
BEFORE = {
    ("kmeans", 20_000, 20): {"seconds": 3.0, "ratio": 88},
    ("agglomerative", 20_000, 20): {"seconds": 64.0, "ratio": 1870},
    "fm_acc": {"kmeans": 0.734, "agglomerative": 0.719, "hdbscan": 0.3219, "hdbscan_noise": 0.3938},
}


def blobs(n: int, d: int = 512, centres: int = 50, seed: int = 0) -> np.ndarray:
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=n, n_features=d, centers=centres, cluster_std=4.0, random_state=seed)
    X = X.astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def best(fn, repeat: int, *args, **kw) -> tuple[float, object]:
    """The shortest of ``repeat`` runs of ``fn(*args, **kw)`` and its last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args, **kw)
        times.append(time.perf_counter() - t)
    return min(times), out


def paired(repeat: int, base_fn, ours_fn, *args, **kw) -> tuple[float, float, object]:
    """Best-of-``repeat`` times of the baseline and ours, run alternately (load changes hit both)."""
    tb, to, out = [], [], None
    for _ in range(repeat):
        t = time.perf_counter()
        base_fn(*args)
        tb.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = ours_fn(*args, **kw)
        to.append(time.perf_counter() - t)
    return min(tb), min(to), out


def faiss_kmeans(X: np.ndarray, k: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(X.shape[1], k, seed=1)
    km.train(X)
    return km.index.search(X, 1)[1].ravel()


def speed(repeat: int, density: bool = True) -> list[dict]:
    from vlexplore.cluster import AgglomerativeClusterer, HDBSCANClusterer
    from vlexplore.cluster import density as dens
    from vlexplore.cluster.kmeans import kmeans

    rows = []

    def row(method, n, k, ours, base, **extra):
        r = {
            "method": method,
            "rows": n,
            "k": k,
            "seconds": round(ours, 3),
            "faiss_seconds": round(base, 3),
            "ratio": round(ours / base, 1),
            **extra,
        }
        b = BEFORE.get((method, n, k))
        if b:
            r["before"] = b
        rows.append(r)
        print(json.dumps(r), flush=True)

    for n in (20_000, 100_000):
        X, _ = blobs(n)
        for k in (20, 100):
            base, ours, fit = paired(repeat, faiss_kmeans, kmeans, X, k, seed=0)
            row("kmeans", n, k, ours, base, n_init=fit.n_init, backend=fit.backend)
        if n == 20_000:
            base, ours, est = paired(1, lambda A: faiss_kmeans(A, 20), AgglomerativeClusterer(k=20).fit, X)
            row(
                "agglomerative",
                n,
                20,
                ours,
                base,
                pca_dims=est.n_components_,
                micro_clusters=est.micro_clusters_,
            )
        if n == 100_000 and density:
            dens._MEMORY.clear()
            base, _ = best(faiss_kmeans, repeat, X, 20)
            cold, est = best(HDBSCANClusterer().fit, 1, X)
            row(
                "hdbscan cold (UMAP-5 + hdbscan)",
                n,
                None,
                cold,
                base,
                clusters=est.n_clusters_,
                noise_share=round(est.noise_share_, 3),
            )
            for backend in ("hdbscan", "sklearn"):
                warm, est = best(HDBSCANClusterer(backend=backend).fit, 1, X)
                row(
                    f"hdbscan warm ({backend}, cached UMAP-5)",
                    n,
                    None,
                    warm,
                    base,
                    clusters=est.n_clusters_,
                    noise_share=round(est.noise_share_, 3),
                    reduction_cached=est.reduction_cached_,
                )
    return rows


def fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    if not EMB.exists():
        from fashion_mnist import export_fashion_mnist

        import vlexplore as vx

        emb = vx.embed(
            vx.scan(export_fashion_mnist(split="test")),
            vx.EncodeConfig(model="bundled", cache_dir=BENCH / "data" / "cache"),
        )
        np.savez(
            EMB, image=np.asarray(emb.views["image"], np.float32), labels=np.asarray(emb.collection.labels)
        )
    d = np.load(EMB, allow_pickle=True)
    return d["image"].astype(np.float32), d["labels"]


def datasets() -> dict:
    from sklearn.datasets import load_digits

    from vlexplore.models.base import l2_normalize

    X, y = fashion_mnist()
    dg = load_digits()
    return {
        "fashion-mnist-10k": (l2_normalize(X), y),
        "digits": (l2_normalize(dg.data.astype(np.float32)), dg.target),
    }


def quality(slow: bool) -> list[dict]:
    from sklearn.cluster import KMeans

    from vlexplore.cluster import HDBSCANClusterer
    from vlexplore.cluster.hierarchy import pca_reduce, ward_labels
    from vlexplore.cluster.kmeans import kmeans
    from vlexplore.evaluate import clustering_accuracy as acc

    rows = []

    def row(data, method, variant, a, seconds, **extra):
        r = {
            "data": data,
            "method": method,
            "variant": variant,
            "acc": round(float(a), 4),
            "seconds": round(seconds, 2),
            **extra,
        }
        rows.append(r)
        print(json.dumps(r), flush=True)

    for name, (X, y) in datasets().items():
        t = time.perf_counter()
        lab = KMeans(n_clusters=10, n_init=10, random_state=0).fit(X).labels_
        row(name, "kmeans", "sklearn exact, 10 restarts (before)", acc(y, lab), time.perf_counter() - t)
        for seed in (1, 2, 3, 4):
            lab = KMeans(n_clusters=10, n_init=10, random_state=seed).fit(X).labels_
            row(name, "kmeans", f"sklearn exact, 10 restarts (before), seed {seed}", acc(y, lab), 0.0)
        for seed in (0, 1, 2, 3, 4):
            t = time.perf_counter()
            fit = kmeans(X, 10, seed=seed)
            row(
                name,
                "kmeans",
                f"ours ({fit.backend}, {fit.n_init} restarts), seed {seed}",
                acc(y, fit.labels),
                time.perf_counter() - t,
            )
        dims_list = [20, 50, 100] + ([None] if slow or X.shape[1] <= 100 else [])
        for dims in dims_list:
            t = time.perf_counter()
            lab = ward_labels(pca_reduce(X, dims), 10)
            row(
                name,
                "agglomerative",
                f"fastcluster Ward on {'raw' if dims is None else f'PCA-{dims}'}",
                acc(y, lab),
                time.perf_counter() - t,
            )
        variants = [
            (
                "PCA-10, eom, n/100 (before)",
                {"reducer": "pca", "reduce_dims": 10, "min_cluster_size": max(5, len(X) // 100)},
            ),
            ("UMAP-5, leaf, n/20 (default)", {}),
            ("UMAP-10, leaf, n/20", {"reduce_dims": 10}),
        ]
        for label, kw in variants:
            for backend in ("hdbscan", "sklearn"):
                for assign in (False, True):
                    old = label.endswith("(before)")
                    if old and (assign or backend == "hdbscan"):
                        continue
                    t = time.perf_counter()
                    if old:
                        from sklearn.cluster import HDBSCAN
                        from sklearn.decomposition import PCA

                        Z = PCA(n_components=10, random_state=0).fit_transform(X)
                        lab = HDBSCAN(min_cluster_size=kw["min_cluster_size"], copy=True).fit(Z).labels_
                        noise, clusters = float((lab < 0).mean()), int(lab.max()) + 1
                    else:
                        est = HDBSCANClusterer(backend=backend, assign_noise=assign, **kw).fit(X)
                        lab, noise, clusters = est.labels_, est.noise_share_, est.n_clusters_
                    row(
                        name,
                        "hdbscan",
                        f"{label}, {backend}" + (", noise assigned" if assign else ""),
                        acc(y, lab),
                        time.perf_counter() - t,
                        noise_share=round(noise, 4),
                        clusters=clusters,
                    )
    return rows


def stability() -> list[dict]:
    """A small mixed folder: 20 images each of four kinds, k = 4, seeds 0..4, before and after."""
    from sklearn.cluster import KMeans

    from vlexplore.cluster import KMeansClusterer
    from vlexplore.evaluate import clustering_accuracy as acc

    rows = []
    for name, (X, y) in datasets().items():
        kinds = np.unique(y)[[0, 1, 7, 8] if name.startswith("fashion") else [1, 3, 5, 8]]
        rng = np.random.default_rng(0)
        idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 20, replace=False) for c in kinds])
        Xs, ys = X[idx], y[idx]
        before = [acc(ys, KMeans(n_clusters=4, n_init=10, random_state=s).fit(Xs).labels_) for s in range(5)]
        after = [acc(ys, KMeansClusterer(k=4, seed=s).fit(Xs).labels_) for s in range(5)]
        r = {
            "data": f"{name}, 80 images of 4 kinds, k=4",
            "seeds": [0, 1, 2, 3, 4],
            "acc_before": [round(a, 3) for a in before],
            "acc_after": [round(a, 3) for a in after],
        }
        rows.append(r)
        print(json.dumps(r), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--parts",
        nargs="+",
        default=["speed", "quality", "stability"],
        choices=["speed", "quality", "stability"],
    )
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs per timing")
    ap.add_argument(
        "--no-density-speed", action="store_true", help="skip HDBSCAN at 100k (UMAP takes minutes)"
    )
    ap.add_argument("--slow", action="store_true", help="also exact Ward on the raw Fashion-MNIST embeddings")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for faiss and BLAS, ours and the baseline alike (default 1: on shared cores "
        "OpenMP spinning slows faiss's multi-threaded runs by up to 8x, which would flatter the "
        "single-threaded fastcluster and HDBSCAN)",
    )
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "recluster.json")
    a = ap.parse_args(argv)
    out = json.loads(a.out.read_text()) if a.out.exists() else {}
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(a.threads)
    threadpool_limits(a.threads)
    if "speed" in a.parts:
        rows = speed(a.repeat, density=not a.no_density_speed)
        keep = (
            [r for r in out.get("speed", []) if r["method"].startswith("hdbscan")]
            if a.no_density_speed
            else []
        )
        out["speed"] = rows + keep
    if "quality" in a.parts:
        out["quality"] = quality(a.slow)
    if "stability" in a.parts:
        out["stability"] = stability()
    out.update(
        {
            "before": {
                "kmeans 20k k=20": BEFORE[("kmeans", 20_000, 20)],
                "agglomerative 20k": BEFORE[("agglomerative", 20_000, 20)],
                "fashion-mnist acc": BEFORE["fm_acc"],
            },
            "baseline": "faiss.Kmeans(d, k, seed=1) defaults: train + one search for every row's label",
            "machine": f"{platform.machine()}, {platform.python_version()}, 2 shared cores, CPU only",
            "threads": a.threads,
            "command": "python bench/recluster.py" + (" --slow" if a.slow else ""),
        }
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
