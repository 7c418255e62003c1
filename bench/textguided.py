"""Text-guided clustering (Stephan et al. 2024) on the Fashion-MNIST test split, offline.

Image k-means vs clustering the *text* made from each image — caption TF-IDF, caption sentence
embeddings, caption keywords, and prompt-guided answers — with K = 10, plus the explanation scores
of each clustering's keywords. Writes ``bench/results/textguided.json``::

    python bench/textguided.py                # all 10,000 test images (embeddings from bench/data/cache)
    python bench/textguided.py --limit 1000   # the first 1,000, in their own folder

Offline the "captions" are the bundled model's label captions (its top-2 ImageNet classes as text)
and prompts are answered by the same classifier steered by the question (not a real VQA model).
The per-prompt ACC/NMI/ARI rows are for reading only: the prompt is chosen without labels, by the
lowest k-means loss in the shared answer-embedding space.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

QUESTIONS = (
    "What is the main object in this image?",
    "What kind of clothing is this?",
    "What is this garment or accessory?",
    "What is the weather like?",
)


def first_label(text: str) -> str:
    """The first class of a label caption or offline answer ("a photo of a sandal, or a clog" → "sandal")."""
    return text.removeprefix("a photo of a ").split(",")[0].strip()


def purity(y, texts) -> float:
    """Share of images whose text's majority class is their own.

    What a clustering that gives each distinct text its own cluster would score (an upper bound for any
    K-cluster grouping of them).
    """
    by_text: dict[str, Counter] = {}
    for label, t in zip(y, texts):
        by_text.setdefault(t, Counter())[label] += 1
    return sum(c.most_common(1)[0][1] for c in by_text.values()) / len(y)


def main(argv=None) -> int:
    from fashion_mnist import export_fashion_mnist

    import vlexplore as vx
    from vlexplore.textguided import PROMPT_WEIGHT, explanation_scores

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="first N test images (default: all 10,000)")
    ap.add_argument("--cache-dir", type=Path, default=BENCH / "data" / "cache")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "textguided.json")
    ap.add_argument(
        "--question", action="append", default=None, help="prompt (repeatable; default: 4 prompts)"
    )
    a = ap.parse_args(argv)
    questions = tuple(a.question or QUESTIONS)

    out_dir = BENCH / "data" / (f"fashion-mnist-test-first{a.limit}" if a.limit else "fashion-mnist-test")
    folder = export_fashion_mnist(out_dir, split="test", limit=a.limit)
    t0 = time.perf_counter()
    emb = vx.embed(vx.scan(folder), vx.EncodeConfig(model="bundled", cache_dir=a.cache_dir))
    print(f"{emb.n} images embedded ({emb.n_computed} computed) in {time.perf_counter() - t0:.1f} s")
    y = emb.collection.labels
    sentence = emb.encoder.sentence
    coords = np.zeros((emb.n, 2), dtype=np.float32)

    runs = [
        ("image k-means", {"representation": "image"}),
        ("caption TF-IDF", {"representation": "caption-tfidf"}),
        ("caption TF-IDF, top-5 labels", {"representation": "caption-tfidf", "options": {"label_top": 5}}),
        ("caption sentence-emb", {"representation": "caption-sbert"}),
        ("keywords TF-IDF", {"representation": "keywords"}),
        ("prompt-guided (chosen by k-means loss)", {"representation": "prompt", "questions": questions}),
    ]
    rows, prompt_rows, info_prompt = [], [], None
    for name, kw in runs:
        cfg = vx.ClusterConfig(method="kmeans", k=10, **kw)
        t = time.perf_counter()
        cl = vx.cluster_embedded(emb, cfg, coords=coords, cache_dir=a.cache_dir)
        dt = time.perf_counter() - t
        m = vx.evaluate_labels(y, cl.labels)
        ex = explanation_scores(cl.keywords, cl.labels, y, texts=cl.texts, sentence_embedder=sentence)
        row = {
            "method": name,
            "representation": cfg.representation,
            **{k: round(float(m[k]), 4) for k in ("acc", "nmi", "ari")},
            "keyword_hit_rate": round(ex["hit_rate"], 3),
            "keyword_coverage": round(ex["coverage"], 3),
            "keyword_distinctiveness": round(ex["distinctiveness"], 3),
            "n_distinct_texts": len(set(cl.texts)),
            "seconds": round(dt, 1),
        }
        if cfg.representation == "prompt":
            info_prompt = cl.info
            row["chosen_prompt"] = cl.info["chosen_prompt"]
        rows.append(row)
        print(
            f"{name:<40} ACC {m['acc']:.3f}  NMI {m['nmi']:.3f}  ARI {m['ari']:.3f}  "
            f"hits {ex['hit_rate']:.2f}  coverage {ex['coverage']:.2f}  distinct {ex['distinctiveness']:.2f}"
            f"  ({dt:.1f} s)"
        )
    print(
        f"top-1 label purity {purity(y, [first_label(t) for t in emb.captions]):.3f} "
        f"over {len({first_label(t) for t in emb.captions})} distinct labels"
    )
    for r in info_prompt["prompt_ranking"]:
        m = vx.evaluate_labels(y, info_prompt["prompt_labels"][r["prompt"]])
        answers = info_prompt["prompt_answers"][r["prompt"]]
        prompt_rows.append(
            {
                "prompt": r["prompt"],
                "rank": r["rank"],
                "inertia": round(r["inertia"], 2),
                "silhouette": round(r["silhouette"], 4),
                "n_distinct_answers": r["n_distinct"],
                **{k: round(float(m[k]), 4) for k in ("acc", "nmi", "ari")},
                "first_answer_purity": round(purity(y, [first_label(t) for t in answers]), 4),
                "top_answers": [t for t, _ in Counter(answers).most_common(5)],
            }
        )
        print(
            f"  #{r['rank']} {r['prompt']:<40} inertia {r['inertia']:9.2f}  silhouette {r['silhouette']:.3f}  "
            f"ACC {m['acc']:.3f}  NMI {m['nmi']:.3f}  distinct answers {r['n_distinct']}"
        )
    result = {
        "dataset": f"Fashion-MNIST test split, first {emb.n} images"
        if a.limit
        else "Fashion-MNIST test split",
        "n_images": int(emb.n),
        "k": 10,
        "model": emb.model_id,
        "text_source": "bundled label captions: 'a photo of a {top-1 class}, or a {top-2 class}' (ImageNet "
        "classes from EfficientNet-Lite0; not a real captioner)",
        "answerer": info_prompt["answerer"],
        "prompt_weight": PROMPT_WEIGHT,
        "machine": f"{platform.machine()}, {platform.python_version()}, CPU only",
        "top1_label_purity": round(purity(y, [first_label(t) for t in emb.captions]), 4),
        "n_distinct_top1_labels": len({first_label(t) for t in emb.captions}),
        "top1_labels_most_common": [
            [t, n] for t, n in Counter(first_label(t) for t in emb.captions).most_common(10)
        ],
        "results": rows,
        "prompts": prompt_rows,
        "prompt_ami": {
            "prompts": info_prompt["ami_prompts"],
            "matrix": np.round(np.asarray(info_prompt["ami"]), 3).tolist(),
        },
        "columns": {
            "keyword_hit_rate": "share of clusters whose 5 counting-based keywords match the Hungarian-matched "
            "class name (string containment either way, or MiniLM cosine >= 0.4)",
            "keyword_coverage": "share of images whose text contains one of their cluster's keywords",
            "keyword_distinctiveness": "1 - mean pairwise Jaccard overlap of the clusters' keyword word sets",
            "top1_label_purity": "share of images whose top-1 ImageNet label's majority class is their own class: "
            "the ACC of giving each distinct label its own cluster (upper bound at K=10)",
        },
        "command": "python bench/textguided.py" + (f" --limit {a.limit}" if a.limit else ""),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
