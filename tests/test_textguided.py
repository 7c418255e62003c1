"""Tests of vlexplore.textguided: caption/keyword/prompt representations and explanation scores.

Offline and fast: small hand-made ``Embedded`` objects with captions whose clustering is obvious,
and a word-hashing fake sentence embedder. Only :func:`test_offline_answers_follow_the_question`
loads the real MiniLM (about 3 s).
"""

from __future__ import annotations

import hashlib
import re
from types import SimpleNamespace

import numpy as np
import pytest

from vlexplore import textfeatures
from vlexplore import textguided as tg
from vlexplore.config import ClusterConfig
from vlexplore.errors import ConfigError
from vlexplore.pipeline import Embedded, cluster_embedded
from vlexplore.represent import Representation, build_representation

DOGS = [
    "a photo of a dog on grass",
    "a small dog running",
    "a dog with a ball",
    "a brown dog sleeping",
    "a dog in the park",
    "a happy dog",
]
CARS = [
    "a photo of a red car",
    "a car on the road",
    "a fast car parked",
    "an old car in a street",
    "a blue car",
    "a car near a house",
]
CAPTIONS = DOGS + CARS
Y = np.array(["dog"] * len(DOGS) + ["car"] * len(CARS))


class FakeSentence:
    """Bag of words: each word a fixed random 64-d vector (seeded by its hash); counts what it encodes."""

    model_id = "fake-sentence-v1"

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts):
        texts = list(texts)
        self.encoded.extend(texts)
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()) or ["<empty>"]:
                seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                out[i] += np.random.default_rng(seed).normal(size=64)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeCollection:
    def __init__(self, labels) -> None:
        self._labels = labels

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self):
        return self._labels

    @property
    def fingerprints(self):
        return [f"fp{i}" for i in range(len(self))]


def make_emb(captions=CAPTIONS, labels=Y, *, encoder=None, joint=None) -> Embedded:
    n = len(captions)
    rng = np.random.default_rng(0)
    image = rng.normal(size=(n, 8)).astype(np.float32)
    views = {"image": image / np.linalg.norm(image, axis=1, keepdims=True)}
    if joint is not None:
        views["joint"] = joint
    return Embedded(
        collection=FakeCollection(labels),
        views=views,
        captions=list(captions),
        model_id="fake",
        model_description="fake",
        encoder=encoder or SimpleNamespace(sentence=FakeSentence()),
    )


def kmeans_acc(X, k=2) -> float:
    from sklearn.cluster import KMeans

    from vlexplore.evaluate import clustering_accuracy

    return clustering_accuracy(Y, KMeans(k, n_init=10, random_state=0).fit(X).labels_)


def assert_unit_rows(X, n):
    assert X.dtype == np.float32
    assert X.shape[0] == n
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)


# --- caption representations ---------------------------------------------------------------------


def test_caption_tfidf_shape_normalised_and_separates():
    rep = tg.caption_tfidf(make_emb(), ClusterConfig(representation="caption-tfidf"))
    assert isinstance(rep, Representation)
    assert_unit_rows(rep.X, len(CAPTIONS))
    assert rep.texts == CAPTIONS
    assert rep.joint is None
    assert rep.labels is None
    assert rep.info["svd_dims"] is None
    assert rep.info["tfidf_features"] == rep.X.shape[1]
    assert kmeans_acc(rep.X) == 1.0


def test_tfidf_drops_boilerplate_and_stop_words():
    _X, info = tg.tfidf_matrix(["a photo of a dog", "a photo of a cat"])
    assert info["tfidf_features"] == 2  # "dog", "cat": no "photo", "of", "a"


def test_tfidf_reduces_large_matrices_with_svd(monkeypatch):
    monkeypatch.setattr(textfeatures, "DENSE_MAX_CELLS", 10)
    monkeypatch.setattr(textfeatures, "SVD_DIMS", 3)
    X, info = tg.tfidf_matrix(CAPTIONS)
    assert X.shape == (len(CAPTIONS), 3)
    assert info["svd_dims"] == 3
    assert_unit_rows(X, len(CAPTIONS))


