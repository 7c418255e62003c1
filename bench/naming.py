"""Cluster-name quality and speed: vocabulary naming vs caption counting vs the names of before.

Name quality = share of clusters whose name matches the cluster's majority class: the name (or a part
of it, ``" · "``-separated) contains the class name or is contained in it (lower case, ``_``/``/``/``-``
as spaces), or their MiniLM sentence similarity (the sentence model of the bundled encoder) is ≥ 0.5.
k-means with k = number of classes on the bundled model's image view (128-d PCA), then

* ``vocabulary``: :func:`vlexplore.naming.name_clusters` (noun bank, cached per model), each score/contrast,
  with the full bank (WordNet + ImageNet) and with ImageNet's class names (the default for the bundled model);
* ``vocabulary + WordNet short names``: what the app and the CLI show (``naming_general``): the vocabulary
  names, then :func:`vlexplore.hypernyms.general_names` on each cluster's name and top 8 ranked words
  [default]; ``(name + 4 keywords, coverage 0.6)`` is the rule of before (the shown words only);
* ``captions``: names from the counted keywords of the label captions, phrases whole (this change);
* ``before``: the same counting as before this change (ties sorted words before their phrase).

Data: Fashion-MNIST test split (10,000; embeddings of ``bench/data/fashion-mnist-test-embeddings.npz``
when present, else embedded once through the cache) and a colour photo set: scikit-image's CC0 photos
of distinct subjects (read from a scikit-image wheel or installed package when one is found, else the
demo folder's photos), each photo augmented into 12 random crops / flips = one class; and the demo folder
(248 Tux Paint photos, 10 classes), also through the app's own k-means (``vlexplore.cluster_embedded``).

Speed: 100 clusters over 100,000 synthetic unit vectors (d = 512) against the cached vocabulary.

    pip download scikit-image==0.26.0 --no-deps -d bench/data/skimage-wheel   # its CC0 photos (not installed)
    python bench/naming.py                      # writes bench/results/naming.json
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

#: scikit-image photo → class name (photos of one subject; textures and micrographs left out).
PHOTOS = {
    "astronaut.png": "astronaut",
    "chelsea.png": "cat",
    "coffee.png": "coffee",
    "rocket.jpg": "rocket",
    "motorcycle_left.png": "motorcycle",
    "motorcycle_right.png": "motorcycle",
    "coins.png": "coin",
    "moon.png": "moon",
    "brick.png": "brick wall",
    "grass.png": "grass",
    "horse.png": "horse",
    "camera.png": "camera",
    "clock_motion.png": "clock",
    "page.png": "page",
    "text.png": "text",
}
FM_CLASSES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
CROPS = 12
THRESHOLD = 0.5


def _norm(t: str) -> str:
    return " ".join(str(t).lower().replace("_", " ").replace("/", " ").replace("-", " ").split())


class Matcher:
    def __init__(self, sentence):
        self.sentence = sentence
        self._cache: dict[str, np.ndarray] = {}

    def _emb(self, texts):
        new = [t for t in texts if t not in self._cache]
        if new:
            for t, e in zip(new, self.sentence.encode(new)):
                self._cache[t] = e
        return np.stack([self._cache[t] for t in texts])

    def match(self, name: str, cls: str) -> tuple[bool, str]:
        parts = [_norm(p) for p in str(name).split("·") if p.strip()] or [""]
        c = _norm(cls)
        for p in parts:
            if p and (f" {c} " in f" {p} " or f" {p} " in f" {c} "):  # whole words
                return True, "string"
        sims = self._emb([str(name), cls.replace("_", " ")])
        if float(sims[0] @ sims[1]) >= THRESHOLD:
            return True, "similarity"
        return False, ""


def quality(names: dict[int, str], labels: np.ndarray, y: np.ndarray, matcher: Matcher) -> dict:
    per, hits = {}, 0
    for c, name in sorted(names.items()):
        if c == -1:
            continue
        vals, counts = np.unique(y[labels == c], return_counts=True)
        major = str(vals[counts.argmax()])
        ok, how = matcher.match(name, major)
        hits += ok
        per[int(c)] = {"name": name, "majority": major, "hit": bool(ok), "by": how}
    n = len(per)
    return {"quality": hits / n if n else float("nan"), "n_clusters": n, "per_cluster": per}


def before_keywords(texts, labels):
    """The keywords of before this change: ties ranked alphabetically, phrases not kept whole."""
    import vlexplore.explain as ex

    saved_ranked, saved_take = ex._ranked, ex._take_whole
    ex._ranked = lambda row, lengths=None: saved_ranked(row)

    def take(cols, counts, banned, vocab, top_n):
        return [j for j in cols if j not in banned][:top_n]

    ex._take_whole = take
    try:
        return ex.cluster_keywords(texts, labels)
    finally:
        ex._ranked, ex._take_whole = saved_ranked, saved_take


def photo_sources() -> dict[str, object]:
    """Photo name → a file path or bytes (from an installed scikit-image, a downloaded wheel, or demo/)."""
    found: dict[str, object] = {}
    try:
        import skimage

        d = Path(skimage.__file__).parent / "data"
        found.update({n: d / n for n in PHOTOS if (d / n).is_file()})
    except ImportError:
        pass
    for whl in sorted(glob.glob(str(BENCH / "data" / "**" / "scikit_image-*.whl"), recursive=True)):
        with zipfile.ZipFile(whl) as z:
            for n in PHOTOS:
                if n not in found and f"skimage/data/{n}" in z.namelist():
                    found[n] = z.read(f"skimage/data/{n}")
    if not found:  # the demo folder holds a few of them as JPEGs
        demo = {
            "chelsea_cat.jpg": "chelsea.png",
            "astronaut.jpg": "astronaut.png",
            "coffee.jpg": "coffee.png",
            "rocket.jpg": "rocket.jpg",
        }
        for f, n in demo.items():
            if (ROOT / "demo" / "photos" / f).is_file():
                found[n] = ROOT / "demo" / "photos" / f
    return found


def write_photo_set(out: Path, seed: int = 0) -> dict[str, str]:
    import io

    from PIL import Image, ImageOps

    rng = np.random.default_rng(seed)
    labels = {}
    for name, src in sorted(photo_sources().items()):
        im = Image.open(io.BytesIO(src) if isinstance(src, bytes) else src).convert("RGB")
        cls = PHOTOS[name]
        (out / cls.replace(" ", "_")).mkdir(parents=True, exist_ok=True)
        w, h = im.size
        for i in range(CROPS):
            s = rng.uniform(0.55, 1.0)
            cw, ch = int(w * s), int(h * s)
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = im.crop((x0, y0, x0 + cw, y0 + ch))
            if rng.random() < 0.5:
                crop = ImageOps.mirror(crop)
            rel = f"{cls.replace(' ', '_')}/{Path(name).stem}_{i:02d}.png"
            crop.save(out / rel)
            labels[rel] = cls
    return labels


def kmeans_labels(image, k: int, seed: int = 0) -> np.ndarray:
    """k-means (cosine: unit rows) on a 128-d PCA of the image view: every naming method gets these clusters."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    from vlexplore.models.base import l2_normalize

    X = l2_normalize(np.asarray(image, dtype=np.float32))
    if X.shape[1] > 128 and len(X) > 128:
        X = PCA(128, random_state=seed).fit_transform(X)
    return KMeans(k, n_init=2, random_state=seed).fit(X.astype(np.float64)).labels_.astype(np.int64)


