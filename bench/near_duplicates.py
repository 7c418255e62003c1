"""Near-duplicate precision and recall on copies made of real photos (resized, recompressed, cropped).

Originals: the demo's 248 photos (``demo/``, Tux Paint stamps) and, when scikit-image is installed,
its data photos. A seeded subset of ``--copies`` originals gets three copies each: resized to half size
(JPEG q 90), recompressed as JPEG quality 25, and cropped to the central 80 % (JPEG q 90). Truth: each
original with its copies is one family; every other pair is distinct (including pairs of different
stamps that look alike, so precision is honest). Predicted: the groups of ``vlexplore.curate.duplicates``
on the bundled model's ``image`` view. Pairwise precision and recall over all same-group pairs, at the
default threshold and a sweep; recall per kind of copy (copy in its original's group). Writes
``bench/results/near_duplicates.json``::

    python bench/near_duplicates.py [--copies 60] [--model bundled]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import shutil
import sys
from pathlib import Path

from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
SWEEP = (0.80, 0.85, 0.87, 0.88, 0.90, 0.92, 0.93, 0.95, 0.97, 0.99)
KINDS = ("resized", "recompressed", "cropped")


def originals() -> list[tuple[str, Image.Image]]:
    out = [
        (p.relative_to(REPO / "demo").as_posix(), Image.open(p).convert("RGB"))
        for p in sorted((REPO / "demo").rglob("*.jpg"))
    ]
    try:
        import skimage.data as sd  # optional: its photos widen the set

        for name in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field"):
            img = getattr(sd, name)()
            out.append((f"skimage/{name}.jpg", Image.fromarray(img).convert("RGB")))
    except ImportError:
        pass
    return out


def make_folder(root: Path, copies: int, seed: int) -> tuple[dict[str, str], dict[str, str]]:
    """Write the folder → (relpath → family id, relpath → kind)."""
    if root.exists():
        shutil.rmtree(root)
    family, kind = {}, {}
    items = originals()
    chosen = set(random.Random(seed).sample(range(len(items)), min(copies, len(items))))
    for i, (rel, img) in enumerate(items):
        stem = rel.rsplit(".", 1)[0].replace("/", "__")
        path = root / f"{stem}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=90)
        family[path.name], kind[path.name] = stem, "original"
        if i not in chosen:
            continue
        w, h = img.size
        variants = {
            "resized": (img.resize((max(16, w // 2), max(16, h // 2)), Image.Resampling.LANCZOS), 90),
            "recompressed": (img, 25),
            "cropped": (img.crop((w // 10, h // 10, w - w // 10, h - h // 10)), 90),
        }
        for k, (im, q) in variants.items():
            name = f"{stem}--{k}.jpg"
            im.save(root / name, quality=q)
            family[name], kind[name] = stem, k
    return family, kind


def pairs_of(groups: dict[str, int]) -> set[frozenset]:
    by: dict[int, list[str]] = {}
    for p, g in groups.items():
        by.setdefault(g, []).append(p)
    return {frozenset(pq) for members in by.values() for pq in itertools.combinations(sorted(members), 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=60, help="originals that get three copies each")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=BENCH / "data" / "near-duplicates")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "near_duplicates.json")
    a = ap.parse_args(argv)
    import vlexplore as vx
    from vlexplore.curate import DEFAULT_THRESHOLD, duplicates

    family, kind = make_folder(a.data / "photos", a.copies, a.seed)
    truth = pairs_of({p: hash(f) for p, f in family.items()})
    col = vx.scan_folder(a.data / "photos", cache_dir=a.data / "cache")
    emb = vx.embed(col, vx.EncodeConfig(model=a.model, cache_dir=a.data / "cache"))
    rows = []
    for t in SWEEP:
        df = duplicates(emb, threshold=t)
        groups = dict(zip(df["path"], df["group"]))
        pred = pairs_of(groups)
        tp = len(pred & truth)
        per_kind = {}
        for k in KINDS:
            copies = [p for p, kd in kind.items() if kd == k]
            orig = {family[p]: o for o, kd in kind.items() if kd == "original" for p in [o]}
            hit = sum(1 for p in copies if p in groups and groups.get(orig[family[p]]) == groups[p])
            per_kind[k] = round(hit / len(copies), 3) if copies else None
        row = {
            "threshold": t,
            "default": t == DEFAULT_THRESHOLD,
            "pairs_predicted": len(pred),
            "pairs_true": len(truth),
            "precision": round(tp / len(pred), 3) if pred else None,
            "recall": round(tp / len(truth), 3),
            "recall_by_copy": per_kind,
            "groups": int(df["group"].nunique()) if len(df) else 0,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command": "python bench/near_duplicates.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": emb.model_id,
        "images": emb.n,
        "originals": sum(1 for k in kind.values() if k == "original"),
        "copies": sum(1 for k in kind.values() if k != "original"),
        "skimage_photos": any(p.startswith("skimage__") for p in family),
        "rows": rows,
    }
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