def test_caption_sbert_embeds_each_distinct_text_once_and_caches(tmp_path):
    enc = SimpleNamespace(sentence=FakeSentence(), cache_dir=tmp_path / "cache")
    captions = CAPTIONS + CAPTIONS[:3]
    emb = make_emb(captions, np.concatenate([Y, Y[:3]]), encoder=enc)
    rep = tg.caption_sbert(emb, ClusterConfig(representation="caption-sbert"))
    assert_unit_rows(rep.X, len(captions))
    assert sorted(enc.sentence.encoded) == sorted(CAPTIONS)
    np.testing.assert_allclose(rep.X[-3:], rep.X[:3])
    again = tg.caption_sbert(emb, ClusterConfig(representation="caption-sbert"))
    assert len(enc.sentence.encoded) == len(CAPTIONS)  # all from the disk cache
    np.testing.assert_allclose(again.X, rep.X, atol=1e-6)
    assert kmeans_acc(rep.X[: len(CAPTIONS)]) == 1.0


def test_extract_keywords_known_example():
    texts = [
        "a photo of a letter opener, or a bulletproof vest",
        "a letter opener",
        "a bulletproof vest",
        "a rare word",
    ]
    assert tg.extract_keywords(texts) == [
        ["bulletproof vest", "letter opener"],
        ["letter opener"],
        ["bulletproof vest"],
        [],
    ]


def test_keyword_tfidf_texts_are_keywords():
    rep = tg.keyword_tfidf(make_emb(), ClusterConfig(representation="keywords"))
    assert_unit_rows(rep.X, len(CAPTIONS))
    assert rep.texts[0] == "dog"
    assert rep.texts[6] == "car"
    assert kmeans_acc(rep.X) == 1.0


def test_label_top_recomputes_label_captions():
    enc = SimpleNamespace(sentence=FakeSentence(), label_captions=lambda j, top: [f"top {top}"] * len(j))
    emb = make_emb(encoder=enc, joint=np.zeros((len(CAPTIONS), 1000), dtype=np.float32))
    texts, source = tg.image_captions(
        emb, ClusterConfig(representation="caption-tfidf", options={"label_top": 4})
    )
    assert texts[0] == "top 4"
    assert "not a real captioner" in source


def test_real_captioner_path_uses_caption_images(image_folder, cache_dir, monkeypatch):
    from vlexplore.images import scan_folder

    class ColourCaptioner:
        model_id, device, description, supports_prompts = "fake-cap", "cpu", "fake captioner", True

        def preprocess(self, image):
            return image

        def caption_batch(self, batch, prompt=None):
            return ["a red thing" if np.asarray(im)[..., 0].mean() > 128 else "a dark thing" for im in batch]

    col = scan_folder(image_folder.root)
    emb = Embedded(
        collection=col,
        views={},
        captions=[""] * len(col),
        model_id="x",
        model_description="x",
        encoder=SimpleNamespace(cache_dir=cache_dir),
    )
    monkeypatch.setattr(tg, "_load_captioner", lambda cfg: ColourCaptioner())
    texts, source = tg.image_captions(
        emb, ClusterConfig(representation="caption-tfidf", options={"captioner": "fake"})
    )
    assert source == "fake captioner"
    assert len(texts) == len(col)
    reds = [t for t, p in zip(texts, col.items["relpath"]) if p.startswith("red/") and "truncated" not in p]
    assert reds
    assert all(t == "a red thing" for t in reds)


# --- bad inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [tg.caption_tfidf, tg.caption_sbert, tg.keyword_tfidf])
def test_no_captions_is_a_config_error(build):
    with pytest.raises(ConfigError, match="no captions"):
        build(make_emb([""] * 4, np.array(["a", "a", "b", "b"])), ClusterConfig())


def test_unknown_captioner_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown captioner"):
        tg.caption_tfidf(
            make_emb(),
            ClusterConfig(representation="caption-tfidf", options={"captioner": "no-such-captioner"}),
        )


@pytest.mark.parametrize("options", [{"label_top": 0}, {"max_keywords": "5"}, {"prompt_weight": -1.0}])
def test_bad_options_are_config_errors(options, monkeypatch):
    enc = SimpleNamespace(
        sentence=FakeSentence(), class_text_embeddings=lambda: None, label_captions=lambda j, top: CAPTIONS
    )
    emb = make_emb(encoder=enc, joint=np.zeros((len(CAPTIONS), 1000), dtype=np.float32))
    build, rep = (
        (tg.prompt_guided, "prompt") if "prompt_weight" in options else (tg.keyword_tfidf, "keywords")
    )
    cfg = ClusterConfig(representation=rep, options=options)  # a known key: checked where it is read
    with pytest.raises(ConfigError, match=next(iter(options))):
        build(emb, cfg)


def test_prompts_need_a_vqa_model_or_the_bundled_one(monkeypatch):
    with pytest.raises(ConfigError, match="answers questions"):
        tg.prompt_guided(make_emb(), ClusterConfig(representation="prompt"))
    monkeypatch.setattr(tg, "_load_captioner", lambda cfg: SimpleNamespace(supports_prompts=False))
    with pytest.raises(ConfigError, match="cannot answer questions"):
        tg.prompt_guided(make_emb(), ClusterConfig(representation="prompt", options={"captioner": "git"}))