def run_dataset(title, image, joint, y, captions, k, vocabularies, matcher, default_vocab, seed=0) -> dict:
    from vlexplore.explain import cluster_keywords, cluster_names
    from vlexplore.hypernyms import general_names
    from vlexplore.naming import CONTRAST, name_clusters

    labels = kmeans_labels(image, k, seed)
    out = {"dataset": title, "n_images": len(y), "k": k, "runs": {}}
    t = time.perf_counter()
    kw = cluster_keywords(captions, labels)
    out["runs"]["captions (counting, phrases whole)"] = {
        **quality(cluster_names(kw), labels, y, matcher),
        "seconds": round(time.perf_counter() - t, 3),
    }
    old = before_keywords(captions, labels)
    out["runs"]["before (counting, words first)"] = quality(cluster_names(old), labels, y, matcher)
    variants = [("margin", 0.0), ("margin", 0.5), ("margin", 1.0), ("mean-margin", 1.0), ("rank", 0.5)]
    for vname, (words, E) in vocabularies.items():
        for score, contrast in variants:
            t = time.perf_counter()
            nm = name_clusters(joint, labels, words, E, score=score, contrast=contrast)
            dt = time.perf_counter() - t
            q = quality(nm.names, labels, y, matcher)
            kq = quality({c: " · ".join(v) for c, v in nm.keywords.items()}, labels, y, matcher)
            default = score == "margin" and contrast == CONTRAST and vname == default_vocab
            key = f"vocabulary {vname} ({score}, contrast {contrast})"
            out["runs"][key] = {
                **q,
                "keyword_quality": kq["quality"],
                "seconds": round(dt, 3),
                "keywords": {c: nm.keywords[c] for c in sorted(nm.keywords)},
            }
            if score == "margin" and contrast == CONTRAST:
                gen = general_names(nm.names, nm.keywords, ranked=nm.top_words)[0]
                tag = " [default]" if default else ""
                out["runs"][f"vocabulary {vname} + WordNet short names{tag}"] = quality(
                    gen, labels, y, matcher
                )
                old = general_names(nm.names, nm.keywords, coverage=0.6)[0]
                out["runs"][f"vocabulary {vname} + WordNet short names (name + 4 keywords, coverage 0.6)"] = (
                    quality(old, labels, y, matcher)
                )
    for name, r in out["runs"].items():
        kq = f"  keywords {r['keyword_quality']:.2f}" if "keyword_quality" in r else ""
        print(f"  {title[:22]:<22} {name:<58} {r['quality']:.2f}{kq}", flush=True)
    return out


