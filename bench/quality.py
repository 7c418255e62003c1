"""Clustering quality on the Fashion-MNIST test split (10,000 labelled product images).

Runs the library end to end from image files (bundled offline model), then each
clustering method with K = 10, and writes ``bench/results/quality.json``:

    python bench/quality.py                # all 10,000 test images
    python bench/quality.py --limit 2000   # the first 2,000 (quicker)

Prototypes use the ten class names as typed text. Besides ACC (Hungarian matching)
the prototype rows report ``acc_named``: the share of images whose prototype *is* their
class, i.e. whether the names are right, which Hungarian matching does not check.
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

PROMPTS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def main(argv=None) -> int:
    from fashion_mnist import CLASS_NAMES, export_fashion_mnist

    import vlexplore as vx
    from vlexplore.cluster import cluster_vectors

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="first N test images (default: all 10,000)")
    ap.add_argument("--cache-dir", type=Path, default=BENCH / "data" / "cache")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "quality.json")
    a = ap.parse_args(argv)

    folder = export_fashion_mnist(split="test", limit=a.limit)
    enc_cfg = vx.EncodeConfig(model="bundled", cache_dir=a.cache_dir)
    t0 = time.perf_counter()
    col = vx.scan(folder)
    emb = vx.embed(col, enc_cfg)
    t_embed = time.perf_counter() - t0
    y = emb.collection.labels
    x, joint = emb.views["image"], emb.views["joint"]
    p_emb = vx.encode_prompts(list(PROMPTS), emb.encoder)
    class_of_prompt = {i: CLASS_NAMES[i] for i in range(len(PROMPTS))}

    runs = [
        ("k-means", vx.ClusterConfig(method="kmeans", k=10)),
        ("agglomerative (ward)", vx.ClusterConfig(method="agglomerative", k=10, linkage="ward")),
        ("HDBSCAN (PCA-10)", vx.ClusterConfig(method="hdbscan")),
        ("prototypes, zero-shot", vx.ClusterConfig(method="prototypes", prototypes=PROMPTS, refine=False)),
        ("prototypes", vx.ClusterConfig(method="prototypes", prototypes=PROMPTS)),
    ]
    rows = []
    for name, cfg in runs:
        t = time.perf_counter()
        res = cluster_vectors(
            x, cfg, joint=joint, prototype_embeddings=p_emb if cfg.method == "prototypes" else None
        )
        dt = time.perf_counter() - t
        m = vx.evaluate_labels(y, res.labels)
        row = {"method": name, **{k: float(v) for k, v in m.items()}, "seconds": round(dt, 2)}
        if cfg.method == "prototypes":
            named = np.array([class_of_prompt.get(int(c), "") for c in res.labels])
            row["acc_named"] = float((named == y).mean())
        rows.append(row)
        print(
            f"{name:<24} ACC {m['acc']:.3f}  NMI {m['nmi']:.3f}  ARI {m['ari']:.3f}  "
            f"clusters {m['n_clusters']}  noise {m['noise_share']:.2f}"
            + (f"  named-ACC {row['acc_named']:.3f}" if "acc_named" in row else "")
            + f"  ({dt:.1f} s)"
        )
    result = {
        "dataset": f"Fashion-MNIST test split, first {len(y)} images"
        if a.limit
        else "Fashion-MNIST test split",
        "n_images": len(y),
        "model": emb.model_id,
        "embed_seconds": round(t_embed, 1),
        "machine": f"{platform.machine()}, {platform.python_version()}, CPU only",
        "prompts": list(PROMPTS),
        "results": rows,
        "command": "python bench/quality.py" + (f" --limit {a.limit}" if a.limit else ""),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