def test_non_string_question_is_a_config_error():
    with pytest.raises(ConfigError, match="strings"):
        tg._questions(ClusterConfig(questions=("ok?", 3)))


# --- prompts -------------------------------------------------------------------------------------

GOOD = [f"a {w} dog" for w in ("small", "big", "brown", "happy", "old", "young")] + [
    f"a {w} car" for w in ("red", "blue", "fast", "old", "new", "small")
]
NOISY = [
    f"{a} {b}"
    for a, b in zip(
        ["sky", "tree", "lamp", "rock", "hat", "cup"] * 2,
        ["river", "book", "door", "fish", "sand", "leaf", "coin", "bird", "moon", "shoe", "rain", "salt"],
    )
]
SAME = ["a thing"] * len(GOOD)
ANSWERS = {"What animal or vehicle?": GOOD, "What is around?": NOISY, "What is it?": SAME}


@pytest.fixture
def prompt_emb(monkeypatch):
    monkeypatch.setattr(tg, "offline_answers", lambda joint, q, enc, top, weight: ANSWERS[q])
    enc = SimpleNamespace(sentence=FakeSentence(), class_text_embeddings=lambda: None)
    return make_emb(encoder=enc, joint=np.zeros((len(GOOD), 1000), dtype=np.float32))


def test_rank_prompts_picks_the_separating_prompt():
    s = FakeSentence()
    ranking = tg.rank_prompts({q: s.encode(a) for q, a in ANSWERS.items()}, k=2)
    table = ranking["table"]
    assert ranking["chosen"] == "What animal or vehicle?"
    assert [r["prompt"] for r in table] == ["What animal or vehicle?", "What is around?", "What is it?"]
    assert table[-1]["degenerate"]
    assert table[-1]["inertia"] == 0.0
    assert table[0]["inertia"] < table[1]["inertia"]
    assert table[0]["silhouette"] > table[1]["silhouette"]
    assert [r["rank"] for r in table] == [1, 2, 3]
    np.testing.assert_array_equal(
        ranking["labels"]["What animal or vehicle?"][:6],
        [ranking["labels"]["What animal or vehicle?"][0]] * 6,
    )


def test_ami_matrix_is_symmetric_with_unit_diagonal():
    s = FakeSentence()
    spaces = {q: s.encode(a) for q, a in ANSWERS.items()}
    spaces["copy"] = spaces["What animal or vehicle?"].copy()
    r = tg.rank_prompts(spaces, k=2)
    ami = r["ami"]
    assert ami.shape == (4, 4)
    assert r["prompts"] == list(spaces)
    np.testing.assert_allclose(ami, ami.T)
    np.testing.assert_allclose(np.diag(ami), 1.0)
    assert ami[0, 3] == pytest.approx(1.0)  # identical clusterings


def test_prompt_guided_returns_the_chosen_prompt(prompt_emb):
    cfg = ClusterConfig(representation="prompt", k=2, questions=tuple(ANSWERS))
    rep = build_representation(prompt_emb, cfg)
    assert rep.info["chosen_prompt"] == "What animal or vehicle?"
    assert rep.texts == GOOD
    assert "not a real VQA model" in rep.info["answerer"]
    assert_unit_rows(rep.X, len(GOOD))
    assert rep.labels is not None
    assert kmeans_acc(rep.X) == 1.0
    assert set(rep.info["prompt_labels"]) == set(ANSWERS)
    assert rep.info["ami"].shape == (3, 3)


def test_empty_questions_use_the_default(prompt_emb, monkeypatch):
    monkeypatch.setitem(ANSWERS, tg.DEFAULT_QUESTIONS[0], GOOD)
    rep = tg.prompt_guided(prompt_emb, ClusterConfig(representation="prompt", k=2, questions=(" ", "")))
    assert rep.info["chosen_prompt"] == tg.DEFAULT_QUESTIONS[0]
    assert [r["prompt"] for r in rep.info["prompt_ranking"]] == list(tg.DEFAULT_QUESTIONS)


