"""The CLI and the pipeline end to end, with the real bundled model on generated folders."""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vlexplore as vx
from vlexplore import cli

pj = importlib.import_module("vlexplore.project")

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
    assert "acc" in captured.out
    assert "nmi" in captured.out
    assert "ari" in captured.out
    assert (tmp_path / "labelled.provenance.json").is_file()


def test_three_colour_classes_are_recovered(image_folder, env_cache, tmp_path):
    out = tmp_path / "l.csv"
    assert cli.main(["cluster", str(image_folder.root), "--k", "3", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    df["label"] = df["path"].str.split("/").str[0]
    assert vx.evaluate_labels(df["label"].to_numpy(), df["cluster_id"].to_numpy())["acc"] >= 0.9


def test_prototypes_add_similarity_column(image_folder, env_cache, tmp_path):
    out = tmp_path / "p.csv"
    code = cli.main(
        [
            "cluster",
            str(image_folder.root),
            "--method",
            "prototypes",
            "--prototypes",
            "red, green, blue",
            "--out",
            str(out),
        ]
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
    assert "silhouette" in out
    assert "acc" not in out


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
    assert err.startswith("error:")
    assert "nope" in err
    assert "Traceback" not in err


def test_unavailable_model_falls_back_to_bundled(image_folder, env_cache, capsys):
    assert cli.main(["embed", str(image_folder.root), "--model", "ViT-B-32/openai"]) == 0
    captured = capsys.readouterr()
    assert "bundled" in captured.err
    assert "note:" in captured.err
    assert "bundled:" in captured.out


@pytest.mark.parametrize(
    ("args", "message"),
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
        [sys.executable, "-m", "vlexplore", "cluster", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for opt in ("--method", "--k", "--prototypes", "--model", "--out", "--threshold", "--discover-rest"):
        assert opt in r.stdout


def test_python_api_matches_cli_steps(image_folder, env_cache):
    emb, cl = vx.explore(image_folder.root, cluster=vx.ClusterConfig(k=3))
    assert emb.views["image"].shape == (len(image_folder.good), 1280)
    assert cl.coords.shape == (len(image_folder.good), 2)
    assert np.isfinite(cl.coords).all()
    df = vx.to_dataframe(emb, cl)
    assert len(df) == len(image_folder.good)
    # re-clustering reuses the embeddings and the map: no model call
    cl2 = vx.cluster_embedded(emb, vx.ClusterConfig(method="agglomerative", k=3), coords=cl.coords)
    assert cl2.labels.shape == cl.labels.shape


def test_facade_names_resolve_to_functions():
    import vlexplore.cluster
    import vlexplore.evaluate  # noqa: F401

    for name in vx.__all__:
        assert getattr(vx, name) is not None
    assert callable(vx.evaluate_labels)
    assert callable(vx.cluster_vectors)
    assert callable(vx.project_embedded)


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


# --- a read-only or full cache: computed in memory, told once, the CSV still written -------------


def _make_read_only(monkeypatch, cache: Path, err: int = errno.EROFS) -> list[str]:
    """Make every folder made and temp file opened under ``cache`` fail with ``err``.

    Tests run as root, where chmod does not stop writes. Returns the refused paths.
    """
    refused: list[str] = []
    real_mkdir, real_mkstemp, real_temporary = Path.mkdir, tempfile.mkstemp, tempfile.TemporaryFile
    root = cache.resolve()

    def check(where) -> None:
        if where is not None and Path(where).resolve().is_relative_to(root):
            refused.append(str(where))
            raise OSError(err, os.strerror(err), str(where))

    def mkdir(self, *args, **kwargs):
        check(self)
        return real_mkdir(self, *args, **kwargs)

    def mkstemp(*args, dir=None, **kwargs):
        check(dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    def temporary(*args, dir=None, **kwargs):
        check(dir)
        return real_temporary(*args, dir=dir, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tempfile, "TemporaryFile", temporary)
    return refused


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC])
def test_cluster_with_a_read_only_or_full_cache_still_writes_the_csv(
    image_folder, env_cache, tmp_path, capsys, monkeypatch, err
):
    assert cli.main(["embed", str(image_folder.root)]) == 0  # the embeddings are cached (readable)
    capsys.readouterr()
    # the map goes through UMAP (numba cache folder) even for these few images; no real numba here
    monkeypatch.setattr(pj, "UMAP_MIN_POINTS", 5)
    monkeypatch.setattr(pj, "_umap", lambda X, **kw: np.asarray(X[:, :2], dtype=np.float32))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    refused = _make_read_only(monkeypatch, env_cache, err)
    out = tmp_path / "labelled.csv"

    code = cli.main(["cluster", str(image_folder.root), "--k", "3", "--out", str(out)])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    assert any("numba" in p for p in refused)
    assert any("projections" in p for p in refused)
    notes = [line for line in captured.err.splitlines() if line.startswith("note:") and "cache" in line]
    assert len(notes) == 1, captured.err  # told once, on one line
    assert os.strerror(err) in notes[0]
    assert os.environ["NUMBA_CACHE_DIR"]
    assert not Path(os.environ["NUMBA_CACHE_DIR"]).is_relative_to(env_cache)
    df = pd.read_csv(out)
    assert sorted(df["path"]) == sorted(image_folder.good)
    assert np.isfinite(df[["umap_x", "umap_y"]]).all().all()
    assert not (env_cache / "projections").exists()


# --- terminal injection: control characters in names are printed escaped -----------------------

HOSTILE_NAMES = {
    "title\x1b]0;pwned\x07.png": "title\\x1b]0;pwned\\x07.png",
    "wipe\x1b[2K.png": "wipe\\x1b[2K.png",
    "cr\rall files OK.png": "cr\\rall files OK.png",
    "nl\n0 file(s) skipped.png": "nl\\n0 file(s) skipped.png",
    "del\x7f\x9b.png": "del\\x7f\\x9b.png",
}


def _assert_no_raw_controls(text: str) -> None:
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), repr(text)


@pytest.mark.parametrize("command", ["scan", "embed", "cluster"])
def test_control_characters_in_file_names_are_escaped(image_folder, env_cache, capsys, command):
    root = image_folder.root
    hostile_dir = root / "red\x1b[31m"
    hostile_dir.mkdir()
    for name in HOSTILE_NAMES:
        (hostile_dir / name).write_bytes(b"")  # empty: skipped, so reported by name
    args = [command, str(root)] + (["--k", "3"] if command == "cluster" else [])

    code = cli.main(args)

    captured = capsys.readouterr()
    assert code == 0, captured.err
    for stream in (captured.out, captured.err):
        _assert_no_raw_controls(stream)
    lines = captured.err.splitlines()
    for escaped in HOSTILE_NAMES.values():
        # each skipped file is one line naming it (escaped), with its reason
        hits = [line for line in lines if f"red\\x1b[31m/{escaped}" in line]
        assert len(hits) == 1, (escaped, captured.err)
        assert "empty" in hits[0], (escaped, captured.err)
    assert not any(line.startswith("all files OK") or line.startswith("0 file(s)") for line in lines)


def test_control_characters_in_the_folder_and_error_messages_are_escaped(tmp_path, env_cache, capsys):
    assert cli.main(["scan", str(tmp_path / "gone\x1b]0;x\x07\rok")]) == 2
    err = capsys.readouterr().err
    _assert_no_raw_controls(err)
    assert "gone\\x1b]0;x\\x07\\rok" in err
    assert len(err.splitlines()) == 1
    # an error message that names a user path as it is (not as a repr)
    out = tmp_path / "keep\x1b[2K\rerror: none.csv"
    out.write_text("precious")
    assert cli.main(["cluster", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    _assert_no_raw_controls(err)
    assert "keep\\x1b[2K\\rerror: none.csv exists" in err
    assert len(err.splitlines()) == 1


def test_printable_keeps_unicode_and_escapes_controls():
    from vlexplore.textsafe import printable

    assert printable("café 猫 🐈 · ok") == "café 猫 🐈 · ok"
    assert printable("a\x1b[2Kb\rc\nd\te\x00\x7f\x85") == "a\\x1b[2Kb\\rc\\nd\\te\\x00\\x7f\\x85"
    assert printable("rtl\u202eexe.png\u2028") == "rtl\\u202eexe.png\\u2028"
    assert printable(b"bad\xff".decode("utf-8", "surrogateescape")) == "bad\\xff"
    assert printable(Path("x\x1by")) == "x\\x1by"


# --- semicolon / tab separated spreadsheets --------------------------------------------------------


def test_cluster_csv_has_no_formula_cell_when_split_on_semicolons(tmp_path, env_cache, write_image, capsys):
    folder = tmp_path / "semi"
    for i, name in enumerate(["x;=1+2.png", "semi;@SUM(A1).png", "plain.png", "a.png", "b.png", "c.png"]):
        write_image(folder / name, colour=(40 * i, 100, 200 - 30 * i))
    out = tmp_path / "semi.csv"
    code = cli.main(
        ["cluster", str(folder), "--method", "prototypes", "--prototypes", "red, x;=1+2", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    raw = out.read_text(encoding="utf-8")
    for sep in (";", "\t"):
        cells = [c.strip(' "') for line in raw.splitlines() for c in line.split(sep)]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], (sep, raw)
    df = pd.read_csv(out, keep_default_na=False)
    assert {"x;'=1+2.png", "semi;'@SUM(A1).png"} <= set(df["path"])
    record = json.loads((tmp_path / "semi.provenance.json").read_text(encoding="utf-8"))
    assert record["cluster"]["prototypes"] == ["red", "x;=1+2"]  # the provenance keeps the raw text
