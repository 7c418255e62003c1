"""Captions users already have: sidecar .txt files, captions.csv / .jsonl, --captions, and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import vlexplore as vx
from vlexplore.cli import main
from vlexplore.errors import ConfigError
from vlexplore.pipeline import caption_texts, cluster_embedded, embed, scan, to_dataframe
from vlexplore.sidecar import decode_text, read_user_captions


@pytest.fixture
def folder(tmp_path, write_image):
    root = tmp_path / "photos"
    for i, colour in enumerate(((220, 30, 30), (30, 200, 40), (30, 40, 220))):
        for j in range(2):
            write_image(root / f"c{i}" / f"img{j}.jpg", colour=colour, seed=j)
    return root


def _quiet_scan(root, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        col = scan(root, **kw)
    return col, [str(w.message) for w in caught]


def test_sidecar_txt_is_the_caption_and_is_not_a_skipped_file(folder):
    (folder / "c0" / "img0.txt").write_text("A red square.\nfr.utf8=Un carré rouge.\n", encoding="utf-8")
    (folder / "c1" / "IMG1.TXT").write_text("  a green\n  square  ", encoding="utf-8")
    (folder / "c1" / "notes.txt").write_text("not beside any image", encoding="utf-8")
    col, notes = _quiet_scan(folder)
    assert len(col) == 6
    assert len(col.skipped) == 0
    assert notes == []
    caps = dict(zip(col.items["relpath"], col.captions))
    assert caps["c0/img0.jpg"] == "A red square."  # the first line only: translations left out
    assert caps["c1/img1.jpg"] == "a green"
    assert caps["c2/img0.jpg"] == ""  # a missing caption is simply empty
    assert col.user_captions.sources == {"sidecar .txt": 2}


def test_captions_csv_in_the_folder_with_missing_extra_and_duplicate_rows(folder):
    (folder / "captions.csv").write_text(
        "path,caption\nc0/img0.jpg,a red one\n./c0/img1.jpg,another red\nc0/img1.jpg,another red\n"
        "c1/img0.jpg,green\nc1/img0.jpg,a leafy green\ngone.jpg,not here\nelse/x.png,nor this\n",
        encoding="utf-8",
    )
    col, notes = _quiet_scan(folder)
    caps = dict(zip(col.items["relpath"], col.captions))
    assert caps["c0/img0.jpg"] == "a red one"
    assert caps["c0/img1.jpg"] == "another red"  # the repeated identical row collapses
    assert caps["c1/img0.jpg"] == "green | a leafy green"  # two different captions: both kept
    assert caps["c2/img1.jpg"] == ""
    assert len(notes) == 2
    assert "2 caption(s) for files that are not images of this folder" in notes[0]
    assert "gone.jpg" in notes[0]
    assert "2 repeated row(s)" in notes[1]
    assert "1 image(s) with different captions" in notes[1]
    assert all("\n" not in n for n in notes)


def test_captions_jsonl_with_a_bad_line(folder):
    lines = [
        json.dumps({"path": "c2/img0.jpg", "caption": "blue"}),
        "{not json",
        json.dumps({"file": "c2/img1.jpg", "text": "deep blue"}),
    ]
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    col, notes = _quiet_scan(folder)
    caps = dict(zip(col.items["relpath"], col.captions))
    assert caps["c2/img0.jpg"] == "blue"
    assert caps["c2/img1.jpg"] == "deep blue"
    assert notes == ["captions.jsonl: 1 row(s) without a path or caption ignored"]


def test_non_utf8_files_are_read_with_a_one_line_warning(folder):
    (folder / "captions.csv").write_bytes("path,caption\nc0/img0.jpg,café crème\n".encode("cp1252"))
    (folder / "c1" / "img0.txt").write_bytes("Grün\n".encode("latin-1"))
    col, notes = _quiet_scan(folder)
    caps = dict(zip(col.items["relpath"], col.captions))
    assert caps["c0/img0.jpg"] == "café crème"
    assert caps["c1/img0.jpg"] == "Grün"
    assert any("captions.csv is not UTF-8; read as Windows-1252" in n for n in notes)
    assert any("1 caption .txt file(s) are not UTF-8" in n for n in notes)
    assert decode_text(b"\xef\xbb\xbfok") == ("ok", None)
    assert decode_text(b"\x81\x8d")[1] == "Latin-1"  # bytes Windows-1252 leaves undefined: never a crash


def test_explicit_file_wins_over_the_folder_and_sidecars(folder, tmp_path):
    (folder / "c0" / "img0.txt").write_text("from the sidecar", encoding="utf-8")
    (folder / "captions.csv").write_text(
        "path,caption\nc0/img0.jpg,from the folder table\n", encoding="utf-8"
    )
    mine = tmp_path / "mine.csv"
    mine.write_text(f"caption,path\nmine,{folder / 'c0' / 'img0.jpg'}\n", encoding="utf-8")  # absolute path
    col, _ = _quiet_scan(folder, captions=mine)
    assert col.captions[0] == "mine"
    assert col.user_captions.sources == {"mine.csv": 1}
    col = vx.scan_folder(folder, captions={"c0/img1.jpg": "from a mapping"})
    assert col.captions[:2] == ["from the folder table", "from a mapping"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("caps.csv", "file_name,words\na.jpg,x\n", "needs a header with columns 'path' and 'caption'"),
        ("caps.jsonl", "[1, 2]\n", "has no line like"),
        ("caps.txt", "a.jpg x\n", "must be a .csv"),
    ],
)
def test_an_explicit_unusable_file_is_a_clear_error(folder, tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        scan(folder, captions=path)


def test_a_missing_explicit_file_is_a_clear_error_and_a_bad_folder_table_only_a_note(folder, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_user_captions(folder, ["c0/img0.jpg"], captions=tmp_path / "nope.csv")
    (folder / "captions.csv").write_text("a;b\n1;2\n", encoding="utf-8")
    col, notes = _quiet_scan(folder)
    assert len(col) == 6
    assert len(notes) == 1
    assert "it is ignored" in notes[0]


def test_user_captions_flow_into_captions_names_and_export(folder, fake_encoder, cache_dir):
    rows = ["path,caption"] + [
        f"c{i}/img{j}.jpg,{word} {word} thing"
        for i, word in enumerate(("apple", "leaf", "ocean"))
        for j in (0, 1)
    ]
    (folder / "captions.csv").write_text("\n".join(rows[:-1]) + "\n", encoding="utf-8")  # c2/img1 has none
    col = scan(folder, cache_dir=cache_dir)
    emb = embed(col, vx.EncodeConfig(cache_dir=cache_dir), encoder=fake_encoder)
    assert emb.captions[:5] == [r.split(",")[1] for r in rows[1:6]]
    assert emb.captions[5] == ""
    cl = cluster_embedded(
        emb, vx.ClusterConfig(k=3, representation="caption-tfidf", naming="captions"), cache_dir=cache_dir
    )
    assert len(set(cl.labels[:4].tolist())) == 2
    assert cl.labels[0] == cl.labels[1]
    assert {"apple", "leaf"} <= {w for kws in cl.keywords.values() for w in " ".join(kws).split()}
    df = to_dataframe(emb, cl)
    assert df["caption"].tolist() == emb.captions


class _Captioner:
    model_id = "fake-captioner"
    description = "fake"

    def __init__(self):
        self.seen = 0

    def preprocess(self, image):
        return image

    def caption_batch(self, images, prompt=None):
        self.seen += len(images)
        return ["model caption"] * len(images)


def test_a_captioner_fills_only_images_without_a_user_caption(folder, fake_encoder, cache_dir):
    (folder / "c0" / "img0.txt").write_text("mine", encoding="utf-8")
    col = scan(folder, cache_dir=cache_dir)
    emb = embed(col, vx.EncodeConfig(cache_dir=cache_dir), encoder=fake_encoder)
    cap = _Captioner()
    from vlexplore.encode import embed_images

    res = embed_images(col, fake_encoder, cache_dir=cache_dir)
    texts = caption_texts(res, fake_encoder, captioner=cap, cache_dir=cache_dir)
    assert texts[0] == "mine"
    assert texts[1:] == ["model caption"] * 5
    assert cap.seen == 5  # the user's captioned image never went through the model
    assert emb.captions[0] == "mine"


def test_cli_captions_flag_and_scan_report(folder, tmp_path, capsys):
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        json.dumps({"path": "c0/img0.jpg", "caption": "red"})
        + "\n"
        + json.dumps({"path": "zzz.jpg", "caption": "x"})
        + "\n",
        encoding="utf-8",
    )
    assert main(["scan", str(folder), "--captions", str(mine)]) == 0
    out, err = capsys.readouterr()
    assert "1 image(s) with your own caption (mine.jsonl: 1)" in out
    assert "1 caption(s) for files that are not images of this folder" in out + err
    assert main(["scan", str(folder), "--captions", str(tmp_path / "none.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_collection_without_keeps_user_captions(folder):
    (folder / "c0" / "img1.txt").write_text("kept", encoding="utf-8")
    col = scan(folder)
    rest = col.without({"c0/img0.jpg": "gone"})
    assert rest.captions[0] == "kept"
    assert len(rest.captions) == 5
    assert np.array_equal(rest.items["relpath"].to_numpy()[:1], ["c0/img1.jpg"])