def test_offline_answers_follow_the_question():
    from vlexplore.models.bundled import BundledEncoder, imagenet_class_names

    names = [n[0] for n in imagenet_class_names()]
    logits = np.zeros((1, 1000), dtype=np.float32)
    logits[0, names.index("sandal")] = logits[0, names.index("jersey")] = 10.0
    joint = (logits - logits.mean()) / np.linalg.norm(logits - logits.mean())
    enc = BundledEncoder(device="cpu")
    feet = tg.offline_answers(joint, "What shoes are these?", enc, top=1)
    top = tg.offline_answers(joint, "What shirt is this?", enc, top=1)
    assert feet == ["sandal"]
    assert top == ["jersey"]
    plain = tg.offline_answers(joint, "What shoes are these?", enc, top=2, weight=0.0)
    assert set(plain[0].split(", ")) == {"sandal", "jersey"}


# --- through the pipeline ------------------------------------------------------------------------


def test_cluster_embedded_with_caption_tfidf():
    emb = make_emb()
    cl = cluster_embedded(
        emb, ClusterConfig(representation="caption-tfidf", k=2), coords=np.zeros((emb.n, 2), dtype=np.float32)
    )
    assert cl.metrics["acc"] == 1.0
    assert sorted(kw[0] for kw in cl.keywords.values()) == ["car", "dog"]
    assert cl.info["text_source"] == "captions"


def test_cluster_embedded_with_prompts(prompt_emb):
    cl = cluster_embedded(
        prompt_emb,
        ClusterConfig(representation="prompt", k=2, questions=tuple(ANSWERS)),
        coords=np.zeros((prompt_emb.n, 2), dtype=np.float32),
    )
    assert cl.metrics["acc"] == 1.0
    assert cl.info["chosen_prompt"] == "What animal or vehicle?"


# --- explanation scores --------------------------------------------------------------------------

EX_LABELS = np.array([0, 0, 1, 1, 2, -1])
EX_TRUE = np.array(["dog", "dog", "car", "car", "bench", "dog"])
EX_TEXTS = ["a dog", "park bench", "a car", "wheel", "park bench", "dog"]
EX_KW = {0: ["dog", "park"], 1: ["wheel"], 2: ["park bench"], -1: ["dog"]}


def test_explanation_scores_known_example():
    s = tg.explanation_scores(EX_KW, EX_LABELS, EX_TRUE, texts=EX_TEXTS)
    assert s["n_clusters"] == 3
    assert s["coverage"] == pytest.approx(4 / 5)  # "a car" holds no keyword of cluster 1
    # word sets {dog, park}, {wheel}, {park, bench}: Jaccard 0, 1/3, 0
    assert s["distinctiveness"] == pytest.approx(1 - 1 / 9)
    assert s["hit_rate"] == pytest.approx(2 / 3)  # dog ⊂ "dog", "bench" ⊂ "park bench"; wheel ≠ car
    assert s["hits_by_string"] == 2
    assert s["hits_by_similarity"] == 0
    assert s["per_cluster"][1] == {
        "keywords": ["wheel"],
        "coverage": 0.5,
        "class": "car",
        "hit": False,
        "match": None,
    }


def test_explanation_scores_sentence_similarity_hits():
    table = {
        "car": [1.0, 0.0],
        "wheel": [0.6, 0.8],
        "bench": [0.0, 1.0],
        "park bench": [0.0, 1.0],
        "dog": [1.0, 0.0],
        "park": [0.0, 1.0],
    }
    embedder = SimpleNamespace(encode=lambda texts: np.array([table[t] for t in texts], dtype=np.float32))
    s = tg.explanation_scores(EX_KW, EX_LABELS, EX_TRUE, texts=EX_TEXTS, sentence_embedder=embedder)
    assert s["hit_rate"] == 1.0
    assert s["hits_by_similarity"] == 1
    assert s["per_cluster"][1]["best_cosine"] == pytest.approx(0.6)


def test_explanation_scores_class_names_and_label_free():
    s = tg.explanation_scores(
        {0: ["boot"], 1: ["tee"]}, [0, 0, 1], [9, 9, 0], class_names={0: "t-shirt_top", 9: "ankle_boot"}
    )
    assert s["hit_rate"] == 0.5
    assert s["per_cluster"][0]["class"] == "ankle boot"
    free = tg.explanation_scores({0: ["boot"]}, [0, 0, -1])
    assert np.isnan(free["coverage"])
    assert np.isnan(free["distinctiveness"])
    assert "hit_rate" not in free


def test_explanation_scores_bad_inputs():
    with pytest.raises(ConfigError, match="integer"):
        tg.explanation_scores({}, [0.5, 1.0])
    with pytest.raises(ConfigError, match="texts"):
        tg.explanation_scores({0: ["a"]}, [0, 0], texts=["a"])
    with pytest.raises(ConfigError, match="shape"):
        tg.explanation_scores({0: ["a"]}, [0, 0], y_true=["a"])
