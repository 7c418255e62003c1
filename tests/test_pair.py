"""The ``pair`` representation: image and caption embeddings combined, clustered as image–text pairs."""

from __future__ import annotations

import numpy as np
import pytest

import vlexplore as vx
from vlexplore.errors import ConfigError
from vlexplore.pair import caption_vectors, pair_matrix
from vlexplore.pipeline import cluster_embedded, embed, scan
from vlexplore.represent import REPRESENTATIONS, build_representation


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_concat_rows_are_unit_and_their_cosine_is_the_weighted_mean():
    rng = np.random.default_rng(0)
    image, text = _unit(rng.normal(size=(5, 7))), _unit(rng.normal(size=(5, 3)))
    for w in (0.0, 0.25, 0.5, 1.0):
        X = pair_matrix(image, text, combine="concat", weight=w)
        assert X.shape == (5, 10)
        assert np.allclose(np.linalg.norm(X, axis=1), 1)
        assert np.allclose(X @ X.T, (1 - w) * image @ image.T + w * text @ text.T, atol=1e-5)


def test_mean_stays_in_the_joint_space():
    a, b = _unit([[1, 0, 0]]), _unit([[0, 1, 0]])
    assert np.allclose(pair_matrix(a, b, combine="mean", weight=0.5), _unit([[1, 1, 0]]))
    with pytest.raises(ConfigError, match="one space"):
        pair_matrix(_unit([[1, 0]]), b, combine="mean")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"combine": "sum"}, "combine must be one of concat, mean"),
        ({"weight": 1.5}, r"caption_weight must be a number in \[0, 1\]"),
        ({"weight": True}, "caption_weight"),
    ],
)
def test_bad_options_are_one_line_errors(kw, message):
    with pytest.raises(ConfigError, match=message):
        pair_matrix(_unit([[1, 0, 0]]), _unit([[0, 1, 0]]), **kw)


@pytest.fixture
def shapes(tmp_path, write_image):
    """Two colours, each image captioned with a colour word that *disagrees* for half of them."""
    root = tmp_path / "pairs"
    for colour, rgb in (("red", (220, 30, 30)), ("blue", (30, 40, 220))):
        for j in range(4):
            write_image(root / colour / f"{j}.png", colour=rgb, seed=j)
    return root


def _embedded(root, encoder, cache_dir, captions):
    col = scan(root, cache_dir=cache_dir, captions=captions)
    return embed(col, vx.EncodeConfig(cache_dir=cache_dir), encoder=encoder)


def test_pair_is_registered_and_clusters_image_text_pairs(shapes, fake_encoder, cache_dir):
    assert "pair" in REPRESENTATIONS
    # captions name a second attribute: "green" for images 0-1, "yellow" for 2-3 of each colour
    captions = {f"{c}/{j}.png": ("green" if j < 2 else "yellow") for c in ("red", "blue") for j in range(4)}
    emb = _embedded(shapes, fake_encoder, cache_dir, captions)
    cfg = vx.ClusterConfig(
        k=4, representation="pair", options={"caption_weight": 0.5, "caption_space": "joint"}
    )
    rep = build_representation(emb, cfg)
    assert rep.X.shape[1] == emb.views["image"].shape[1] + emb.views["joint"].shape[1]
    assert rep.info["captioned"] == 8
    assert rep.joint.shape == emb.views["joint"].shape
    cl = cluster_embedded(emb, cfg, coords=np.zeros((emb.n, 2), np.float32), cache_dir=cache_dir)
    groups = {(c, j < 2) for c in ("red", "blue") for j in range(4)}
    keyed = {}
    for rel, label in zip(emb.collection.items["relpath"], cl.labels):
        colour, j = rel.split("/")[0], int(rel.split("/")[1][0])
        keyed.setdefault((colour, j < 2), set()).add(int(label))
    assert set(keyed) == groups
    assert all(len(v) == 1 for v in keyed.values())
    assert len({next(iter(v)) for v in keyed.values()}) == 4  # colour × caption: four pairs, four clusters


def test_images_without_a_caption_stand_for_themselves(shapes, fake_encoder, cache_dir):
    emb = _embedded(shapes, fake_encoder, cache_dir, {"red/0.png": "green"})
    text, has = caption_vectors(emb)
    assert has.sum() == 1
    assert np.allclose(text[~has], emb.views["joint"][~has])
    assert not np.allclose(text[has], emb.views["joint"][has])


def test_mean_combine_and_joint_image_view_through_options(shapes, fake_encoder, cache_dir):
    emb = _embedded(shapes, fake_encoder, cache_dir, {"red/0.png": "green"})
    rep = build_representation(emb, vx.ClusterConfig(representation="pair", options={"combine": "mean"}))
    assert rep.X.shape == emb.views["joint"].shape
    joint_only = {"image_view": "joint", "caption_space": "joint"}
    rep = build_representation(emb, vx.ClusterConfig(representation="pair", options=joint_only))
    assert rep.X.shape[1] == 2 * emb.views["joint"].shape[1]
    with pytest.raises(ConfigError, match="image_view"):
        build_representation(emb, vx.ClusterConfig(representation="pair", options={"image_view": "words"}))


def test_pair_without_captions_says_where_captions_come_from(shapes, fake_encoder, cache_dir):
    emb = _embedded(shapes, fake_encoder, cache_dir, None)
    with pytest.raises(ConfigError, match=r"photo\.txt beside photo\.jpg"):
        build_representation(emb, vx.ClusterConfig(representation="pair"))


def test_cli_accepts_representation_pair(shapes, tmp_path, capsys):
    from vlexplore.cli_args import build_parser

    args = build_parser().parse_args(["cluster", str(shapes), "--representation", "pair"])
    assert args.representation == "pair"


def test_sentence_caption_space_uses_the_sentence_embedder(shapes, fake_encoder, cache_dir, monkeypatch):
    import vlexplore.sentences as sentences

    class Words:
        model_id = "fake-words"

        def encode(self, texts):
            return np.array([[1.0, 0.0] if "green" in t else [0.0, 1.0] for t in texts], np.float32)

    monkeypatch.setattr(sentences, "sentence_embedder", lambda emb, cfg: Words())
    emb = _embedded(shapes, fake_encoder, cache_dir, {"red/0.png": "green", "red/1.png": "grey"})
    cfg = vx.ClusterConfig(representation="pair", options={"caption_space": "sentence"})
    rep = build_representation(emb, cfg)
    assert rep.X.shape[1] == emb.views["image"].shape[1] + 2
    assert np.allclose(np.linalg.norm(rep.X, axis=1), 1)
    captioned = emb.collection.items["relpath"].isin(["red/0.png", "red/1.png"]).to_numpy()
    assert np.allclose(rep.X[~captioned, -2:], 0)  # uncaptioned: the image part alone
    assert not np.allclose(rep.X[captioned, -2:], 0)
    bad = vx.ClusterConfig(representation="pair", options={"caption_space": "words"})
    with pytest.raises(ConfigError, match="caption_space"):
        build_representation(emb, bad)
