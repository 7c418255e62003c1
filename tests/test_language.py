"""Language-assisted clustering (vlexplore.nouns, vlexplore.language) on small synthetic data.

The data has known structure: three clusters around orthogonal directions of a 16-d "joint"
space, and a fake text encoder that puts the planted nouns "alpha", "beta" and "gamma" on those
directions and every other text on a random direction of its own.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from vlexplore import language as L
from vlexplore import nouns as N
from vlexplore.config import ClusterConfig
from vlexplore.errors import ConfigError
from vlexplore.pipeline import Embedded, cluster_embedded

PLANTED = ("alpha", "beta", "gamma")
DISTRACTORS = tuple(f"thing{i}" for i in range(12))
D_JOINT, D_IMAGE, PER_CLUSTER = 16, 12, 30


class TextEncoder:
    """Texts naming a planted noun land on its axis of the joint space; others anywhere."""

    def __init__(self, model_id: str = "fake-language-v1") -> None:
        self.model_id = model_id
        self.n_texts = 0
        self.cache_dir = None

    def encode_texts(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), D_JOINT), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            wobble = np.random.default_rng(seed).normal(0, 1, D_JOINT)
            words = re.findall(r"[a-z]+", text.lower())
            hit = [j for j, w in enumerate(PLANTED) if w in words]
            if hit:
                out[i, hit[0]] = 1.0
                out[i] += 0.05 * wobble
            else:
                out[i] = wobble
        self.n_texts += len(texts)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class Collection:
    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``joint (90, 16)``, ``image (90, 12)``, ``y (90,)``: three tight clusters on axes 0, 1, 2."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), PER_CLUSTER)
    joint = np.eye(D_JOINT, dtype=np.float32)[y] + 0.15 * rng.normal(size=(len(y), D_JOINT))
    image = joint @ rng.normal(size=(D_JOINT, D_IMAGE)) + 0.05 * rng.normal(size=(len(y), D_IMAGE))
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(joint), unit(image), y


@pytest.fixture
def emb() -> Embedded:
    joint, image, y = make_data()
    return Embedded(
        collection=Collection(np.array(PLANTED)[y]),
        views={"image": image, "joint": joint},
        captions=[""] * len(y),
        model_id="fake-language-v1",
        model_description="fake",
        encoder=TextEncoder(),
    )


def options(tmp_path, **extra) -> dict:
    return {
        "nouns": [*PLANTED, *DISTRACTORS],
        "cache_dir": str(tmp_path / "cache"),
        "templates": "tac",
        **extra,
    }


def run(emb, tmp_path, representation: str, k: int = 3, seed: int = 0, **extra):
    cfg = ClusterConfig(k=k, seed=seed, representation=representation, options=options(tmp_path, **extra))
    return cluster_embedded(emb, cfg, coords=np.zeros((emb.n, 2), dtype=np.float32))


# ------------------------------------------------------------------------------- vocabulary


def test_packaged_vocabulary_is_clean_and_licensed():
    nouns = N.wordnet_nouns()
    assert 5_000 < len(nouns) < 20_000
    assert len(set(nouns)) == len(nouns)
    assert all(n == n.lower() and n.strip() == n and len(n.split()) <= 2 for n in nouns)
    assert {"dog", "shirt", "sandal", "bicycle", "t-shirt"} <= set(nouns)
    assert "Princeton University" in (N.DATA_DIR / "WORDNET_LICENSE").read_text()


def test_vocabulary_sources_and_user_nouns():
    assert N.vocabulary("Dog, cat,  dog , red car") == ["Dog", "cat", "red car"]
    both = N.vocabulary()
    assert len(both) > len(N.wordnet_nouns())
    assert "tench" in both
    with pytest.raises(ConfigError, match="empty"):
        N.vocabulary([" ", ""])
    with pytest.raises(ConfigError, match="unknown noun vocabulary"):
        N.vocabulary(source="everything")


def test_noun_embeddings_average_templates_and_are_cached(tmp_path):
    enc = TextEncoder()
    first = N.noun_embeddings(["alpha", "thing1"], enc, templates=N.TAC_TEMPLATES, cache_dir=tmp_path)
    assert enc.n_texts == 2 * len(N.TAC_TEMPLATES)
    assert first.shape == (2, D_JOINT)
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    assert first[0, 0] > 0.99  # every template names alpha: the average stays on its axis
    again = N.noun_embeddings(["thing1", "alpha", "beta"], enc, templates=N.TAC_TEMPLATES, cache_dir=tmp_path)
    assert enc.n_texts == 3 * len(N.TAC_TEMPLATES)  # only "beta" was new
    assert np.allclose(again[:2], first[::-1], atol=1e-6)
    other = N.noun_embeddings(
        ["alpha"], enc, templates=("{}",), cache_dir=tmp_path
    )  # other templates: own cache
    assert enc.n_texts == 3 * len(N.TAC_TEMPLATES) + 1
    assert other.shape == (1, D_JOINT)


def test_templates_resolve():
    class Declares:
        prompt_templates = ("{}",)

    assert N.resolve_templates("tac", None) == N.TAC_TEMPLATES
    assert N.resolve_templates("encoder", Declares()) == ("{}",)
    with pytest.raises(ConfigError, match="needs a"):
        N.resolve_templates(["a photo"], None)


# ------------------------------------------------------------------------------- TAC steps


def test_select_nouns_picks_the_planted_nouns():
    joint, _, _ = make_data()
    vocab = [*DISTRACTORS, *PLANTED]
    E = N.noun_embeddings(vocab, TextEncoder(), templates=("{}",))
    selected, centre_of = N.select_nouns(joint, E, n_centres=3, per_centre=1, seed=0)
    assert sorted(vocab[i] for i in selected) == sorted(PLANTED)
    assert sorted(centre_of.tolist()) == [0, 1, 2]


def test_text_counterparts_are_unit_rows_and_sharpen_with_temperature():
    joint, _, y = make_data()
    E = N.noun_embeddings(list(PLANTED), TextEncoder(), templates=("{}",))
    sims = joint @ E.T
    cp = N.text_counterparts(sims, E, 0.01)
    assert cp.shape == (len(joint), D_JOINT)
    assert cp.dtype == np.float32
    assert np.allclose(np.linalg.norm(cp, axis=1), 1, atol=1e-5)
    assert (np.argmax(cp @ E.T, axis=1) == y).all()
    assert np.allclose(cp, E[y], atol=1e-3)  # low τ: the nearest noun itself
    soft = N.text_counterparts(sims, E, 100.0)  # high τ: all nouns alike
    assert np.allclose(soft, soft[0], atol=1e-2)


def test_auto_temperature_matches_tac_on_clip_scale():
    rng = np.random.default_rng(0)
    sims = 0.25 + 0.025 * rng.standard_normal((200, 300))
    assert N.auto_temperature(sims) == pytest.approx(0.005, rel=0.05)


def test_relation_matrix_normalisations():
    sims = np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.8]], dtype=np.float32)
    z = N.relation_matrix(sims, "zscore")
    assert np.allclose(z.sum(axis=1), 0, atol=1e-6)
    assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-6)
    assert np.allclose(z[0], [-np.sqrt(0.5), 0, np.sqrt(0.5)], atol=1e-5)
    s = N.relation_matrix(sims, "softmax", 0.1)
    assert (s > 0).all()
    assert np.allclose(np.linalg.norm(s, axis=1), 1, atol=1e-6)
    with pytest.raises(ConfigError, match="relation norm"):
        N.relation_matrix(sims, "rank")


# ------------------------------------------------------------------------------- neighbourhoods


ANGLES = np.deg2rad([0, 10, 80, 90])
POINTS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)


def test_neighbourhood_consistency_exact_values():
    labels = [0, 0, 0, 1]
    # k=1: 0°↔10° agree, 80°→90° and 90°→80° do not.
    assert L.neighbourhood_consistency(POINTS, labels, k=1) == pytest.approx(0.5)
    # k=2: 0°{10°,80°}=1, 10°{0°,80°}=1, 80°{90°,10°}=½, 90°{80°,10°}=0.
    assert L.neighbourhood_consistency(POINTS, labels, k=2) == pytest.approx(0.625)
    assert L.neighbourhood_consistency(POINTS, ["a", "b", "a", "b"], k=1) == 0.0
    with pytest.raises(ConfigError, match="only 4 rows"):
        L.neighbourhood_consistency(POINTS, labels, k=4)


def test_confident_mask():
    mask = L.confident_mask(POINTS, [0, 0, 0, 1], k=2, agree=0.5)
    assert mask.tolist() == [True, True, True, False]
    assert L.confident_mask(POINTS, [0, 0, 0, 1], k=2, agree=1.0).tolist() == [True, True, False, False]
    assert L.confident_mask(POINTS, [-1, -1, 0, 0], k=1).tolist() == [False, False, True, True]
    nb = L.knn_indices(POINTS, 2)
    assert L.confident_mask(None, [0, 0, 0, 1], k=2, neighbours=nb).tolist() == mask.tolist()
    with pytest.raises(ConfigError, match="agree"):
        L.confident_mask(POINTS, [0, 0, 0, 1], agree=1.5)
    with pytest.raises(ConfigError, match="labels must have shape"):
        L.confident_mask(POINTS, [0, 1], k=1)


# ------------------------------------------------------------------------------- learned centres


def test_train_centres_is_deterministic_and_lowers_its_objective():
    joint, _, y = make_data()
    noisy = np.where(np.arange(len(y)) % 10 == 0, (y + 1) % 3, y)  # 10 % wrong pseudo-labels
    mask = L.confident_mask(joint, noisy, k=10, agree=0.6)
    assert 0 < mask.sum() < len(y)
    init = np.eye(3, D_JOINT, dtype=np.float32) + 0.5  # a poor start, shared by both runs
    a, losses_a = L.train_centres(joint, noisy, mask, init, epochs=60, lr=0.05)
    b, losses_b = L.train_centres(joint, noisy, mask, init, epochs=60, lr=0.05)
    assert np.array_equal(a, b)
    assert losses_a == losses_b
    assert len(losses_a) == 61
    assert losses_a[-1] < 0.5 * losses_a[0]
    assert (np.argmax(joint @ a.T, axis=1) == y).all()  # the wrong pseudo-labels are corrected
    with pytest.raises(ConfigError, match="no image is confident"):
        L.train_centres(joint, noisy, np.zeros(len(y), bool), init)


# ------------------------------------------------------------------------------- builders via the pipeline


def test_nouns_through_the_pipeline(emb, tmp_path):
    cl = run(emb, tmp_path, "nouns")
    assert cl.metrics["acc"] == 1.0
    assert set(PLANTED) <= set(cl.info["nouns"])
    assert cl.info["n_vocabulary"] == len(PLANTED) + len(DISTRACTORS)
    assert sorted(w for kws in cl.keywords.values() for w in kws[:1]) == sorted(
        PLANTED
    )  # clusters named by nouns
    assert cl.info["temperature"] > 0


def test_tac_matrix_shape_and_norm(emb, tmp_path):
    rep = L.tac_representation(emb, ClusterConfig(k=3, representation="nouns", options=options(tmp_path)))
    assert rep.X.shape == (emb.n, D_IMAGE + D_JOINT)
    assert rep.X.dtype == np.float32
    assert np.allclose(np.linalg.norm(rep.X, axis=1), 1, atol=1e-5)
    assert rep.texts[0].split(", ")[0] == "alpha"
    assert rep.labels is None


def test_relations_through_the_pipeline(emb, tmp_path):
    cl = run(emb, tmp_path, "relations")
    assert cl.metrics["acc"] == 1.0
    cons = cl.info["consistency@10"]
    assert set(cons) == {"image", "relations"}
    assert 0.9 <= cons["relations"] <= 1.0


def test_centres_through_the_pipeline(emb, tmp_path):
    cl = run(emb, tmp_path, "centres", rounds=2, epochs=30)
    assert cl.metrics["acc"] == 1.0
    assert [r["round"] for r in cl.info["rounds"]] == [1, 2]
    assert all(
        {"confident", "changed", "objective_first", "objective_last"} <= set(r) for r in cl.info["rounds"]
    )
    assert sorted(v[0] for v in cl.info["centre_nouns"].values()) == sorted(
        PLANTED
    )  # each centre named by its noun
    conf = cl.info["confident"]
    assert conf.dtype == bool
    assert conf.shape == (emb.n,)
    assert conf.mean() > 0.9
    again = run(emb, tmp_path, "centres", rounds=2, epochs=30)
    assert np.array_equal(cl.labels, again.labels)
    assert cl.info["losses"] == again.info["losses"]


def test_centres_in_joint_space_and_from_image_init(emb, tmp_path):
    cl = run(emb, tmp_path, "centres", rounds=1, epochs=20, space="joint", init="image")
    assert cl.metrics["acc"] == 1.0
    assert cl.info["space"] == "joint"


def test_bundled_defaults_apply_under_user_options():
    assert L.LanguageOptions.from_options({}, "bundled:x").temperature == 0.1
    assert L.LanguageOptions.from_options({"temperature": None}, "bundled:x").temperature is None
    assert L.LanguageOptions.from_options({}, "openclip:x").text_weight == 1.0
    assert L.LanguageOptions.from_options({"other_builder_key": 1}).n_nouns == 5  # foreign keys left alone


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("n_nouns", 0, "n_nouns"),
        ("knn", 2.5, "knn"),
        ("epochs", True, "epochs"),
        ("agree", 0, "agree"),
        ("agree", 1.5, "agree"),
        ("temperature", -1.0, "temperature"),
        ("lr", 0, "lr"),
        ("balance", -1, "balance"),
        ("relation_norm", "rank", "relation_norm"),
        ("space", "image", "space"),
        ("init", "random", "init"),
    ],
)
def test_bad_option_is_named(emb, tmp_path, key, value, match):
    with pytest.raises(ConfigError, match=match):
        run(emb, tmp_path, "centres", **{key: value})


def test_bad_inputs(emb, tmp_path):
    with pytest.raises(ConfigError, match="only 90 images"):
        run(emb, tmp_path, "nouns", k=91)
    with pytest.raises(ConfigError, match="empty"):
        run(emb, tmp_path, "relations", nouns=[])
    no_joint = Embedded(
        collection=emb.collection,
        views={"image": emb.views["image"]},
        captions=emb.captions,
        model_id="x",
        model_description="x",
        encoder=TextEncoder(),
    )
    with pytest.raises(ConfigError, match="joint"):
        run(no_joint, tmp_path, "nouns")
    small = Embedded(
        collection=Collection(np.array(["a", "b"])),
        views={k: v[:2] for k, v in emb.views.items()},
        captions=["", ""],
        model_id="x",
        model_description="x",
        encoder=TextEncoder(),
    )
    with pytest.raises(ConfigError, match="at least 3"):
        run(small, tmp_path, "centres", k=2)
