"""Tests of vlexplore.naming: zero-shot, contrastive, unique cluster names from a vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

import vlexplore as vx
from vlexplore.drift import prototype_drift
from vlexplore.errors import ConfigError
from vlexplore.models.base import l2_normalize
from vlexplore.naming import (
    SCORES,
    contrastive_scores,
    name_clusters,
    vocabulary_embeddings,
)

#: Nouns the FakeEncoder embeds in random 3-d directions, picked (by measuring) to be no closer than
#: 0.6 to any class colour, with and without a template: in 3-d a random word can sit nearer a colour
#: than its name does, which says nothing about naming.
DISTRACTORS = ["violin", "spoon", "shoe", "apple", "bottle", "piano", "hat", "fork", "key"]
WORDS = ["red", "green", "blue", *DISTRACTORS]


@pytest.fixture
def colours(image_folder, fake_encoder, cache_dir):
    """The conftest image folder embedded with the FakeEncoder: ``(joint, folder labels as ids, class names)``."""
    res = vx.embed_images(vx.scan_folder(image_folder.root), fake_encoder, cache_dir=cache_dir, num_workers=0)
    classes, ids = np.unique(np.asarray(res.collection.labels), return_inverse=True)
    return res.views["joint"], ids.astype(np.int64), [str(c) for c in classes]


def test_clusters_are_named_with_their_colour_words(colours, fake_encoder, cache_dir):
    joint, labels, classes = colours
    words, E = vocabulary_embeddings(fake_encoder, words=WORDS, cache_dir=cache_dir)
    for score in ("margin", "mean-margin"):  # ("rank" needs more than a dozen words to rank)
        nm = name_clusters(joint, labels, words, E, score=score)
        assert nm.names == dict(enumerate(classes)), score
        assert all(np.isfinite(nm.scores[c]) for c in nm.names)
        assert nm.score == score


def test_vocabulary_embeddings_are_cached_per_model(colours, fake_encoder, make_encoder, cache_dir):
    vocabulary_embeddings(fake_encoder, words=WORDS, cache_dir=cache_dir)
    again = make_encoder()
    _, E = vocabulary_embeddings(again, words=WORDS, cache_dir=cache_dir)
    assert again.n_texts == 0
    assert E.shape == (len(WORDS), 3)
    other = make_encoder(seed=1)  # another model id: embedded again
    vocabulary_embeddings(other, words=WORDS, cache_dir=cache_dir)
    assert other.n_texts == len(WORDS)


def test_vocabulary_embeddings_are_kept_in_memory_per_key_and_only_beside_a_disk_cache(
    fake_encoder, cache_dir, monkeypatch
):
    import vlexplore.nouns as nouns_mod
    import vlexplore.vocabulary as voc_mod

    calls: list[int] = []
    real = nouns_mod.noun_embeddings

    def counting(vocab, *args, **kwargs):
        calls.append(len(vocab))
        return real(vocab, *args, **kwargs)

    monkeypatch.setattr(nouns_mod, "noun_embeddings", counting)
    words, E = vocabulary_embeddings(fake_encoder, words=WORDS, cache_dir=cache_dir)
    words2, E2 = vocabulary_embeddings(fake_encoder, words=list(WORDS), cache_dir=cache_dir)
    assert calls == [len(WORDS)]
    assert words2 == words
    assert E2 is E
    assert not E.flags.writeable  # shared: no caller can change another's words
    words2.append("changed")  # the word list handed out is the caller's own
    assert vocabulary_embeddings(fake_encoder, words=WORDS, cache_dir=cache_dir)[0] == words
    w3, _ = vocabulary_embeddings(fake_encoder, words=WORDS, extra_words=("kite",), cache_dir=cache_dir)
    assert w3[0] == "kite"
    assert len(calls) == 2
    vocabulary_embeddings(fake_encoder, words=WORDS)
    vocabulary_embeddings(fake_encoder, words=WORDS)
    assert len(calls) == 4  # no disk cache, no memory either
    for i in range(voc_mod.MEMO_SIZE):
        vocabulary_embeddings(fake_encoder, words=WORDS, extra_words=(f"w{i}",), cache_dir=cache_dir)
    vocabulary_embeddings(fake_encoder, words=WORDS, cache_dir=cache_dir)
    assert len(calls) == 5 + voc_mod.MEMO_SIZE  # the oldest was let go


def test_names_are_unique_and_keywords_are_unique_and_exclude_names(fake_encoder):
    rng = np.random.default_rng(0)
    # six clusters, two of each colour: both red clusters fit "red" best, only one may have it
    base = np.array(
        [[1, 0.1, 0.1], [1, 0.3, 0.1], [0.1, 1, 0.1], [0.2, 1, 0.3], [0.1, 0.1, 1], [0.3, 0.2, 1]]
    )
    joint = np.repeat(base, 5, axis=0) + rng.normal(0, 0.02, (30, 3))
    labels = np.repeat(np.arange(6), 5)
    words = [*WORDS, "crimson red", "dark green", "navy blue", "yellow", "white"]
    E = vx.encode_prompts(words, fake_encoder, templates=["{}"])
    nm = name_clusters(joint, labels, words, E, n_keywords=3)
    names = list(nm.names.values())
    assert len(names) == len(set(names)) == 6
    assert {nm.names[0], nm.names[1]} <= {"red", "crimson red", "yellow", "white"}
    flat = [w for kw in nm.keywords.values() for w in kw]
    assert len(flat) == len(set(flat))
    assert not set(flat) & set(names)
    assert all(len(kw) <= 3 for kw in nm.keywords.values())
    assert any(nm.keywords.values())


def test_user_words_are_added_to_the_vocabulary(colours, fake_encoder, cache_dir):
    joint, labels, classes = colours
    bank = ["green", "blue", *DISTRACTORS]  # no "red" in the bank
    words, E = vocabulary_embeddings(
        fake_encoder, words=bank, extra_words="red apple, Dog", cache_dir=cache_dir
    )
    assert words[0] == "red apple"
    assert words.count("dog") + words.count("Dog") == 1
    nm = name_clusters(joint, labels, words, E)
    assert nm.names[classes.index("red")] == "red apple"


def test_noise_is_named_and_does_not_compete(colours, fake_encoder):
    joint, labels, classes = colours
    labels = labels.copy()
    labels[labels == classes.index("blue")] = -1
    E = vx.encode_prompts(WORDS, fake_encoder, templates=["{}"])
    nm = name_clusters(joint, labels, WORDS, E, noise_name="noise")
    assert nm.names[-1] == "noise"
    assert np.isnan(nm.scores[-1])
    assert nm.names[classes.index("red")] == "red"
    assert nm.names[classes.index("green")] == "green"
    assert "blue" in nm.keywords[-1]  # what the rest is about, not a name
    assert "blue" not in nm.names.values()
    assert set(nm.names) == {-1, 1, 2}


def test_fixed_names_are_kept_and_not_given_to_others(colours, fake_encoder):
    joint, labels, classes = colours
    E = vx.encode_prompts(WORDS, fake_encoder, templates=["{}"])
    red = classes.index("red")
    nm = name_clusters(joint, labels, WORDS, E, fixed={red: "Green"})
    assert nm.names[red] == "Green"
    assert "green" not in nm.names.values()
    assert np.isnan(nm.scores[red])


def test_siglip_like_scaled_similarities_give_the_same_names(colours, fake_encoder):
    """Names depend only on the ranking, not on the cosine scale.

    A shared direction in images and texts squeezes every cosine into a narrow band (cos' = a·cos + b,
    as in SigLIP's low raw cosines); images at any length.
    """
    joint, labels, _ = colours
    E = vx.encode_prompts(WORDS, fake_encoder, templates=["{}"])

    def squeeze(x, scale):
        x = l2_normalize(x)
        return np.concatenate([0.25 * x, np.full((len(x), 1), 1.0)], axis=1) * scale

    for score in SCORES:
        plain = name_clusters(joint, labels, WORDS, E, score=score)
        squeezed = name_clusters(
            squeeze(joint, 7.0), labels, WORDS, l2_normalize(squeeze(E, 1.0)), score=score
        )
        assert squeezed.names == plain.names, score
        assert squeezed.keywords == plain.keywords, score
        sims = l2_normalize(squeeze(joint, 1.0)) @ l2_normalize(squeeze(E, 1.0)).T
        assert sims.min() > 0.8  # the band the squeeze made


def test_margin_is_positive_only_for_the_best_cluster_and_ignores_word_offsets():
    rng = np.random.default_rng(1)
    C, E = l2_normalize(rng.normal(size=(4, 6))), l2_normalize(rng.normal(size=(30, 6)))
    S = contrastive_scores(C, E, contrast=1.0)
    best = (C @ E.T).argmax(axis=0)
    assert ((S > 0) == (np.arange(4)[:, None] == best[None, :])).all()
    # scores are differences of cosines: an affine change of all similarities scales them
    assert np.allclose(contrastive_scores(C, E, "mean-margin", contrast=1.0).sum(axis=0), 0, atol=1e-5)
    assert np.allclose(contrastive_scores(C, E, contrast=0.0), C @ E.T, atol=1e-6)
    # the blend keeps the best cluster the only owner: its score is the highest in the column
    assert (contrastive_scores(C, E).argmax(axis=0) == best).all()
    with pytest.raises(ConfigError):
        contrastive_scores(C, E, "softmax")
    with pytest.raises(ConfigError):
        contrastive_scores(C, E, contrast=2.0)


def test_prototype_drift(colours, fake_encoder):
    joint, labels, classes = colours
    P = vx.encode_prompts([classes[0], classes[1], classes[2]], fake_encoder, templates=["{}"])
    E = vx.encode_prompts(WORDS, fake_encoder, templates=["{}"])
    assert prototype_drift(joint, labels, P, words=WORDS, word_emb=E) == []
    swapped = np.array([1, 0, 2])[labels]  # clusters 0 and 1 hold each other's images
    assert prototype_drift(joint, swapped, P) == [0, 1]
    assert prototype_drift(joint, swapped, P, words=WORDS, word_emb=E) == [0, 1]
    # a prompt that fits another cluster better than its own: "yellow" for the blue images
    Y = vx.encode_prompts(["yellow", "green", "red"], fake_encoder, templates=["{}"])
    assert prototype_drift(joint, labels, Y) == [0]
    # the prompt is not among the cluster's top words: "blue" beats a tinted "bluish white" for cluster 0;
    # top=2 allows one better word
    T = l2_normalize(np.concatenate([P[:1] + 0.5, P[1:]]))
    assert prototype_drift(joint, labels, T) == []
    blue = P[:1]
    assert prototype_drift(joint, labels, T, words=["blue"], word_emb=blue, top=1) == [0]
    assert prototype_drift(joint, labels, T, words=["blue"], word_emb=blue, top=2) == []


def test_bad_inputs_raise(colours):
    joint, labels, _ = colours
    with pytest.raises(ConfigError):
        name_clusters(joint, labels, ["a", "b"], np.zeros((3, 3)))
    with pytest.raises(ConfigError):
        name_clusters(joint, labels[:-1], ["a"], np.ones((1, 3)))
    with pytest.raises(ConfigError):
        name_clusters(joint, labels, ["a"], np.ones((1, 4)))


def test_more_clusters_than_words_still_names_every_cluster(colours):
    joint, labels, _ = colours
    nm = name_clusters(joint, labels, ["only"], np.ones((1, 3), dtype=np.float32) / np.sqrt(3))
    assert list(nm.names.values()).count("only") == 1
    assert len(nm.names) == 3


# --- through the pipeline ------------------------------------------------------------------------


def _embedded(image_folder, fake_encoder, cache_dir):
    return vx.embed(
        vx.scan_folder(image_folder.root),
        vx.EncodeConfig(cache_dir=cache_dir, num_workers=0),
        encoder=fake_encoder,
    )


def _cluster(emb, cache_dir, **kw):
    return vx.cluster_embedded(
        emb, vx.ClusterConfig(**kw), coords=np.zeros((emb.n, 2), np.float32), cache_dir=cache_dir
    )


def test_pipeline_names_every_cluster_with_a_word(image_folder, fake_encoder, cache_dir):
    emb = _embedded(image_folder, fake_encoder, cache_dir)
    cl = _cluster(emb, cache_dir, k=3, options={"naming_nouns": WORDS})
    y = np.asarray(emb.collection.labels)
    for c, name in cl.names.items():
        assert name == y[cl.labels == c][0]  # each cluster is named with its folder's colour
    assert cl.info["naming"]["source"] == "vocabulary"
    assert cl.keywords == cl.info["vocabulary_keywords"]
    df = vx.pipeline.to_dataframe(emb, cl)
    assert not df["cluster_label"].str.fullmatch(r"cluster \d+").any()
    # with the whole noun bank (the default) no cluster is "cluster N" either
    full = _cluster(emb, cache_dir, k=3)
    assert not any(n.startswith("cluster ") for n in full.names.values())
    assert len(set(full.names.values())) == 3


def test_pipeline_naming_sources(image_folder, fake_encoder, cache_dir):
    emb = _embedded(image_folder, fake_encoder, cache_dir)
    emb.captions = [f"a photo of a {c} thing" for c in emb.collection.labels]
    opts = {"naming_nouns": ["crimson", "leaf", "sky"]}  # FakeEncoder knows none of them as colours
    by_caption = _cluster(emb, cache_dir, k=3, naming="captions", options=opts)
    y = np.asarray(emb.collection.labels)
    assert all(n == f"{y[by_caption.labels == c][0]} thing" for c, n in by_caption.names.items())
    assert by_caption.info["caption_keywords"] == by_caption.keywords
    by_vocab = _cluster(emb, cache_dir, k=3, naming="vocabulary", options=opts)
    assert set(by_vocab.names.values()) == {"crimson", "leaf", "sky"}
    assert by_vocab.info["caption_keywords"] == by_caption.keywords  # still there to show
    auto = _cluster(emb, cache_dir, k=3, options=opts)
    assert auto.names == by_vocab.names
    with pytest.raises(ConfigError, match="naming source"):
        _cluster(emb, cache_dir, k=3, naming="magic")


def test_pipeline_prototypes_keep_their_prompt_and_report_drift(image_folder, fake_encoder, cache_dir):
    emb = _embedded(image_folder, fake_encoder, cache_dir)
    cl = _cluster(
        emb,
        cache_dir,
        method="prototypes",
        prototypes=("red", "green", "blue"),
        options={"naming_nouns": WORDS},
    )
    assert [cl.names[i] for i in range(3)] == ["red", "green", "blue"]
    assert cl.info["drifted"] == []
    wrong = _cluster(
        emb,
        cache_dir,
        method="prototypes",
        prototypes=("red", "green", "yellow"),
        refine=False,
        options={"naming_nouns": WORDS},
    )
    assert wrong.names[2] == "yellow"
    assert wrong.info["drifted"] == [2]  # the blue images went to "yellow", which fits the red ones better


def test_class_space_encoders_name_with_class_names_by_default(image_folder, make_encoder, cache_dir):
    class Captioning(make_encoder):  # like the bundled model: captions from class labels
        def label_captions(self, joint):
            return ["a photo of a thing"] * len(joint)

    enc = Captioning()
    emb = _embedded(image_folder, enc, cache_dir)
    cl = _cluster(emb, cache_dir, k=3)
    assert cl.info["naming"]["vocabulary"] == "imagenet"
    assert 990 <= cl.info["naming"]["n_words"] <= 1000
    plain = _cluster(_embedded(image_folder, make_encoder(), cache_dir), cache_dir, k=3)
    assert plain.info["naming"]["vocabulary"] == "wordnet+imagenet"


def test_encoder_without_text_tower_keeps_caption_names(image_folder, fake_encoder, cache_dir):
    emb = _embedded(image_folder, fake_encoder, cache_dir)
    emb.views = {"image": emb.views["image"]}
    cl = _cluster(emb, cache_dir, k=3)
    assert cl.info["naming"]["source"] == "captions"


# --- a real (tiny) open_clip model ------------------------------------------------------------------


def test_kmeans_clusters_of_a_trained_clip_are_named_by_their_colour(aligned_clip, tmp_path):
    from aligned_model import ARCH, write_shape_folder

    root = tmp_path / "held-out"
    write_shape_folder(root, 20, seed=777)
    cfg = vx.EncodeConfig(
        model=f"openclip:{ARCH}:{aligned_clip.checkpoint}",
        device="cpu",
        cache_dir=tmp_path / "cache",
        num_workers=0,
    )
    emb = vx.embed(vx.scan_folder(root), cfg)
    assert emb.fallback_note is None
    vocab = ["red", "green", "blue", "circle", "square", "triangle", "shape", *DISTRACTORS]
    cl = _cluster(emb, tmp_path / "cache", k=3, options={"naming_nouns": vocab})
    y = np.asarray(emb.collection.labels)
    majority = {c: max(set(y[cl.labels == c]), key=list(y[cl.labels == c]).count) for c in cl.names}
    print(f"k-means on a trained tiny CLIP: names {cl.names}, majority colours {majority}, {cl.metrics}")
    assert cl.metrics["acc"] >= 0.9
    assert cl.names == majority
