"""The server's side of a re-cluster, as the app does it, today's code beside an older revision in one run.

    python bench/recluster_server.py --folder bench/data/fashion-mnist-100k --model bench/data/random-clip-512 \
        --cache-dir C --before 62f8a53 --k 45 60

What the app's Cluster button runs, without the browser: :func:`vlexplore.cluster_embedded` on the cached
embeddings (names, scores; the map reused), then :func:`vlexplore.sessions.start_session` (the saved work of the
new clustering). Each revision runs in its own process (``--before REV``: a git worktree of ``REV``), the
revisions alternating ``--rounds`` times, each doing ``--repeats`` re-clusters per k; the first re-cluster of
each process (imports, the vocabulary read from the cache) is reported apart. This machine is shared, so only
the figures from one run are compared. Results go to ``bench/results/recluster_server.json`` under ``--key``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

WORKER = r"""
import json, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import vlexplore as vx
from vlexplore import sessions
folder, model, cache, repeats = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
col = vx.scan(folder, cache_dir=cache)
emb = vx.embed(col, vx.EncodeConfig(model=model, cache_dir=cache))
coords = np.zeros((emb.n, 2), np.float32)
saved = tempfile.mkdtemp()
out = {"n": emb.n, "first": None, "times": {}}
for k in map(int, sys.argv[6:]):
    times = []
    for rep in range(repeats + (out["first"] is None)):
        cfg = vx.ClusterConfig(method="kmeans", k=k, seed=rep)
        t = time.perf_counter()
        cl = vx.cluster_embedded(emb, cfg, coords=coords, cache_dir=None)
        sessions.start_session(col, emb.model_id, cfg, cl.labels, cl.names, cache_dir=saved)
        if out["first"] is None:
            out["first"] = round(time.perf_counter() - t, 3)
        else:
            times.append(round(time.perf_counter() - t, 3))
    out["times"][str(k)] = times
print(json.dumps(out))
"""


def run(code_root: Path, a) -> dict:
    """One process of re-clusters on ``code_root``'s package."""
    cmd = [
        sys.executable,
        "-c",
        WORKER,
        str(code_root),
        str(a.folder),
        a.model,
        str(a.cache_dir),
        str(a.repeats),
    ]
    done = subprocess.run([*cmd, *map(str, a.k)], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the re-clusters on {code_root} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=BENCH / "data" / "fashion-mnist-100k")
    ap.add_argument("--model", default="bench/data/random-clip-512")
    ap.add_argument("--cache-dir", type=Path, required=True, help="where the folder's embeddings are cached")
    ap.add_argument("--before", default=None, metavar="REV", help="also this git revision, alternating")
    ap.add_argument("--k", type=int, nargs="+", default=[45, 60])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--key", default="recluster_server")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "recluster_server.json")
    a = ap.parse_args()
    a.model = str(Path(a.model).resolve()) if Path(a.model).exists() else a.model
    a.folder, a.cache_dir = a.folder.resolve(), a.cache_dir.resolve()
    worktree = Path(tempfile.mkdtemp()) / "before" if a.before else None
    if worktree is not None:
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(worktree), a.before], cwd=ROOT, check=True
        )
    variants = {"after": ROOT, **({"before": worktree} if worktree is not None else {})}
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    try:
        for _ in range(a.rounds):
            for name in reversed(variants):  # before first in each round
                runs[name].append(run(variants[name], a))
                print(name, runs[name][-1], file=sys.stderr, flush=True)
    finally:
        if worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    summary = {
        name: {
            f"k = {k}": round(statistics.median(t for r in rs for t in r["times"][str(k)]), 3) for k in a.k
        }
        | {"first": round(statistics.median(r["first"] for r in rs), 3)}
        for name, rs in runs.items()
    }
    result = {
        "folder": a.folder.name,
        "before": a.before,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "seconds_median": summary,
        "runs": runs,
    }
    print(json.dumps(summary, indent=1))
    results = json.loads(a.out.read_text()) if a.out.exists() else {}
    results[a.key] = result
    a.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
