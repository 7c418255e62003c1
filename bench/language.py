"""Language-assisted clustering on the Fashion-MNIST test split (bundled offline model).

Compares, with K = 10 and through :func:`vlexplore.pipeline.cluster_embedded`:

* image k-means (the baseline),
* TAC training-free (``nouns``) with the paper's settings (τ from the similarity spread, text weight 1)
  and with the bundled model's defaults (τ = 0.1, weight 0.25; chosen on the *train* split),
* the relation matrix C (``relations``),
* learned semantic centres (``centres``), plus an ablation that runs the same confident-neighbour
  self-training on the image view alone (no nouns), to show how much of the gain is language's,

each over ``--seeds`` seeds (mean and spread), and the neighbourhood consistency @10 (share of an
image's 10 nearest neighbours with its class) of the image view, the joint view, TAC and C.
Writes ``bench/results/language.json``::

    python bench/language.py                  # all 10,000 test images (embeddings from bench/data/cache)
    python bench/language.py --limit 1000     # the first 1,000
    python bench/language.py --split train --limit 1000 --cache-dir bench/data/cache-dev   # the dev split
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def image_self_training(x: np.ndarray, k: int, seed: int, opts) -> np.ndarray:
    """The centres' procedure (confident neighbours → train → re-label) on the image view, no nouns."""
    from vlexplore.language import confident_mask, knn_indices, train_centres
    from vlexplore.models.base import l2_normalize
    from vlexplore.nouns import spherical_kmeans

    labels, _ = spherical_kmeans(x, k, seed=seed, n_init=10)
    init = l2_normalize(np.stack([x[labels == c].mean(axis=0) for c in range(k)]))
    neighbours, centres = knn_indices(x, opts.knn), init
    for _ in range(opts.rounds):
        mask = confident_mask(None, labels, opts.knn, opts.agree, neighbours=neighbours)
        centres, _ = train_centres(
            x,
            labels,
            mask,
            centres,
            temperature=opts.centre_temperature,
            balance=opts.balance,
            epochs=opts.epochs,
            lr=opts.lr,
        )
        labels = np.argmax(x @ centres.T, axis=1)
    return labels


def main(argv=None) -> int:
    from fashion_mnist import export_fashion_mnist

    import vlexplore as vx
    from vlexplore.evaluate import evaluate_labels
    from vlexplore.language import LanguageOptions, _prepare, _tac_matrix, neighbourhood_consistency
    from vlexplore.nouns import relation_matrix

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("test", "train"), default="test")
    ap.add_argument("--limit", type=int, default=None, help="first N images of the split (default: all)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cache-dir", type=Path, default=BENCH / "data" / "cache")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "language.json")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)

    out_dir = None if a.limit is None else BENCH / "data" / f"fm-{a.split}-{a.limit}"
    if a.limit is None and a.split == "train":
        out_dir = BENCH / "data" / "fashion-mnist-train"
    folder = export_fashion_mnist(out_dir, split=a.split, limit=a.limit)
    emb = vx.embed(vx.scan(folder), vx.EncodeConfig(model="bundled", cache_dir=a.cache_dir))
    y = emb.collection.labels
    zeros = np.zeros((emb.n, 2), dtype=np.float32)
    paper = {"temperature": None, "text_weight": 1.0}

    runs = [
        ("image k-means", "image", {}),
        ("TAC training-free, paper settings (τ auto, weight 1)", "nouns", paper),
        ("TAC training-free, bundled defaults (τ 0.1, weight 0.25)", "nouns", {}),
        ("relations C (z-score rows)", "relations", {}),
        ("learned semantic centres", "centres", {}),
        ("learned semantic centres, init from image k-means", "centres", {"init": "image"}),
        ("learned semantic centres in the joint space", "centres", {"space": "joint"}),
        ("ablation: same self-training on the image view, no nouns", None, {}),
    ]
    rows, infos = [], {}
    for name, rep, opts in runs:
        scores, times = [], []
        for seed in range(a.seeds):
            t = time.perf_counter()
            if rep is None:
                labels = image_self_training(emb.views["image"], 10, seed, LanguageOptions.from_options({}))
            else:
                cfg = vx.ClusterConfig(k=10, seed=seed, representation=rep, options=opts)
                cl = vx.cluster_embedded(emb, cfg, coords=zeros)
                labels = cl.labels
                if seed == 0:
                    infos[name] = cl.info
            times.append(time.perf_counter() - t)
            m = evaluate_labels(y, labels)
            scores.append([m["acc"], m["nmi"], m["ari"]])
        s = np.asarray(scores)
        row = {
            "method": name,
            "representation": rep,
            "options": {k: v for k, v in opts.items()},
            **{f"{k}": round(float(s[:, i].mean()), 4) for i, k in enumerate(("acc", "nmi", "ari"))},
            **{f"{k}_sd": round(float(s[:, i].std()), 4) for i, k in enumerate(("acc", "nmi", "ari"))},
            "seconds": round(float(np.mean(times)), 1),
        }
        rows.append(row)
        print(
            f"{name:<60} ACC {row['acc']:.3f}±{row['acc_sd']:.3f}  NMI {row['nmi']:.3f}  ARI {row['ari']:.3f}"
            f"  ({row['seconds']:.1f} s)",
            flush=True,
        )

    p = _prepare(emb, vx.ClusterConfig(k=10, representation="nouns"))
    spaces = {
        "image": p.image,
        "joint": p.joint,
        "TAC (bundled defaults)": _tac_matrix(p),
        "relations C": relation_matrix(p.sims, p.opts.relation_norm, p.temperature),
    }
    consistency = {k: round(neighbourhood_consistency(v, y, 10), 4) for k, v in spaces.items()}
    print("neighbourhood consistency @10:", consistency)
    centres = infos["learned semantic centres"]
    base = rows[0]["acc"]
    best = max((r for r in rows if r["representation"] not in (None, "image")), key=lambda r: r["acc"])
    result = {
        "dataset": f"Fashion-MNIST {a.split} split" + (f", first {emb.n} images" if a.limit else ""),
        "n_images": int(emb.n),
        "model": emb.model_id,
        "k": 10,
        "seeds": a.seeds,
        "machine": f"{platform.machine()}, {platform.python_version()}, CPU only (2 cores)",
        "n_vocabulary": p.info()["n_vocabulary"],
        "n_selected_nouns": len(p.selected),
        "temperature_auto": round(
            float(_prepare(emb, vx.ClusterConfig(k=10, representation="nouns", options=paper)).temperature), 5
        ),
        "results": rows,
        "consistency_at_10": consistency,
        "best": {
            "method": best["method"],
            "acc": best["acc"],
            "gain_over_image_kmeans": round(best["acc"] - base, 4),
        },
        "centres_seed0": {
            "rounds": centres["rounds"],
            "centre_nouns": {str(k): v for k, v in centres["centre_nouns"].items()},
            "confident_share": round(float(np.mean(centres["confident"])), 4),
        },
        "selected_nouns_first_40": p.names[:40],
        "command": "python bench/language.py"
        + (f" --split {a.split}" if a.split != "test" else "")
        + (f" --limit {a.limit}" if a.limit else ""),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"best: {best['method']} {best['acc']:.3f} ({best['acc'] - base:+.3f} over image k-means)")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
