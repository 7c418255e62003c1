"""Tests of vlexplore.export: the table, formula-safe atomic writers, file names, provenance."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vlexplore.config import ClusterConfig
from vlexplore.errors import ConfigError
from vlexplore.export import (
    provenance,
    provenance_path,
    safe_cell,
    sanitize_filename,
    to_dataframe,
    write_provenance,
    write_table,
)

# --- shared fixtures -----------------------------------------------------------------------------


def fake_collection(relpaths=("cats/a.jpg", "cats/b.png", "dogs/=c.jpg")) -> SimpleNamespace:
    """A stand-in for ``images.Collection``: only ``items`` with the columns export reads."""
    items = pd.DataFrame(
        {
            "relpath": list(relpaths),
            "path": [f"/data/{r}" for r in relpaths],
            "folder_label": [r.split("/")[0] if "/" in r else "" for r in relpaths],
            "fingerprint": [f"fp{i:02d}" for i in range(len(relpaths))],
        }
    )
    return SimpleNamespace(items=items)


@pytest.fixture
def table() -> pd.DataFrame:
    return to_dataframe(
        fake_collection(),
        labels=np.array([0, 1, -1]),
        names={0: "cat · sofa", 1: "-dog"},
        coords=np.array([[0.5, 1.5], [2.0, -1.0], [0.0, 0.0]]),
        captions=["a cat", '=HYPERLINK("http://x")', "café crème"],
    )


# --- to_dataframe --------------------------------------------------------------------------------


def test_to_dataframe_columns_and_values(table):
    assert list(table.columns) == [
        "path",
        "cluster_id",
        "cluster_label",
        "umap_x",
        "umap_y",
        "caption",
        "folder_label",
        "fingerprint",
    ]
    assert table["path"].tolist() == ["cats/a.jpg", "cats/b.png", "dogs/=c.jpg"]
    assert table["cluster_id"].tolist() == [0, 1, -1]
    assert table["cluster_id"].dtype == np.int64
    assert table["cluster_label"].tolist() == ["cat · sofa", "-dog", "other"]
    assert table["umap_x"].dtype == np.float32
    assert table["umap_y"].tolist() == [1.5, -1.0, 0.0]
    assert table["folder_label"].tolist() == ["cats", "cats", "dogs"]
    assert table["fingerprint"].tolist() == ["fp00", "fp01", "fp02"]
    # to_dataframe keeps the data as it is; neutralising formulas happens on write.
    assert table["caption"][1].startswith("=")


def test_to_dataframe_with_similarity_puts_it_before_folder_label():
    df = to_dataframe(
        fake_collection(), [0, 0, 1], {0: "a", 1: "b"}, np.zeros((3, 2)), similarity=[0.9, 0.5, 0.1]
    )
    assert list(df.columns)[5:8] == ["caption", "similarity", "folder_label"]
    assert df["similarity"].dtype == np.float32
    assert df["caption"].tolist() == ["", "", ""]


def test_to_dataframe_names_unknown_clusters():
    df = to_dataframe(fake_collection(), [4, -1, 4], {}, np.zeros((3, 2)))
    assert df["cluster_label"].tolist() == ["cluster 4", "other", "cluster 4"]


def test_to_dataframe_of_an_empty_collection():
    df = to_dataframe(fake_collection(()), np.zeros(0, np.int64), {}, np.zeros((0, 2)))
    assert len(df) == 0
    assert "cluster_label" in df.columns


def test_to_dataframe_labels_of_wrong_length_raise():
    with pytest.raises(ConfigError, match="labels has 2 entries but the collection has 3 images"):
        to_dataframe(fake_collection(), [0, 1], {}, np.zeros((3, 2)))


def test_to_dataframe_coords_of_wrong_shape_raise():
    with pytest.raises(ConfigError, match=r"coords must have shape \(3, 2\), got \(3,\)"):
        to_dataframe(fake_collection(), [0, 1, 2], {}, np.zeros(3))


def test_to_dataframe_captions_of_wrong_length_raise():
    with pytest.raises(ConfigError, match="captions has 1 entries"):
        to_dataframe(fake_collection(), [0, 1, 2], {}, np.zeros((3, 2)), captions=["x"])


def test_to_dataframe_similarity_of_wrong_length_raises():
    with pytest.raises(ConfigError, match="similarity has 4 entries"):
        to_dataframe(fake_collection(), [0, 1, 2], {}, np.zeros((3, 2)), similarity=np.ones(4))


def test_to_dataframe_collection_without_fingerprints_raises():
    col = fake_collection()
    col.items = col.items.drop(columns=["fingerprint"])
    with pytest.raises(ConfigError, match=r"lacks the column.*fingerprint"):
        to_dataframe(col, [0, 1, 2], {}, np.zeros((3, 2)))


# --- safe_cell -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_safe_cell_neutralises_formula_starts(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["cat", "", " =1", "a=b", 3, -1.5, None])
def test_safe_cell_leaves_other_values(value):
    assert safe_cell(value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x;=1+2.png", "x;'=1+2.png"),
        ("semi;@SUM(A1).png", "semi;'@SUM(A1).png"),
        ("x;=1+2", "x;'=1+2"),
        ("a, -b", "a, '-b"),
        ("a\t+1", "a\t'+1"),
        ("a;  =1;b,@x", "a;  '=1;b,'@x"),
        ("=a;=b", "'=a;'=b"),
    ],
)
def test_safe_cell_neutralises_formulas_after_a_separator(value, expected):
    assert safe_cell(value) == expected


@pytest.mark.parametrize("value", ["a;b", "a, b", "x=1;y", "1;2", "tab\there"])
def test_safe_cell_leaves_separators_without_formulas(value):
    assert safe_cell(value) == value


SEMICOLON_NAMES = ("x;=1+2.png", "semi;@SUM(A1).png")


def _cells_split_on(text: str, sep: str) -> list[str]:
    return [cell.strip(' "') for line in text.splitlines() for cell in line.split(sep)]


def semicolon_table() -> pd.DataFrame:
    return to_dataframe(
        fake_collection(SEMICOLON_NAMES),
        labels=np.array([0, 0]),
        names={0: "x;=1+2"},
        coords=np.zeros((2, 2)),
        captions=["a photo; @cmd", "fine"],
    )


def test_csv_split_on_semicolon_comma_or_tab_gives_no_formula_cells(tmp_path):
    raw = write_table(semicolon_table(), tmp_path / "out.csv").read_text(encoding="utf-8")
    for sep in (";", "\t"):
        assert not [c for c in _cells_split_on(raw, sep) if c.startswith(("=", "+", "-", "@"))], sep
    # split on ",", the numbers (which may be negative) are the only cells starting with a formula character
    assert not [c for c in _cells_split_on(raw, ",") if c.startswith(("=", "@"))]
    back = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert back["path"].tolist() == ["x;'=1+2.png", "semi;'@SUM(A1).png"]
    assert back["cluster_label"].tolist() == ["x;'=1+2", "x;'=1+2"]
    assert back["caption"].tolist() == ["a photo; '@cmd", "fine"]


def test_parquet_and_provenance_keep_semicolon_names_raw(tmp_path):
    back = pd.read_parquet(write_table(semicolon_table(), tmp_path / "out.parquet"))
    assert back["path"].tolist() == list(SEMICOLON_NAMES)
    assert back["cluster_label"].tolist() == ["x;=1+2", "x;=1+2"]
    rec = json.loads(
        write_provenance(
            tmp_path / "out.csv",
            {
                "cluster": ClusterConfig(method="prototypes", prototypes=("x;=1+2",)),
                "folder": "semi;@SUM(A1)",
            },
        ).read_text(encoding="utf-8")
    )
    assert rec["cluster"]["prototypes"] == ["x;=1+2"]
    assert rec["folder"] == "semi;@SUM(A1)"


# --- write_table ---------------------------------------------------------------------------------


def test_csv_round_trip_is_formula_safe_and_utf8(tmp_path, table):
    path = write_table(table, tmp_path / "out.csv")
    assert path == tmp_path / "out.csv"
    raw = path.read_text(encoding="utf-8")
    assert (
        raw.splitlines()[0] == "path,cluster_id,cluster_label,umap_x,umap_y,caption,folder_label,fingerprint"
    )
    back = pd.read_csv(path, keep_default_na=False)
    assert back["path"].tolist() == ["cats/a.jpg", "cats/b.png", "dogs/=c.jpg"]
    assert back["cluster_label"].tolist() == ["cat · sofa", "'-dog", "other"]
    assert back["caption"].tolist() == ["a cat", '\'=HYPERLINK("http://x")', "café crème"]
    assert back["cluster_id"].tolist() == [0, 1, -1]


def test_parquet_round_trip_keeps_types(tmp_path, table):
    path = write_table(table, tmp_path / "out.parquet")
    back = pd.read_parquet(path)
    assert list(back.columns) == list(table.columns)
    assert back["cluster_id"].dtype == np.int64
    assert back["umap_x"].dtype == np.float32
    # Parquet is typed data, not a spreadsheet: the text is kept as it is (like the app's download)
    assert back["cluster_label"].tolist() == ["cat · sofa", "-dog", "other"]
    assert back["caption"].tolist() == table["caption"].tolist()


def test_formula_safety_can_be_switched_off(tmp_path, table):
    back = pd.read_csv(write_table(table, tmp_path / "raw.csv", formula_safe=False), keep_default_na=False)
    assert back["cluster_label"].tolist() == ["cat · sofa", "-dog", "other"]


def test_write_table_leaves_the_dataframe_unchanged(tmp_path, table):
    before = table.copy()
    write_table(table, tmp_path / "out.csv")
    pd.testing.assert_frame_equal(table, before)


def test_existing_file_is_not_overwritten(tmp_path, table):
    path = tmp_path / "out.csv"
    path.write_text("keep me")
    with pytest.raises(ConfigError, match=r"exists; pass overwrite=True \(CLI: --overwrite\)"):
        write_table(table, path)
    assert path.read_text() == "keep me"


def test_overwrite_replaces_the_file(tmp_path, table):
    path = tmp_path / "out.csv"
    path.write_text("old")
    write_table(table, path, overwrite=True)
    assert len(pd.read_csv(path)) == 3


def test_unknown_suffix_raises(tmp_path, table):
    with pytest.raises(ConfigError, match=r"'out.xlsx'.*.csv or .parquet"):
        write_table(table, tmp_path / "out.xlsx")


def test_directory_as_path_raises(tmp_path, table):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        write_table(table, tmp_path / "dir.csv", overwrite=True)


def test_missing_parent_folders_are_made(tmp_path, table):
    path = write_table(table, tmp_path / "a" / "b" / "out.parquet")
    assert path.is_file()


def test_a_failed_write_leaves_nothing_behind(tmp_path, table, monkeypatch):
    def fail(self, *args, **kwargs):
        Path(args[0]).write_text("partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    with pytest.raises(OSError, match="disk full"):
        write_table(table, tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


def test_no_temp_files_remain_after_a_write(tmp_path, table):
    write_table(table, tmp_path / "out.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


# --- sanitize_filename ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dog · leash", "dog · leash"),
        ('a/b\\c:d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("  ..hidden.  ", "hidden"),
        ("", "untitled"),
        ("...", "untitled"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("tab\there\nnewline", "tab here newline"),
        ("ﬁle", "file"),
    ],
)
def test_sanitize_filename(name, expected):
    assert sanitize_filename(name) == expected


def test_sanitize_filename_limits_length():
    assert len(sanitize_filename("x" * 500)) == 120


# --- provenance ----------------------------------------------------------------------------------


def test_provenance_adds_versions_and_a_utc_timestamp():
    rec = provenance(folder="/data", n_images=3)
    assert rec["folder"] == "/data"
    assert rec["n_images"] == 3
    assert rec["versions"]["numpy"] == np.__version__
    assert rec["versions"]["pandas"] == pd.__version__
    assert {"vlexplore", "python", "scikit-learn"} <= set(rec["versions"])
    created = datetime.fromisoformat(rec["created_utc"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=1)


def test_provenance_path_sits_beside_the_table():
    assert provenance_path("out/clusters.csv") == Path("out/clusters.provenance.json")
    assert provenance_path("out/run.json") == Path("out/run.json")


def test_write_provenance_writes_json_beside_the_table(tmp_path):
    info = {
        "cluster": ClusterConfig(method="kmeans", k=4),
        "n": np.int64(7),
        "share": np.float32(0.5),
        "folder": tmp_path,
    }
    path = write_provenance(tmp_path / "clusters.parquet", info)
    assert path == tmp_path / "clusters.provenance.json"
    rec = json.loads(path.read_text(encoding="utf-8"))
    assert rec["cluster"]["method"] == "kmeans"
    assert rec["cluster"]["k"] == 4
    assert rec["n"] == 7
    assert rec["share"] == 0.5
    assert rec["folder"] == str(tmp_path)
    assert "versions" in rec
    assert "created_utc" in rec
    assert [p.name for p in tmp_path.iterdir()] == ["clusters.provenance.json"]


def test_write_provenance_keeps_a_finished_record(tmp_path):
    rec = provenance(step="export")
    path = write_provenance(tmp_path / "t.csv", rec)
    assert json.loads(path.read_text())["created_utc"] == rec["created_utc"]
