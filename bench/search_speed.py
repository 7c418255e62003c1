"""Search speed once the index exists: vlexplore's SearchIndex against faiss's own search, same data.

Synthetic unit rows (float32, 512-d, seeded) stand in for image embeddings — speed does not depend on
what the vectors mean. For each size the index is built (the numpy matrix up to
``vlexplore.search.EXACT_MAX`` rows, a faiss ``IndexFlatIP`` beyond), then ``--queries`` single-row
queries (top 20) are timed one by one through ``SearchIndex.query`` and through a bare
``faiss.IndexFlatIP.search`` on the same rows, interleaved so both see the same machine load. Reported:
median and 95th percentile ms per query, and the median ratio ours ÷ faiss; for comparison, a bare
numpy matrix-vector product at the same size and a faiss IVF index (√n lists, 16 probed) with its
recall of the exact top 20. Target: ≤ 100 ms per query
at 100,000 images. Writes ``bench/results/search.json``::

    python bench/search_speed.py                       # 10k, 50k, 100k rows, 200 queries each
    python bench/search_speed.py --sizes 100000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def measure(n: int, d: int, queries: int, top: int) -> dict:
    import faiss

    from vlexplore.search import EXACT_MAX, SearchIndex

    X = unit_rows(n, d, seed=0)
    Q = unit_rows(queries, d, seed=1)
    t0 = time.perf_counter()
    ours = SearchIndex(X)
    ours.query(Q[:1], top)  # builds the faiss index above EXACT_MAX
    build_s = time.perf_counter() - t0
    base = faiss.IndexFlatIP(d)
    base.add(X)
    ours_ms, base_ms = [], []
    agree = 0
    for q in Q:
        q = q[None, :]
        t = time.perf_counter()
        _, rows = ours.query(q, top)
        ours_ms.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        _, ref = base.search(q, top)
        base_ms.append((time.perf_counter() - t) * 1e3)
        agree += int(set(rows[0].tolist()) == set(ref[0].tolist()))
    ours_a, base_a = np.array(ours_ms), np.array(base_ms)
    numpy_ms = []  # the exact numpy path at this size, for comparison (one matrix-vector product)
    for q in Q[:50]:
        t = time.perf_counter()
        S = X @ q
        np.argpartition(-S, top)[:top]
        numpy_ms.append((time.perf_counter() - t) * 1e3)
    nlist = int(np.sqrt(n))  # an approximate candidate: IVF, √n lists, 16 probed
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    t = time.perf_counter()
    ivf.train(X[np.random.default_rng(2).choice(n, min(n, 40 * nlist), replace=False)])
    ivf.add(X)
    ivf_build = time.perf_counter() - t
    ivf.nprobe = 16
    ivf_ms, recall = [], []
    for q in Q[:50]:
        q = q[None, :]
        t = time.perf_counter()
        _, rows = ivf.search(q, top)
        ivf_ms.append((time.perf_counter() - t) * 1e3)
        _, ref = base.search(q, top)
        recall.append(len(set(rows[0].tolist()) & set(ref[0].tolist())) / top)
    row = {
        "rows": n,
        "dims": d,
        "top": top,
        "queries": queries,
        "path": "faiss IndexFlatIP" if n > EXACT_MAX else "numpy exact",
        "index_build_s": round(build_s, 3),
        "ours_ms_median": round(float(np.median(ours_a)), 3),
        "ours_ms_p95": round(float(np.percentile(ours_a, 95)), 3),
        "faiss_ms_median": round(float(np.median(base_a)), 3),
        "faiss_ms_p95": round(float(np.percentile(base_a, 95)), 3),
        "ratio_median": round(float(np.median(ours_a / base_a)), 2),
        "numpy_exact_ms_median": round(float(np.median(numpy_ms)), 3),
        "faiss_ivf_ms_median": round(float(np.median(ivf_ms)), 3),
        "faiss_ivf_build_s": round(ivf_build, 2),
        "faiss_ivf_recall_at_top": round(float(np.mean(recall)), 3),
        "same_top_as_faiss": agree / queries,
        "target_ms": 100,
        "meets_target": bool(np.median(ours_a) <= 100),
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="faiss/BLAS threads (both sides)")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "search.json")
    a = ap.parse_args(argv)
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(a.threads)
    with threadpool_limits(a.threads):
        rows = [measure(n, a.dims, a.queries, a.top) for n in a.sizes]
    out = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "threads": a.threads,
            "load_average_after": [round(x, 1) for x in os.getloadavg()],
        },
        "command": "python bench/search_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": rows,
    }
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
