"""Search (text, image, more like this), duplicate groups and outlier scores; their CLI commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import vlexplore as vx
from vlexplore import cli
from vlexplore import search as search_module
from vlexplore.config import EncodeConfig
from vlexplore.curate import duplicates, outlier_scores
from vlexplore.errors import ConfigError
from vlexplore.pipeline import embed, scan
from vlexplore.search import search_images

DISTINCT = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (210, 200, 30),
    "purple": (160, 40, 200),
    "grey": (128, 128, 128),
}


def _embed(root: Path, cache_dir: Path, encoder):
    return embed(scan(root, cache_dir=cache_dir), EncodeConfig(cache_dir=cache_dir), encoder=encoder)


@pytest.fixture
def emb(image_folder, cache_dir, fake_encoder):
    return _embed(image_folder.root, cache_dir, fake_encoder)


def _index_of(emb, relpath: str) -> int:
    return emb.collection.items["relpath"].tolist().index(relpath)


def test_a_colour_word_ranks_its_images_first(emb):
    df = search_images(emb, text="red", top=4)
    assert list(df.columns) == ["path", "rank", "score"]
    assert df["rank"].tolist() == [1, 2, 3, 4]
    assert df["path"].str.startswith("red/").all()
    assert df["score"].is_monotonic_decreasing
    top = search_images(emb, text="a photo of something blue", top=emb.n)
    assert len(top) == emb.n
    assert top["path"].head(4).str.startswith("blue/").all()


def test_more_like_this_and_an_image_file_rank_their_colour_first(emb, image_folder):
    i = _index_of(emb, "blue/blue_0.jpg")
    df = search_images(emb, image=i, top=3)
    assert "blue/blue_0.jpg" not in df["path"].tolist()  # the query item itself is left out
    assert df["path"].str.startswith("blue/").all()
    by_file = search_images(emb, image=str(image_folder.root / "green/green_1.png"), top=4)
    assert by_file["path"].str.startswith("green/").all()
    assert by_file["path"].iloc[0] == "green/green_1.png"


def test_faiss_index_gives_the_exact_results(emb, monkeypatch):
    pytest.importorskip("faiss")
    exact = [search_images(emb, text="green", top=5), search_images(emb, image=2, top=6)]
    monkeypatch.setattr(search_module, "EXACT_MAX", 3)
    index = search_module.search_index(emb)
    assert index.uses_faiss
    approx = [search_images(emb, text="green", top=5), search_images(emb, image=2, top=6)]
    assert index._faiss_index is not None
    assert search_module.search_index(emb) is index
    for a, b in zip(exact, approx):
        assert a["path"].tolist() == b["path"].tolist()
        np.testing.assert_allclose(a["score"], b["score"], atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "  "}, "empty"),
        ({}, "exactly one"),
        ({"text": "red", "image": 0}, "exactly one"),
        ({"text": "red", "top": 0}, "top"),
        ({"image": 999}, "outside"),
        ({"image": 1.5}, "image must be"),
    ],
)
def test_bad_queries_are_config_errors(emb, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        search_images(emb, **kwargs)


def test_unreadable_query_image_is_a_config_error(emb, image_folder, tmp_path):
    with pytest.raises(ConfigError, match="cannot read query image"):
        search_images(emb, image=str(image_folder.root / "green/page.jpg"))
    with pytest.raises(ConfigError, match="cannot read query image"):
        search_images(emb, image=str(tmp_path / "missing.png"))


def test_duplicates_finds_a_copy_as_exact_and_a_resized_copy_as_near(
    tmp_path, cache_dir, fake_encoder, write_image
):
    root = tmp_path / "dups"
    for i, (name, colour) in enumerate(DISTINCT.items()):
        write_image(root / f"{name}.png", colour=colour, size=(48, 40), seed=i)
    shutil.copy(root / "red.png", root / "red_copy.png")
    Image.open(root / "blue.png").resize((36, 30)).save(root / "blue_small.jpg", quality=85)
    emb = _embed(root, cache_dir, fake_encoder)
    df = duplicates(emb, threshold=0.995)
    assert list(df.columns) == ["path", "group", "kind", "similarity", "keep"]
    groups = {p: g for p, g in zip(df["path"], df["group"])}
    assert set(groups) == {"red.png", "red_copy.png", "blue.png", "blue_small.jpg"}
    assert groups["red.png"] == groups["red_copy.png"] != groups["blue.png"] == groups["blue_small.jpg"]
    assert sorted(set(df["group"])) == [0, 1]
    kind = dict(zip(df["path"], df["kind"]))
    assert kind["red.png"] == kind["red_copy.png"] == "exact"
    assert kind["blue.png"] == kind["blue_small.jpg"] == "near"
    assert df.loc[df["keep"], "path"].tolist() == ["blue.png", "red.png"]  # first of each group by relpath
    assert (df["similarity"] >= 0.995).all()
    assert duplicates(emb, threshold=1.0)["kind"].eq("exact").all()
    with pytest.raises(ConfigError, match="threshold"):
        duplicates(emb, threshold=0)


def test_a_lone_odd_image_has_the_highest_outlier_score(image_folder, cache_dir, fake_encoder, write_image):
    write_image(image_folder.root / "odd.png", colour=(250, 250, 250), size=(32, 24))
    emb = _embed(image_folder.root, cache_dir, fake_encoder)
    scores = outlier_scores(emb, k=3)
    assert scores.shape == (emb.n,)
    assert (scores >= 0).all()
    assert int(np.argmax(scores)) == _index_of(emb, "odd.png")
    with pytest.raises(ConfigError, match="k must be"):
        outlier_scores(emb, k=0)


def test_facade_exports_search_and_curation():
    assert vx.search_images is search_images
    assert vx.duplicates is duplicates
    assert vx.outlier_scores is outlier_scores


# ----------------------------------------------------------------------------- CLI (bundled model)


@pytest.fixture
def small_folder(tmp_path, write_image, monkeypatch):
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "small"
    for name in ("red", "green", "blue"):
        for i in range(2):
            write_image(root / name / f"{name}_{i}.png", colour=DISTINCT[name], size=(32, 24), seed=i)
    shutil.copy(root / "red" / "red_0.png", root / "red" / "red_copy.png")
    return root


def test_cli_search_writes_path_rank_score(small_folder, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert cli.main(["search", str(small_folder), "red", "--top", "3", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["path", "rank", "score"]
    assert df["rank"].tolist() == [1, 2, 3]
    assert "wrote 3 rows" in capsys.readouterr().out
    out2 = tmp_path / "like.csv"
    own = small_folder / "blue" / "blue_0.png"
    assert cli.main(["search", str(small_folder), "--image", str(own), "--out", str(out2)]) == 0
    like = pd.read_csv(out2)
    assert len(like) == 6
    assert "blue/blue_0.png" not in like["path"].tolist()


def test_cli_duplicates_writes_the_groups(small_folder, tmp_path, capsys):
    out = tmp_path / "dups.csv"
    assert cli.main(["duplicates", str(small_folder), "--threshold", "0.999", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["path", "group", "kind", "similarity", "keep"]
    exact = df[df["kind"] == "exact"]
    assert set(exact["path"]) == {"red/red_0.png", "red/red_copy.png"}
    assert "duplicate group" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "{root}"], "exactly one"),
        (["search", "{root}", "red", "--image", "{root}/red/red_0.png"], "exactly one"),
        (["search", "{root}", "red", "--top", "0"], "--top"),
        (["search", "{root}", "--image", "{root}/nothing.png"], "cannot read query image"),
        (["duplicates", "{root}", "--threshold", "1.5"], "threshold"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(small_folder, capsys, args, message):
    code = cli.main([a.format(root=small_folder) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err
    assert len(err.splitlines()) == 1
