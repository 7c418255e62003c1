"""Scale benchmark: wall time and memory of every stage at 1k, 10k and 70k images, and a 1M / 10M estimate.

Data: Fashion-MNIST train + test (70,000 labelled product photos, Debian package ``dataset-fashion-mnist``)
written as PNG class folders by ``bench/fashion_mnist.py``. The 1k and 10k sets are seeded, class-mixed
subsets of the 70k (hard links, so their content fingerprints and cache entries are the same).

Every (size, stage) runs in a fresh child process. Its inputs (scan, embeddings from the cache) are loaded
first; then the peak-RSS counter is reset (``/proc/self/clear_refs``) and the stage is timed, so
``stage_peak_mb`` is the most memory the stage itself added above what the process held before it.

    python bench/fashion_mnist.py --split test  --out bench/data/fashion-mnist-70k
    python bench/fashion_mnist.py --split train --out bench/data/fashion-mnist-70k
    python -m vlexplore embed bench/data/fashion-mnist-70k --cache-dir bench/data/cache   # ~1 h on 2 cores
    python bench/scale.py                      # all stages at 1k, 10k, 70k  -> bench/results/scale.json
    python bench/scale.py --sizes 1000 --stages scan reopen kmeans

Stages: scan, embed_cold (fresh cache; sizes up to --cold-max), embed_ray (the same on a local Ray runtime,
compared with the local engine's vectors), reopen (all vectors from the cache),
kmeans (the automatic choice), kmeans_exact (sklearn, 10 restarts; sizes above the automatic switch),
hdbscan (PCA-10), agglomerative (exact, or over micro-clusters above 20k), knn (10 neighbours, exact
or approximate above 50k), umap (2-d map; numba compiled beforehand on 500 points), export (Parquet),
decode (decode + preprocess of 12-megapixel JPEGs on one thread: the per-core input cost of real photos).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / "data"
FOLDER_70K = DATA / "fashion-mnist-70k"
CACHE = DATA / "cache"
RESULTS = BENCH / "results" / "scale.json"
STAGES = (
    "scan",
    "embed_cold",
    "embed_ray",
    "reopen",
    "kmeans",
    "kmeans_exact",
    "hdbscan",
    "agglomerative",
    "knn",
    "umap",
    "export",
    "decode",
)
#: Stages whose cost does not depend on the collection size (measured once).
SIZE_FREE = ("decode",)


# --------------------------------------------------------------------------- memory


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- inputs


def subset_folder(n: int) -> Path:
    """The first ``n`` of a seeded permutation of the 70k images, as hard links (same bytes, same cache keys)."""
    if n >= 70_000:
        return FOLDER_70K
    import numpy as np

    out = DATA / f"fashion-mnist-70k-n{n}"
    marker = out / ".complete"
    if marker.exists():
        return out
    files = sorted(p for p in FOLDER_70K.rglob("*.png"))
    if len(files) < 70_000:
        raise SystemExit(
            f"{FOLDER_70K} holds {len(files)} PNGs, expected 70,000; see this script's docstring"
        )
    pick = np.random.default_rng(0).permutation(len(files))[:n]
    for i in pick:
        src = files[i]
        dst = out / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    marker.touch()
    return out


def photo_folder(count: int = 24) -> Path:
    """``count`` 12-megapixel (4032×3024) JPEGs of smooth random scenes with grain, quality 90."""
    import numpy as np
    from PIL import Image

    out = DATA / "photos-12mp"
    if len(list(out.glob("*.jpg"))) >= count:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        big = np.asarray(small.resize((4032, 3024), Image.Resampling.BICUBIC), dtype=np.int16)
        big = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
        Image.fromarray(big).save(out / f"photo_{i:03d}.jpg", quality=90)
    return out


# --------------------------------------------------------------------------- one stage (child process)


def child(n: int, stage: str) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    import vlexplore as vx
    from vlexplore.encode import embed_images
    from vlexplore.models.registry import load_encoder

    extra: dict = {}
    if stage == "decode":
        import torch

        from vlexplore.encode import prepare_image

        torch.set_num_threads(1)
        encoder = load_encoder("bundled", device="cpu")
        paths = sorted(photo_folder().glob("*.jpg"))
        prepare_image(paths[0], encoder)
        reset_peak()
        base = rss_mb()
        t = time.perf_counter()
        for p in paths:
            prepare_image(p, encoder)
        seconds = time.perf_counter() - t
        return {
            "n": len(paths),
            "seconds": seconds,
            "per_s": len(paths) / seconds,
            "stage_peak_mb": hwm_mb() - base,
            "image": "4032x3024 JPEG, q90, one thread",
        }

    folder = subset_folder(n)
    if stage == "scan":
        reset_peak()
        base = rss_mb()
        t = time.perf_counter()
        col = vx.scan_folder(folder)
        seconds = time.perf_counter() - t
        return {
            "n": len(col),
            "seconds": seconds,
            "per_s": len(col) / seconds,
            "stage_peak_mb": hwm_mb() - base,
        }

    col = vx.scan_folder(folder)
    encoder = load_encoder("bundled", device="cpu", cache_dir=CACHE)
    if stage == "embed_cold":
        import torch

        from vlexplore.images import open_image

        encoder.encode_image_batch(torch.stack([encoder.preprocess(open_image(p)) for p in col.paths[:64]]))
        calls: list[tuple[int, float]] = []
        forward_call = encoder.encode_image_batch

        def timed(batch):  # the model's own rate: its calls timed inside the run (see bench/speed.py)
            t0 = time.perf_counter()
            out = forward_call(batch)
            calls.append((len(batch), time.perf_counter() - t0))
            return out

        encoder.encode_image_batch = timed
        tmp = Path(tempfile.mkdtemp(prefix="vlexplore-scale-"))
        try:
            reset_peak()
            base = rss_mb()
            t = time.perf_counter()
            res = embed_images(col, encoder, cache_dir=tmp)
            seconds = time.perf_counter() - t
            peak = hwm_mb() - base
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        forward = sum(c for c, _ in calls) / sum(d for _, d in calls)
        return {
            "n": len(col),
            "seconds": seconds,
            "per_s": len(col) / seconds,
            "stage_peak_mb": peak,
            "forward_per_s": forward,
            "over_forward": len(col) / seconds / forward,
            "computed": res.n_computed,
            "threads": torch.get_num_threads(),
        }

    if stage == "embed_ray":
        from vlexplore.distributed import connect, embed_images_ray, ray_module

        tmp = Path(tempfile.mkdtemp(prefix="vlexplore-scale-"))
        try:
            t = time.perf_counter()
            connect(None)  # a local runtime, as `--engine ray` without --address starts
            startup = time.perf_counter() - t
            reset_peak()
            base = rss_mb()
            t = time.perf_counter()
            res = embed_images_ray(col, "bundled", device="cpu", cache_dir=tmp)
            seconds = time.perf_counter() - t
            peak = hwm_mb() - base
            ray_module().shutdown()
            local = embed_images(col, encoder, cache_dir=CACHE)
            diff = max(float(np.abs(res.views[v] - local.views[v]).max()) for v in local.views)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {
            "n": len(col),
            "seconds": seconds,
            "per_s": len(col) / seconds,
            "stage_peak_mb": peak,
            "runtime_start_s": startup,
            "computed": res.n_computed,
            "max_abs_diff_vs_local": diff,
            "runtime": "local Ray runtime, 2 CPUs, one CPU actor",
        }

    if stage == "reopen":
        reset_peak()
        base = rss_mb()
        t = time.perf_counter()
        res = embed_images(col, encoder, cache_dir=CACHE)
        seconds = time.perf_counter() - t
        out_mb = sum(v.nbytes for v in res.views.values()) / 2**20
        return {
            "n": len(res.collection),
            "seconds": seconds,
            "per_s": len(res.collection) / seconds,
            "stage_peak_mb": hwm_mb() - base,
            "arrays_mb": out_mb,
            "computed": res.n_computed,
            "shards": len(list(CACHE.glob(f"{_slug(encoder.model_id)}-*/*.parquet"))),
        }

    res = embed_images(col, encoder, cache_dir=CACHE)
    if res.n_computed:
        raise SystemExit(
            f"{res.n_computed} images were not cached; run the embed command in the docstring first"
        )
    X = res.views["image"]
    y = res.collection.labels
    from vlexplore.evaluate import evaluate_labels

    def timed(fn):
        reset_peak()
        base = rss_mb()
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t, hwm_mb() - base

    if stage in ("kmeans", "kmeans_exact", "hdbscan", "agglomerative"):
        from vlexplore import cluster as cl

        if stage == "kmeans_exact":
            if n <= cl.MINIBATCH_THRESHOLD:
                return {"skipped": f"the automatic choice is already exact at {n}"}
            cl.MINIBATCH_THRESHOLD = 10**12
        method = "kmeans" if stage.startswith("kmeans") else stage
        result, seconds, peak = timed(lambda: vx.cluster_vectors(X, vx.ClusterConfig(method=method, k=10)))
        scores = evaluate_labels(y, result.labels)
        extra = {
            "acc": scores["acc"],
            "nmi": scores["nmi"],
            "ari": scores["ari"],
            **result.info,
            "clusters": len(set(result.labels.tolist()) - {-1}),
            "noise_share": float((result.labels < 0).mean()),
        }
    elif stage == "knn":
        from vlexplore import largescale
        from vlexplore.nouns import knn_indices

        idx, seconds, peak = timed(lambda: knn_indices(X, 10))
        extra = {
            "consistency_at_10": float((y[idx] == y[:, None]).mean()),
            "engine": "exact"
            if n <= largescale.EXACT_KNN_MAX
            else ("faiss-hnsw" if largescale.faiss_module() else "nndescent"),
        }
    elif stage == "umap":
        from vlexplore.project import project_2d, warm_up_umap

        warm_up_umap(CACHE)  # numba compiles both neighbour paths (exact, NN-descent) before the clock starts
        _, seconds, peak = timed(lambda: project_2d(X, seed=0))
    elif stage == "export":
        from vlexplore.export import to_dataframe, write_table

        labels = vx.cluster_vectors(X, vx.ClusterConfig(method="kmeans", k=10)).labels
        tmp = Path(tempfile.mkdtemp(prefix="vlexplore-scale-"))
        try:

            def export():
                df = to_dataframe(res.collection, labels, {}, np.zeros((len(labels), 2), np.float32))
                return write_table(df, tmp / "labelled.parquet").stat().st_size

            size, seconds, peak = timed(export)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        extra = {"file_mb": size / 2**20}
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return {"n": len(X), "seconds": seconds, "per_s": len(X) / seconds, "stage_peak_mb": peak, **extra}


def _slug(model_id: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-.")[:64]


def run_child(n: int, stage: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), stage]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-1500:], "returncode": proc.returncode}
    out = json.loads(lines[-1][len("RESULT ") :])
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


# --------------------------------------------------------------------------- growth and estimate


def growth(stages: dict) -> dict:
    """Per stage, the exponent b of time ∝ n^b between consecutive measured sizes."""
    out = {}
    for stage, by_n in stages.items():
        pts = sorted((int(n), r["seconds"]) for n, r in by_n.items() if "seconds" in r and r["seconds"] > 0)
        out[stage] = {
            f"{a}->{b}": round(math.log(tb / ta) / math.log(b / a), 2)
            for (a, ta), (b, tb) in itertools.pairwise(pts)
        }
    return out


def estimate(stages: dict, gpu_rate: float, decode_cores: int, gpus: tuple[int, ...]) -> dict:
    """Wall-time estimate for 1M and 10M images from the measured per-image figures (see the README)."""
    decode = stages.get("decode", {}).get("1", {}).get("per_s")
    out: dict = {
        "assumptions": {
            "gpu_images_per_s": gpu_rate,
            "decode_threads_per_gpu": decode_cores,
            "decode_images_per_s_per_thread": decode,
            "note": "GPU rate assumed (not measurable here); decode rate, clustering, neighbour and store "
            "figures measured on this machine and extrapolated with the measured growth exponents",
        }
    }
    if not decode:
        return out

    def scaled(stage: str, n: int) -> float | None:
        by_n = stages.get(stage, {})
        pts = sorted((int(k), r["seconds"]) for k, r in by_n.items() if "seconds" in r)
        if len(pts) < 2:
            return None
        (a, ta), (b, tb) = pts[-2], pts[-1]
        exp = max(1.0, math.log(tb / ta) / math.log(b / a))
        return tb * (n / b) ** exp

    for n in (1_000_000, 10_000_000):
        row: dict = {}
        for g in gpus:
            per_gpu = min(gpu_rate, decode_cores * decode)
            row[f"embed_h_on_{g}_gpus"] = round(n / (g * per_gpu) / 3600, 2)
        for stage in ("kmeans", "knn", "umap", "reopen"):
            s = scaled(stage, n)
            if s is not None:
                row[f"{stage}_h_one_machine"] = round(s / 3600, 2)
        row["store_gb_per_512d_view"] = round(n * 512 * 4 / 1e9, 1)
        out[str(n)] = row
    return out


def parse_embed_log(stdout: Path, stderr: Path) -> dict:
    """Wall time, peak RSS and counts of one ``/usr/bin/time -v python -m vlexplore embed`` run."""
    import re

    out, err = stdout.read_text(), stderr.read_text(errors="replace")
    m = re.search(r"(\d+) image\(s\) embedded.*?; (\d+) computed, (\d+) from cache", out)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    if not (m and wall and rss):
        raise SystemExit(f"could not read the embed run from {stdout} and {stderr}")
    parts = [float(x) for x in wall.group(1).split(":")]
    wall_s = sum(v * 60**i for i, v in enumerate(reversed(parts)))
    computed = int(m.group(2))
    return {
        "command": "/usr/bin/time -v python -m vlexplore embed bench/data/fashion-mnist-70k "
        "--cache-dir bench/data/cache",
        "images": int(m.group(1)),
        "computed": computed,
        "from_cache": int(m.group(3)),
        "wall_s": round(wall_s, 1),
        "per_s": round(computed / wall_s, 2),
        "max_rss_mb": round(int(rss.group(1)) / 1024, 1),
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        print("RESULT " + json.dumps(child(int(argv[1]), argv[2])))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 70_000])
    p.add_argument(
        "--stages",
        nargs="*",
        default=list(STAGES),
        choices=STAGES,
        help="stages to (re)measure; the others keep their stored results (none: only re-derive)",
    )
    p.add_argument("--cold-max", type=int, default=1000, help="largest size embedded from scratch")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument(
        "--gpu-rate",
        type=float,
        default=2000.0,
        help="assumed images/s of one GPU for the estimate (ViT-B/32 fp16 class)",
    )
    p.add_argument("--decode-threads", type=int, default=8, help="decode threads per GPU in the estimate")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--embed-log",
        type=Path,
        nargs=2,
        metavar=("STDOUT", "STDERR"),
        default=None,
        help="record a one-off full embedding run: the stdout of `python -m vlexplore embed ...` and the "
        "stderr of `/usr/bin/time -v` around it",
    )
    p.add_argument("--embed-note", default=None, help="a remark stored with --embed-log's figures")
    a = p.parse_args(argv)

    old = json.loads(a.out.read_text()) if a.out.exists() else {}
    stages: dict = old.get("stages", {})
    for stage in a.stages:
        for n in [1] if stage in SIZE_FREE else a.sizes:
            if stage in ("embed_cold", "embed_ray") and n > a.cold_max:
                continue
            t = time.perf_counter()
            r = run_child(n, stage, a.timeout)
            print(
                f"{stage:>14} n={n:>6}: {json.dumps(r)[:200]}  ({time.perf_counter() - t:.0f} s with start-up)",
                flush=True,
            )
            if "skipped" not in r:
                stages.setdefault(stage, {})[str(n)] = r
    embed_70k = old.get("embed_70k")
    if a.embed_log:
        embed_70k = parse_embed_log(*a.embed_log)
    if a.embed_note and embed_70k:
        embed_70k["note"] = a.embed_note
    result = {
        "embed_70k": embed_70k,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, CPU only",
        "data": "Fashion-MNIST train+test as 28x28 PNG class folders; 1k/10k = seeded subsets of the 70k",
        "model": "bundled (EfficientNet-Lite0 + MiniLM), image view 1280-d, joint view 1000-d",
        "stages": stages,
        "growth_exponent": growth({k: v for k, v in stages.items() if k not in SIZE_FREE}),
        "estimate": estimate(stages, a.gpu_rate, a.decode_threads, (1, 8, 64)),
        "command": "python bench/scale.py " + " ".join(argv),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
