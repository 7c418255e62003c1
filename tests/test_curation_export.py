"""The labelled table's curation columns (duplicate_group, outlier_score, confident) and their provenance."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import vlexplore as vx
from vlexplore.curate import curation_columns
from vlexplore.export import build_provenance, write_table
from vlexplore.pipeline import cluster_embedded, embed, scan, to_dataframe


@pytest.fixture
def embedded(tmp_path, write_image, fake_encoder, cache_dir):
    root = tmp_path / "photos"
    for i, colour in enumerate(((220, 30, 30), (30, 200, 40), (30, 40, 220))):
        for j in range(3):
            write_image(root / f"c{i}" / f"img{j}.png", colour=colour, seed=10 * i + j)
    shutil.copy(root / "c0" / "img0.png", root / "c0" / "copy.png")  # an exact duplicate
    write_image(root / "c2" / "odd.png", colour=(250, 250, 0), size=(32, 24), seed=99)  # far from the rest
    (root / "c1" / "img0.txt").write_text("a green patch", encoding="utf-8")
    col = scan(root, cache_dir=cache_dir)
    return embed(col, vx.EncodeConfig(cache_dir=cache_dir), encoder=fake_encoder)


def test_table_has_duplicate_group_outlier_score_and_empty_confident(embedded, cache_dir, tmp_path):
    cl = cluster_embedded(embedded, vx.ClusterConfig(k=3), cache_dir=cache_dir)
    df = to_dataframe(embedded, cl)
    assert list(df.columns[-3:]) == ["duplicate_group", "outlier_score", "confident"]
    by_path = df.set_index("path")
    assert by_path.loc["c0/img0.png", "duplicate_group"] == by_path.loc["c0/copy.png", "duplicate_group"]
    dups = vx.duplicates(embedded)
    in_group = set(dups["path"])
    assert df["duplicate_group"].notna().tolist() == [p in in_group for p in df["path"]]
    assert np.allclose(df["outlier_score"], vx.outlier_scores(embedded, 10))
    assert df["outlier_score"].between(0, 2).all()
    assert df["confident"].isna().all()  # k-means on the image view gives no confidence mask
    back = pd.read_csv(write_table(df, tmp_path / "t.csv"), keep_default_na=False)
    assert back.loc[~df["duplicate_group"].notna().to_numpy(), "duplicate_group"].eq("").all()
    assert back["confident"].eq("").all()
    typed = pd.read_parquet(write_table(df, tmp_path / "t.parquet"))
    assert str(typed["duplicate_group"].dtype) == "Int64"
    assert str(typed["confident"].dtype) == "boolean"
    assert df.set_index("path").loc["c1/img0.png", "caption"] == "a green patch"
    bare = to_dataframe(embedded, cl, curation=False)
    assert "duplicate_group" not in bare.columns


def test_confident_column_comes_from_the_representations_mask(embedded, cache_dir):
    cl = cluster_embedded(embedded, vx.ClusterConfig(k=3), cache_dir=cache_dir)
    mask = np.arange(embedded.n) % 2 == 0
    cl = replace(cl, info={**cl.info, "confident": mask})
    df = to_dataframe(embedded, cl)
    assert df["confident"].tolist() == mask.tolist()
    cols = curation_columns(embedded, replace(cl, info={"confident": 0.5}))  # a share, not a mask
    assert pd.isna(cols["confident"]).all()


def test_curation_is_computed_once_per_embedding(embedded, cache_dir, monkeypatch):
    import vlexplore.curate as curate

    cl = cluster_embedded(embedded, vx.ClusterConfig(k=3), cache_dir=cache_dir)
    to_dataframe(embedded, cl)
    calls = []
    monkeypatch.setattr(curate, "duplicates", lambda *a, **k: calls.append(1))
    to_dataframe(embedded, cl)
    assert calls == []


def test_provenance_records_user_captions_and_curation(embedded, cache_dir):
    cl = cluster_embedded(embedded, vx.ClusterConfig(k=3), cache_dir=cache_dir)
    record = build_provenance(embedded, cl)
    assert record["captions"] == {"user": 1, "sources": {"sidecar .txt": 1}, "notes": []}
    assert "0.88" in record["curation"]["duplicate_group"]
    assert record["curation"]["confident"] is None


def test_curation_with_fewer_than_two_images(tmp_path, write_image, fake_encoder, cache_dir):
    write_image(tmp_path / "one" / "a.png")
    emb = embed(
        scan(tmp_path / "one", cache_dir=cache_dir),
        vx.EncodeConfig(cache_dir=cache_dir),
        encoder=fake_encoder,
    )
    cols = curation_columns(emb)
    assert pd.isna(cols["duplicate_group"]).all()
    assert cols["outlier_score"].tolist() == [0.0]
