"""Image, caption and image–text pair clustering on captioned collections (ACC / NMI, k = classes).

Datasets (built under ``bench/data/pairs/``, nothing committed but the results):

- ``tuxpaint-demo``: the demo's 248 photos in 10 classes, rebuilt from Debian's
  ``tuxpaint-stamps-default`` by ``bench/make_demo.py``, each with its stamp's own description file
  copied beside it as a sidecar (``duck.jpg`` + ``duck.txt``: "A duck." then translation lines) —
  real captions, read by the scan like any user's.
- ``tuxpaint-categories`` (the second dataset): every stamp of the package with a description file,
  classes = the package's top-level folders with at least 12 such stamps (animals, food, symbols,
  town, …; drawings and photos alike), at most 40 per folder (evenly spread), same flattening and sidecars.
- ``shapes-half-captioned`` (for the tiny aligned CLIP of ``tests/aligned_model.py``): coloured shapes,
  9 classes (colour × shape); each caption names only the shape ("a circle"), written from the
  generating parameters — the image carries the colour, the caption the shape, so only a pair sees both.

Rows: ``image`` (k-means on the image view), ``caption`` (``caption-sbert``: the captions' sentence
embeddings — the text-guided representation — on the user captions), ``caption-tfidf``, and ``pair``
variants (``combine`` concat/mean, ``image_view``, ``caption_weight``). Each row is the mean of 3
k-means seeds, run through ``build_representation`` and ``vlexplore.cluster.cluster``. Models: the
bundled one and the tiny aligned open_clip model (trained here in ~15 s, as the tests do). Writes
``bench/results/pairs.json``::

    python bench/pairs.py [--datasets tuxpaint-demo tuxpaint-categories shapes-half-captioned]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests"))
DATA = BENCH / "data" / "pairs"
STAMPS = Path("/usr/share/tuxpaint/stamps")
SEEDS = (0, 1, 2)
PAIR_VARIANTS = (
    {"combine": "concat", "image_view": "image", "caption_weight": 0.5},
    {"combine": "concat", "image_view": "image", "caption_weight": 0.25},
    {"combine": "concat", "image_view": "image", "caption_weight": 0.75},
    {"combine": "concat", "image_view": "joint", "caption_weight": 0.5},
    {"combine": "mean", "caption_weight": 0.5},
    {"combine": "mean", "caption_weight": 0.25},
)
#: The caption part as caption-sbert embeds it (the sentence embedder) rather than the encoder's text tower.
SENTENCE_VARIANTS = (
    {"combine": "concat", "image_view": "image", "caption_space": "sentence", "caption_weight": 0.5},
    {"combine": "concat", "image_view": "image", "caption_space": "sentence", "caption_weight": 0.25},
    {"combine": "concat", "image_view": "image", "caption_space": "sentence", "caption_weight": 0.75},
    {"combine": "concat", "image_view": "joint", "caption_space": "sentence", "caption_weight": 0.5},
)


def tuxpaint_demo(root: Path) -> Path:
    from make_demo import make_demo

    if root.exists():
        shutil.rmtree(root)
    make_demo(root, STAMPS)
    text = (root / "LICENSE.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [c.strip().strip("`") for c in line.split("|")]
        if len(cells) > 4 and cells[1].endswith(".jpg") and cells[3].endswith(".png"):
            src = STAMPS / cells[3].replace(".png", ".txt")
            if src.is_file():
                shutil.copy(src, root / cells[1].replace(".jpg", ".txt"))
    (root / "LICENSE.md").unlink()
    return root


def tuxpaint_categories(root: Path, min_size: int = 12, per_class: int = 40) -> Path:
    from make_demo import save_photo

    if root.exists():
        shutil.rmtree(root)
    for top in sorted(p for p in STAMPS.iterdir() if p.is_dir()):
        pngs = sorted(
            p
            for p in top.rglob("*.png")
            if p.with_suffix(".txt").is_file() and not p.stem.endswith("_mirror")
        )
        if len(pngs) < min_size:
            continue
        pngs = pngs[:: max(1, len(pngs) // per_class)][:per_class]  # evenly spread, at most per_class
        for png in pngs:
            name = png.relative_to(top).with_suffix("").as_posix().replace("/", "-")
            save_photo(png, root / top.name / f"{name}.jpg")
            shutil.copy(png.with_suffix(".txt"), root / top.name / f"{name}.txt")
    return root


def shapes(root: Path, per_class: int = 30, seed: int = 7) -> Path:
    from aligned_model import sample_shapes

    if root.exists():
        shutil.rmtree(root)
    rows = ["path,caption"]
    for i, (image, colour, shape) in enumerate(sample_shapes(9 * per_class, seed)):
        rel = f"{colour}-{shape}/{i:04d}.png"
        (root / f"{colour}-{shape}").mkdir(parents=True, exist_ok=True)
        image.save(root / rel)
        rows.append(f"{rel},a {shape}")
    (root / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def aligned_model_name() -> str:
    """The tiny aligned CLIP of the tests (trained once, seeded: a saved checkpoint is reused)."""
    from aligned_model import ARCH, register_config, train_aligned

    out = DATA / "aligned-clip"
    checkpoint = out / "aligned.pt"
    if checkpoint.is_file():
        register_config(out)
    else:
        checkpoint = train_aligned(out).checkpoint
    return f"openclip:{ARCH}:{checkpoint}"


def score(emb, representation: str, options: dict | None = None) -> dict:
    import vlexplore as vx
    from vlexplore.cluster import cluster_vectors as cluster
    from vlexplore.evaluate import evaluate_labels as evaluate
    from vlexplore.represent import build_representation

    y = emb.collection.labels
    k = len(set(y))
    accs, nmis = [], []
    t0 = time.perf_counter()
    for seed in SEEDS:
        cfg = vx.ClusterConfig(k=k, representation=representation, seed=seed, options=dict(options or {}))
        rep = build_representation(emb, cfg)
        labels = rep.labels if rep.labels is not None else cluster(rep.X, cfg).labels
        m = evaluate(y, labels)
        accs.append(m["acc"])
        nmis.append(m["nmi"])
    return {
        "representation": representation,
        "options": options or {},
        "acc": round(float(np.mean(accs)), 4),
        "acc_by_seed": [round(float(a), 4) for a in accs],
        "nmi": round(float(np.mean(nmis)), 4),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def run(name: str, folder: Path, model: str, sentence_only: bool = False) -> dict:
    import vlexplore as vx

    col = vx.scan_folder(
        folder
    )  # the default cache: content-keyed, so the demo's photos are not embedded again
    emb = vx.embed(col, vx.EncodeConfig(model=model))
    captioned = sum(bool(c) for c in col.captions)
    print(
        f"{name} × {emb.model_id}: {emb.n} images, {captioned} captioned, {len(set(col.labels))} classes",
        flush=True,
    )
    if sentence_only:
        rows = [score(emb, "pair", v) for v in SENTENCE_VARIANTS]
    else:
        rows = [score(emb, "image"), score(emb, "caption-sbert"), score(emb, "caption-tfidf")]
        rows += [score(emb, "pair", v) for v in PAIR_VARIANTS + SENTENCE_VARIANTS]
    for r in rows:
        print(json.dumps(r), flush=True)
    return {
        "dataset": name,
        "model": emb.model_id,
        "images": emb.n,
        "captioned": captioned,
        "classes": len(set(col.labels)),
        "caption_sources": col.user_captions.sources,
        "rows": rows,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--datasets", nargs="+", default=["tuxpaint-demo", "tuxpaint-categories", "shapes-half-captioned"]
    )
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "pairs.json")
    ap.add_argument("--models", nargs="+", default=None, help="only these models ('bundled', 'aligned')")
    ap.add_argument(
        "--sentence-only", action="store_true", help="only the pair variants with sentence-embedded captions"
    )
    ap.add_argument(
        "--resume", action="store_true", help="keep the runs already in --out and the folders already built"
    )
    a = ap.parse_args(argv)
    previous = json.loads(a.out.read_text()) if a.resume and a.out.is_file() else {}
    runs = list(previous.get("runs", []))
    done = {(r["dataset"], r["model_arg"]) for r in runs if "model_arg" in r}
    aligned = aligned_model_name()
    builders = {
        "tuxpaint-demo": tuxpaint_demo,
        "tuxpaint-categories": tuxpaint_categories,
        "shapes-half-captioned": shapes,
    }
    models = {
        "tuxpaint-demo": ["bundled", aligned],
        "tuxpaint-categories": ["bundled"],
        "shapes-half-captioned": [aligned, "bundled"],
    }
    for name in a.datasets:
        todo = [m for m in models[name] if (name, "aligned" if m == aligned else m) not in done]
        todo = [m for m in todo if a.models is None or ("aligned" if m == aligned else m) in a.models]
        if not todo:
            continue
        folder = DATA / name if a.resume and (DATA / name).is_dir() else builders[name](DATA / name)
        for model in todo:
            result = run(name, folder, model, a.sentence_only)
            runs.append({**result, "model_arg": "aligned" if model == aligned else model})
            write(a, argv, runs)
    write(a, argv, runs)
    return 0


def write(a, argv, runs) -> None:
    out = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command": "python bench/pairs.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "source": "Debian tuxpaint-stamps-default (GPL-2+) for the tuxpaint datasets",
        "runs": runs,
    }
    a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
