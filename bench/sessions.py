"""Saved sessions at scale: what an edit costs to save (fsynced journal line), what reopening costs.

A stand-in collection of ``--n`` images (paths and content keys only; no image is read) with
labels from ``--k`` clusters; then ``--edits`` edits alternating rename and a move of 1,000 images,
each timed from call to durable return; then reopening (snapshot + journal replayed), export and
import. Usage::

    python bench/sessions.py [--n 100000] [--k 50] [--edits 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vlexplore import sessions as vs  # noqa: E402
from vlexplore.collection import Collection  # noqa: E402
from vlexplore.config import ClusterConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--edits", type=int, default=60)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "sessions.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        items = pd.DataFrame(
            {
                "relpath": [f"d{i // 1000:03d}/img_{i:07d}.jpg" for i in range(args.n)],
                "fingerprint": [f"b3{i:032x}" for i in range(args.n)],
            }
        )
        col = Collection(root=root, items=items, skipped=pd.DataFrame({"relpath": [], "reason": []}))
        labels = rng.integers(0, args.k, size=args.n)
        names = {c: f"cluster {c}" for c in range(args.k)}
        cache = Path(tmp) / "cache"

        t0 = time.perf_counter()
        s = vs.start_session(col, "stand-in", ClusterConfig(k=args.k), labels, names, cache_dir=cache)
        start_s = time.perf_counter() - t0
        snapshot_bytes = (s.directory / vs.SNAPSHOT).stat().st_size

        times: dict[str, list[float]] = {"rename": [], "move_1000": []}
        for i in range(args.edits):
            t0 = time.perf_counter()
            if i % 2 == 0:
                s.record("rename", "r", cid=i % args.k, name=f"renamed {i}")
                times["rename"].append(time.perf_counter() - t0)
            else:
                idx = rng.choice(args.n, size=1000, replace=False)
                s.record("move", "m", indices=idx, target=(i * 7) % args.k)
                times["move_1000"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s.undo()
        undo_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        again = vs.open_session(root, "stand-in", cache_dir=cache)
        reopen_s = time.perf_counter() - t0
        assert again is not None
        assert again.labels.tolist() == s.labels.tolist()
        t0 = time.perf_counter()
        data = vs.export_session(again)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        vs.import_session(data, collection=col, model_id="stand-in", cache_dir=Path(tmp) / "other")
        import_s = time.perf_counter() - t0

    def ms(values: list[float]) -> dict[str, float]:
        return {
            "median_ms": round(1000 * statistics.median(values), 2),
            "max_ms": round(1000 * max(values), 2),
        }

    result = {
        "machine": f"{platform.machine()}, 2 cores shared, Python {platform.python_version()}",
        "n": args.n,
        "k": args.k,
        "edits": args.edits,
        "start_session_s": round(start_s, 3),
        "snapshot_bytes": snapshot_bytes,
        "record_rename": ms(times["rename"]),
        "record_move_1000": ms(times["move_1000"]),
        "undo_ms": round(1000 * undo_s, 2),
        "reopen_s": round(reopen_s, 3),
        "export_bytes": len(data),
        "export_s": round(export_s, 3),
        "import_s": round(import_s, 3),
        "command": f"python bench/sessions.py --n {args.n} --k {args.k} --edits {args.edits}",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
