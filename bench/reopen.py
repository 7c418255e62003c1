"""Reopening a cached folder: the scan and the lookup of every vector, this checkout against another.

The cache format changed (keys hash whole files, and a stat index remembers unchanged files), so
this measures what a returning user waits for, with both versions side by side in one run:

* ``scan_cold``: the first scan of the folder with an empty cache (whole files read and hashed now);
* ``scan_warm``: the next scans (the stat index answers; the earlier format read 128 KiB per file);
* ``reopen``: every vector looked up from the cache (``embed_images`` with nothing to compute);
* ``open``: ``scan_warm + reopen``, what opening a cached folder costs.

The vectors are random unit rows of the bundled model's sizes (image 1280-d, joint 1000-d) written
under a stand-in model id, in shards as a real run leaves them, so no model runs (a real 70k
embedding takes about 50 minutes here). Usage::

    python bench/fashion_mnist.py --split test --out bench/data/fashion-mnist-70k
    python bench/fashion_mnist.py --split train --out bench/data/fashion-mnist-70k
    git worktree add /tmp/vlx-before <commit>
    python bench/reopen.py --before /tmp/vlx-before [--folder bench/data/fashion-mnist-70k]
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "reopen.json"
VIEWS = {"image": 1280, "joint": 1000}
MODEL_ID = "bench-reopen-stand-in-v1"
SHARD_ROWS = 2048


class _Cached:
    """An encoder that is never called: every vector is in the cache."""

    model_id = MODEL_ID
    views = tuple(VIEWS)
    device = "cpu"
    description = MODEL_ID

    def preprocess(self, image):
        raise RuntimeError("reopen bench: an image was not cached")

    def encode_image_batch(self, batch):
        raise RuntimeError("reopen bench: the model was called")

    def encode_texts(self, texts):
        raise RuntimeError("reopen bench: the model was called")


def child(folder: Path, cache_dir: Path, repeat: int) -> dict:
    """Run in a process whose ``sys.path`` starts with the checkout being measured."""
    import numpy as np

    from vlexplore.cache import store_for
    from vlexplore.encode import embed_images
    from vlexplore.images import scan_folder

    indexed = "cache_dir" in inspect.signature(scan_folder).parameters
    kw = {"cache_dir": cache_dir} if indexed else {}

    t = time.perf_counter()
    col = scan_folder(folder, **kw)
    scan_cold = time.perf_counter() - t

    store = store_for(cache_dir, MODEL_ID)
    keys = list(dict.fromkeys(col.fingerprints))
    rng = np.random.default_rng(0)
    for start in range(0, len(keys), SHARD_ROWS):
        part = keys[start : start + SHARD_ROWS]
        cols = {}
        for view, d in VIEWS.items():
            x = rng.normal(size=(len(part), d)).astype(np.float32)
            cols[view] = x / np.linalg.norm(x, axis=1, keepdims=True)
        store.append(part, cols)
    store.compact()

    scans, lookups = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        col = scan_folder(folder, **kw)
        scans.append(time.perf_counter() - t)
        t = time.perf_counter()
        res = embed_images(col, _Cached(), cache_dir=cache_dir)
        lookups.append(time.perf_counter() - t)
        if res.n_computed or len(res.collection) != len(col):
            raise SystemExit("reopen bench: not every vector came from the cache")
    warm, reopen = statistics.median(scans), statistics.median(lookups)
    return {
        "n": len(col),
        "stat_index": indexed,
        "scan_cold_s": round(scan_cold, 3),
        "scan_warm_s": round(warm, 3),
        "reopen_s": round(reopen, 3),
        "open_s": round(warm + reopen, 3),
        "repeat": repeat,
    }


def measure(code: Path, folder: Path, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="vlx-reopen-") as tmp:
        script = (
            f"import sys, json; sys.path[:0] = [{str(code)!r}, {str(BENCH)!r}]; import reopen; "
            f"print(json.dumps(reopen.child(reopen.Path({str(folder)!r}), reopen.Path({tmp!r}), {repeat})))"
        )
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"VLEXPLORE_CACHE_DIR": tmp, "PATH": "/usr/bin:/bin"},
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=BENCH / "data" / "fashion-mnist-70k")
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the earlier version")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows = {}
    for name, code in (("before", a.before.resolve()), ("after", ROOT)):
        rows[name] = measure(code, a.folder.resolve(), a.repeat)
        print(name, rows[name], flush=True)
    before_sha = subprocess.run(
        ["git", "-C", str(a.before), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = {
        "machine": f"{platform.machine()}, 2 cores shared, Python {platform.python_version()}",
        "folder": str(a.folder),
        "before_commit": before_sha,
        **rows,
        "ratio_after_over_before": {
            k: round(rows["after"][k] / rows["before"][k], 3)
            for k in ("scan_cold_s", "scan_warm_s", "reopen_s", "open_s")
        },
        "command": "python bench/reopen.py --before <checkout of before_commit>",
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratio_after_over_before"]))


if __name__ == "__main__":
    main()
