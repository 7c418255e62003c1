"""Opening a fully cached folder with a lazy encoder (weights on first use) against an eager one.

Each run is a fresh process, timed from its start (the library not yet imported) to ``vx.embed`` done: the
scan (its stat index answers), the encoder, every vector read from the cache. A lazy open_clip encoder knows
its cache namespace from its files' hashes, so it imports neither torch nor open_clip here::

    python bench/random_clip.py
    python -m vlexplore cluster bench/data/fashion-mnist-70k --model bench/data/random-clip-512 --cache-dir C
    python bench/lazy_open.py --cache-dir C [--folder F] [--model M] [--repeat 3]

Nothing is written to the cache beyond what opening writes (the scan's stat index). Results print as JSON and
go to ``bench/results/lazy_open.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import vlexplore as vx
from vlexplore.models.registry import load_encoder
folder, cache_dir, model, lazy = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "lazy"
col = vx.scan(folder, cache_dir=cache_dir)
t_scan = time.perf_counter()
enc = load_encoder(model, device="cpu", cache_dir=cache_dir, lazy=lazy)
t_enc = time.perf_counter()
emb = vx.embed(col, vx.EncodeConfig(model=model, device="cpu", cache_dir=cache_dir), encoder=enc)
t_end = time.perf_counter()
print(json.dumps({
    "total_s": round(t_end - t0, 2), "scan_s": round(t_scan - t0, 2), "encoder_s": round(t_enc - t_scan, 2),
    "embed_s": round(t_end - t_enc, 2), "n": emb.n, "n_computed": emb.n_computed,
    "torch_imported": "torch" in sys.modules, "open_clip_imported": "open_clip" in sys.modules,
    "model_id": emb.model_id,
}))
"""


def run(mode: str, args) -> dict:
    """One fresh process opening the folder with a ``mode`` (``lazy``/``eager``) encoder."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(args.folder), str(args.cache_dir), args.model, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=ROOT / "bench" / "data" / "fashion-mnist-70k")
    ap.add_argument("--cache-dir", type=Path, required=True)
    ap.add_argument("--model", default=str(ROOT / "bench" / "data" / "random-clip-512"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"lazy": [], "eager": []}
    for _ in range(args.repeat):  # interleaved, so that a busy moment of the machine hits both
        for mode, done in runs.items():
            done.append(run(mode, args))
            if done[-1]["n_computed"]:
                sys.exit(f"{mode}: {done[-1]['n_computed']} images were not cached; embed the folder first")
    results = {
        m: {"total_s_median": statistics.median(r["total_s"] for r in rs), "runs": rs}
        for m, rs in runs.items()
    }
    results["machine"] = {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    text = json.dumps(results, indent=1)
    (ROOT / "bench" / "results" / "lazy_open.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
