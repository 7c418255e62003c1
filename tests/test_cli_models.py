"""The CLI with the models a real user brings: a trained open_clip model directory and a captioner directory.

The aligned test model (``tests/aligned_model.py``) knows colours and shapes; a tiny random BLIP stands in
for a captioner (its words are noise, but they are words, cached and exported like BLIP's).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from aligned_model import COLOURS, SHAPES, shape_image

import vlexplore as vx
from vlexplore import cli


@pytest.fixture
def shapes_folder(tmp_path):
    rng = np.random.default_rng(7)
    root = tmp_path / "shapes"
    for colour in COLOURS:
        (root / colour).mkdir(parents=True)
        for i in range(8):
            shape_image(colour, SHAPES[i % 3], rng).save(root / colour / f"{i}.png")
    return root


@pytest.fixture
def env_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "cache"


def _run(args, capsys) -> tuple[int, str, str]:
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cluster_with_a_model_directory_recovers_the_colours(
    aligned_clip, shapes_folder, env_cache, tmp_path, capsys
):
    out = tmp_path / "l.csv"
    code, _stdout, err = _run(
        [
            "cluster",
            str(shapes_folder),
            "--model",
            str(aligned_clip.model_dir),
            "--k",
            "3",
            "--cache-dir",
            str(env_cache),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    assert "bundled" not in err  # no silent fallback
    df = pd.read_csv(out)
    truth = df["path"].str.split("/").str[0].to_numpy()
    assert vx.evaluate_labels(truth, df["cluster_id"].to_numpy())["acc"] >= 0.9


def test_names_are_words_with_an_open_clip_model(aligned_clip, shapes_folder, env_cache, tmp_path, capsys):
    out = tmp_path / "l.csv"
    code, _, err = _run(
        [
            "cluster",
            str(shapes_folder),
            "--model",
            str(aligned_clip.model_dir),
            "--k",
            "3",
            "--cache-dir",
            str(env_cache),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    labels = pd.read_csv(out)["cluster_label"].astype(str)
    assert not labels.str.fullmatch(r"cluster \d+").any(), sorted(set(labels))


def test_a_captioner_fills_the_caption_column_with_any_representation(
    aligned_clip, tiny_blip_dir, shapes_folder, env_cache, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "l.csv"
    args = [
        "cluster",
        str(shapes_folder),
        "--model",
        str(aligned_clip.model_dir),
        "--k",
        "3",
        "--captioner",
        str(tiny_blip_dir),
        "--cache-dir",
        str(env_cache),
        "--out",
        str(out),
    ]
    code, _, err = _run(args, capsys)
    assert code == 0, err
    captions = pd.read_csv(out, keep_default_na=False)["caption"]
    assert (captions.str.len() > 0).all()
    assert not captions.str.startswith("a photo of a").any()
    from vlexplore.models.hf_caption import HFCaptioner

    calls = []
    real = HFCaptioner.caption_batch
    monkeypatch.setattr(
        HFCaptioner, "caption_batch", lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
    )
    code, _, err = _run([*args, "--overwrite"], capsys)  # cached: the second run captions nothing again
    assert code == 0, err
    assert calls == []
    assert pd.read_csv(out, keep_default_na=False)["caption"].tolist() == captions.tolist()


def test_a_misspelt_captioner_stops_before_any_work(shapes_folder, env_cache, tmp_path, capsys):
    code, _, err = _run(
        ["cluster", str(shapes_folder), "--captioner", "blip-bsae", "--cache-dir", str(env_cache)], capsys
    )
    assert code == 2
    assert re.search(r"blip-base", err)
    assert err.count("\n") == 1