def time_to_name(words, E, n=100_000, k=100, d=None, repeats=3) -> dict:
    from vlexplore.hypernyms import general_names
    from vlexplore.naming import name_clusters

    rng = np.random.default_rng(0)
    d = d or E.shape[1]
    centres = rng.normal(size=(k, d)).astype(np.float32)
    labels = rng.integers(0, k, n)
    X = centres[labels] + rng.normal(scale=2.0, size=(n, d)).astype(np.float32)
    W = E if E.shape[1] == d else rng.normal(size=(len(words), d)).astype(np.float32)
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        nm = name_clusters(X, labels, words, W)
        general_names(nm.names, nm.keywords, ranked=nm.top_words)
        times.append(time.perf_counter() - t)
    assert len(set(nm.names.values())) == k
    return {
        "n_images": n,
        "k": k,
        "d": d,
        "n_words": len(words),
        "includes": "name_clusters + general_names (vocabulary embeddings cached)",
        "seconds_best": round(min(times), 3),
        "seconds_all": [round(t, 3) for t in times],
    }


def main(argv=None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", type=Path, default=BENCH / "data" / "cache")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "naming.json")
    ap.add_argument("--speed-only", action="store_true", help="re-time naming only; other results kept")
    a = ap.parse_args(argv)
    if a.speed_only:
        from vlexplore.nouns import vocabulary

        res = json.loads(a.out.read_text())
        words = vocabulary(None, "wordnet+imagenet")
        res["time_to_name"] = time_to_name(words, np.zeros((len(words), 1), np.float32), d=512)
        print(f"time to name 100 clusters over 100k images: {res['time_to_name']['seconds_best']} s")
        a.out.write_text(json.dumps(res, indent=1, default=str) + "\n")
        return 0

    import vlexplore as vx
    from vlexplore.models.registry import load_encoder
    from vlexplore.naming import default_vocabulary, vocabulary_embeddings

    enc = load_encoder("bundled", device="cpu", cache_dir=a.cache_dir)
    t = time.perf_counter()
    words, E = vocabulary_embeddings(enc, cache_dir=a.cache_dir)
    vocabularies = {
        "wordnet+imagenet": (words, E),
        "imagenet": vocabulary_embeddings(enc, source="imagenet", cache_dir=a.cache_dir),
    }
    t_vocab = time.perf_counter() - t
    print(f"vocabulary: {len(words)} words in {t_vocab:.1f} s (cached after the first run)")
    matcher = Matcher(enc.sentence)
    results = {
        "model": enc.model_id,
        "vocabulary_words": len(words),
        "vocabulary_seconds": round(t_vocab, 2),
        "match": f"string containment or MiniLM cosine >= {THRESHOLD}",
        "datasets": [],
    }

    npz = BENCH / "data" / "fashion-mnist-test-embeddings.npz"
    if npz.is_file():
        d = np.load(npz)
        image, joint, y = d["image"], d["joint"], d["labels"].astype(str)
    else:
        from fashion_mnist import export_fashion_mnist

        emb = vx.embed(vx.scan(export_fashion_mnist(split="test")), vx.EncodeConfig(cache_dir=a.cache_dir))
        image, joint, y = emb.views["image"], emb.views["joint"], np.asarray(emb.collection.labels)
    fm_names = {f: n for f, n in zip(sorted(set(y)), sorted(set(y)))}
    y = np.array([fm_names[v] for v in y])
    captions = enc.label_captions(joint)
    results["datasets"].append(
        run_dataset(
            "Fashion-MNIST test (10k)",
            image,
            joint,
            y,
            captions,
            10,
            vocabularies,
            matcher,
            default_vocabulary(enc),
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        write_photo_set(Path(tmp) / "photos")
        col = vx.scan(Path(tmp) / "photos")
        emb = vx.embed(col, vx.EncodeConfig(cache_dir=a.cache_dir, num_workers=1), encoder=enc)
        y2 = np.array([str(v).replace("_", " ") for v in emb.collection.labels])
        k = len(set(y2))
        results["datasets"].append(
            run_dataset(
                f"scikit-image photos ({k} subjects × {CROPS} crops)",
                emb.views["image"],
                emb.views["joint"],
                y2,
                emb.captions,
                k,
                vocabularies,
                matcher,
                default_vocabulary(enc),
            )
        )

    demo = vx.embed(
        vx.scan(ROOT / "demo"), vx.EncodeConfig(cache_dir=a.cache_dir, num_workers=1), encoder=enc
    )
    y3 = np.array([str(v).replace("_", " ") for v in demo.collection.labels])
    k3 = len(set(y3))
    res = run_dataset(
        f"demo ({len(y3)} Tux Paint photos, {k3} classes)",
        demo.views["image"],
        demo.views["joint"],
        y3,
        demo.captions,
        k3,
        vocabularies,
        matcher,
        default_vocabulary(enc),
    )
    app = vx.cluster_embedded(demo, vx.ClusterConfig(method="kmeans", k=k3))  # what `make run` shows
    res["runs"]["app (cluster_embedded, k-means, default naming)"] = quality(
        app.names, app.labels, y3, matcher
    )
    print(
        f"  demo app names: {res['runs']['app (cluster_embedded, k-means, default naming)']['quality']:.2f}"
    )
    results["datasets"].append(res)

    results["time_to_name"] = time_to_name(words, E, d=512)
    print(f"time to name 100 clusters over 100k images: {results['time_to_name']['seconds_best']} s")
    results["machine"] = f"{platform.machine()}, Python {platform.python_version()}, 2 shared cores, CPU only"
    results["command"] = (
        "pip download scikit-image==0.26.0 --no-deps -d bench/data/skimage-wheel && python bench/naming.py"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
