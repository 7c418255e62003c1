"""The CLI and the pipeline end to end, with the real bundled model on generated folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vlexplore as vx
from vlexplore import cli

ROOT = Path(__file__).resolve().parent.parent
CSV_COLUMNS = ["path", "cluster_id", "cluster_label", "umap_x", "umap_y", "caption"]


@pytest.fixture
def env_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_cluster_writes_csv_and_reports_broken_files(image_folder, env_cache, tmp_path, capsys):
    out = tmp_path / "labelled.csv"
    code = cli.main(["cluster", str(image_folder.root), "--k", "3", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    df = pd.read_csv(out)
    assert list(df.columns[: len(CSV_COLUMNS)]) == CSV_COLUMNS
    assert sorted(df["path"]) == sorted(image_folder.good)
    assert df["cluster_id"].nunique() == 3
    assert df["caption"].str.startswith("a photo of a").all()
    # every broken file is named with a reason, at scan or at decode
    for relpath in [*image_folder.broken_at_scan, *image_folder.broken_at_decode]:
        assert relpath in captured.err
    assert "acc" in captured.out and "nmi" in captured.out and "ari" in captured.out
    assert (tmp_path / "labelled.csv.json").is_file()


def test_three_colour_classes_are_recovered(image_folder, env_cache, tmp_path):
    out = tmp_path / "l.csv"
    assert cli.main(["cluster", str(image_folder.root), "--k", "3", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    df["label"] = df["path"].str.split("/").str[0]
    assert vx.evaluate_labels(df["label"].to_numpy(), df["cluster_id"].to_numpy())["acc"] >= 0.9


def test_prototypes_add_similarity_column(image_folder, env_cache, tmp_path):
    out = tmp_path / "p.csv"
    code = cli.main(
        ["cluster", str(image_folder.root), "--method", "prototypes", "--prototypes", "red, green, blue",
         "--out", str(out)]
    )
    assert code == 0
    df = pd.read_csv(out)
    assert "similarity" in df.columns
    assert set(df["cluster_label"]) <= {"red", "green", "blue"}
    assert df["similarity"].between(-1, 1).all()


def test_label_free_score_without_subfolders(tmp_path, env_cache, write_image, capsys):
    for i in range(6):
        write_image(tmp_path / "flat" / f"img{i}.png", colour=(40 * i, 100, 200 - 30 * i))
    assert cli.main(["cluster", str(tmp_path / "flat"), "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "silhouette" in out and "acc" not in out


def test_second_run_calls_no_model(image_folder, env_cache, capsys):
    assert cli.main(["embed", str(image_folder.root)]) == 0
    first = capsys.readouterr().out
    assert cli.main(["embed", str(image_folder.root)]) == 0
    second = capsys.readouterr().out
    assert f"{len(image_folder.good)} computed" in first
    assert "0 computed" in second


def test_existing_output_is_not_overwritten(image_folder, env_cache, tmp_path, capsys):
    out = tmp_path / "keep.csv"
    out.write_text("precious")
    assert cli.main(["cluster", str(image_folder.root), "--out", str(out)]) == 2
    assert out.read_text() == "precious"
    assert "--overwrite" in capsys.readouterr().err


def test_missing_folder_is_a_clear_error(tmp_path, env_cache, capsys):
    assert cli.main(["cluster", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope" in err and "Traceback" not in err


def test_unavailable_model_falls_back_to_bundled(image_folder, env_cache, capsys):
    assert cli.main(["embed", str(image_folder.root), "--model", "ViT-B-32/openai"]) == 0
    captured = capsys.readouterr()
    assert "bundled" in captured.err and "note:" in captured.err
    assert "bundled:" in captured.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "prototypes"], "at least one text prototype"),
        (["--k", "0"], "positive"),
        (["--threshold", "2"], "cosine"),
        (["--min-cluster-size", "1"], "min_cluster_size"),
    ],
)
def test_bad_options_are_clear_errors(image_folder, env_cache, capsys, args, message):
    assert cli.main(["cluster", str(image_folder.root), *args]) == 2
    assert message in capsys.readouterr().err


def test_help_explains_every_option():
    r = subprocess.run(
        [sys.executable, "-m", "vlexplore", "cluster", "--help"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    )
    for opt in ("--method", "--k", "--prototypes", "--model", "--out", "--threshold", "--discover-rest"):
        assert opt in r.stdout


def test_python_api_matches_cli_steps(image_folder, env_cache):
    emb, cl = vx.explore(image_folder.root, cluster=vx.ClusterConfig(k=3))
    assert emb.views["image"].shape == (len(image_folder.good), 1280)
    assert cl.coords.shape == (len(image_folder.good), 2) and np.isfinite(cl.coords).all()
    df = vx.to_dataframe(emb, cl)
    assert len(df) == len(image_folder.good)
    # re-clustering reuses the embeddings and the map: no model call
    cl2 = vx.cluster_embedded(emb, vx.ClusterConfig(method="agglomerative", k=3), coords=cl.coords)
    assert cl2.labels.shape == cl.labels.shape


def test_facade_names_resolve_to_functions():
    import vlexplore.cluster  # noqa: F401  - importing submodules must not shadow facade names
    import vlexplore.evaluate  # noqa: F401

    for name in vx.__all__:
        assert getattr(vx, name) is not None
    assert callable(vx.evaluate_labels) and callable(vx.cluster_vectors) and callable(vx.project_embedded)


def test_embed_export_writes_one_parquet_file_with_vectors(image_folder, env_cache, tmp_path, capsys):
    out = tmp_path / "emb.parquet"
    assert cli.main(["embed", str(image_folder.root), "--export", str(out)]) == 0
    assert f"wrote {len(image_folder.good)} rows" in capsys.readouterr().out
    df = pd.read_parquet(out)
    assert sorted(df["path"]) == sorted(image_folder.good)
    assert list(df.columns[:4]) == ["path", "fingerprint", "folder_label", "caption"]
    image = np.stack(df["emb_image"].to_numpy())
    assert image.shape == (len(image_folder.good), 1280)
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1.0, atol=1e-5)
    assert (df["folder_label"] == df["path"].str.split("/").str[0]).all()
    # the vectors are the cached ones, in the file's row order
    emb = vx.embed(vx.scan_folder(image_folder.root), vx.EncodeConfig(cache_dir=env_cache))
    order = {r: i for i, r in enumerate(emb.collection.items["relpath"])}
    np.testing.assert_array_equal(image, emb.views["image"][[order[r] for r in df["path"]]])
    # an existing file is kept unless --overwrite
    assert cli.main(["embed", str(image_folder.root), "--export", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["embed", str(image_folder.root), "--export", str(out), "--overwrite"]) == 0
    assert cli.main(["embed", str(image_folder.root), "--export", str(tmp_path / "emb.csv")]) == 2
    assert ".parquet" in capsys.readouterr().err


def test_cache_store_reads_as_a_plain_parquet_dataset(image_folder, env_cache):
    emb = vx.embed(vx.scan_folder(image_folder.root), vx.EncodeConfig(cache_dir=env_cache))
    from vlexplore.cache import store_for

    df = pd.read_parquet(store_for(env_cache, emb.model_id).directory)
    assert set(df.columns) == {"key", "image", "joint"}
    assert set(df["key"]) == set(emb.collection.fingerprints)
