"""Saved sessions (vlexplore.sessions).

Edits journaled as they happen, undo, snapshots, reopen, list / delete, export / import, damaged and foreign
files, and kill -9 right after an edit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlexplore import session_log
from vlexplore import sessions as vs
from vlexplore.collection import Collection
from vlexplore.config import ClusterConfig
from vlexplore.errors import ConfigError
from vlexplore.session_log import SessionError, journal_line, pack_ints, read_journal, unpack_ints

REPO = Path(__file__).resolve().parent.parent
N = 12
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, -1], dtype=np.int64)
NAMES = {0: "bird", 1: "flower", 2: "fruit", -1: "other"}


def collection(root: Path, n: int = N, salt: str = "") -> Collection:
    items = pd.DataFrame(
        {
            "relpath": [f"img_{i:02d}.png" for i in range(n)],
            "fingerprint": [f"b3{salt}{i:030d}" for i in range(n)],
        }
    )
    return Collection(root=root, items=items, skipped=pd.DataFrame({"relpath": [], "reason": []}))


@pytest.fixture
def col(tmp_path) -> Collection:
    (tmp_path / "images").mkdir()
    return collection(tmp_path / "images")


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def start(col, cache, **kw) -> vs.Session:
    return vs.start_session(col, "bundled-x", ClusterConfig(k=3), LABELS, NAMES, cache_dir=cache, **kw)


def some_edits(s: vs.Session) -> None:
    s.record("rename", "renamed 0", cid=0, name="  small   birds ")
    s.record("merge", "merged 1, 2", ids=[1, 2], name="plants")
    s.record("move", "moved 2", indices=[0, 11], target=1)
    s.record("new_cluster", "from search", indices=[5, 6], name="red things", source="search: red")
    s.record("selection", "kept", name="maybe", indices=[3, 4])


def reopen(col, cache) -> vs.Session:
    s = vs.open_session(col.root, "bundled-x", cache_dir=cache)
    assert s is not None
    return s


# ------------------------------------------------------------------------------ compact parts


def test_pack_round_trip_and_damage():
    arr = np.array([-1, 0, 5, 2**31 - 1], dtype=np.int64)
    assert unpack_ints(pack_ints(arr), what="x").tolist() == arr.tolist()
    with pytest.raises(SessionError, match="x is damaged"):
        unpack_ints("not base64!", what="x")
    with pytest.raises(SessionError, match="not a packed"):
        unpack_ints(3, what="x")


def test_journal_keeps_whole_lines_only():
    lines = [journal_line({"seq": i, "op": "undo"}) for i in range(1, 4)]
    records, note = read_journal(b"".join(lines))
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert note is None
    records, note = read_journal(b"".join(lines) + lines[0][:10])  # torn by a crash
    assert len(records) == 3
    assert "cut short" in note
    flipped = lines[1].replace(b"undo", b"undx")  # a checksum that no longer fits
    records, note = read_journal(lines[0] + flipped + lines[2])
    assert [r["seq"] for r in records] == [1]
    assert "line 2" in note


# ------------------------------------------------------------------------------ sessions


def test_edits_persist_as_they_happen(col, cache):
    s = start(col, cache)
    some_edits(s)
    again = reopen(col, cache)
    assert again.labels.tolist() == s.labels.tolist()
    assert again.names == s.names
    assert again.names[0] == "small birds"
    assert again.names[1] == "plants"
    new = int(again.labels[5])
    assert again.labels[6] == new
    assert again.names[new] == "red things"
    assert again.edits[3]["source"] == "search: red"
    assert again.selections["maybe"].tolist() == [3, 4]
    assert again.config == ClusterConfig(k=3)
    assert again.base_labels.tolist() == LABELS.tolist()
    assert again.matches(col)
    assert again.note is None


def test_undo_last_edits(col, cache):
    s = start(col, cache)
    s.record("rename", "r", cid=0, name="a")
    s.record("merge", "m", ids=[0, 1])
    assert s.undo() == "m"
    assert s.labels.tolist() == LABELS.tolist()
    assert s.names[0] == "a"
    again = reopen(col, cache)
    assert again.labels.tolist() == LABELS.tolist()
    assert again.names[0] == "a"
    assert len(again.edits) == 1
    assert again.undo() == "r"
    assert again.undo() is None
    assert reopen(col, cache).names == NAMES


def test_bad_edit_is_refused_and_not_written(col, cache):
    s = start(col, cache)
    with pytest.raises(ConfigError, match="no such cluster"):
        s.record("merge", "m", ids=[0, 7])
    with pytest.raises(ConfigError, match="unknown edit"):
        s.record("explode", "x")
    with pytest.raises(ConfigError, match=r"\[0, 12\)"):
        s.record("move", "x", indices=[12], target=0)
    assert reopen(col, cache).edits == []
    assert s.labels.tolist() == LABELS.tolist()


def test_snapshot_folds_the_journal(col, cache, monkeypatch):
    monkeypatch.setattr(vs, "SNAPSHOT_EVERY", 3)
    s = start(col, cache)
    for i in range(7):
        s.record("rename", f"r{i}", cid=0, name=f"name {i}")
    s.undo()
    doc = json.loads((s.directory / vs.SNAPSHOT).read_text())
    assert len(doc["edits"]) == 6  # folded after the 6th line; 7th edit and the undo in the journal
    assert len(read_journal((s.directory / vs.JOURNAL).read_bytes())[0]) == 2
    assert reopen(col, cache).names[0] == "name 5"


def test_crash_between_snapshot_and_journal_reset_replays_nothing_twice(col, cache):
    s = start(col, cache)
    s.record("new_cluster", "n", indices=[0], name="one")
    s.record("new_cluster", "n", indices=[1], name="two")
    journal = (s.directory / vs.JOURNAL).read_bytes()
    s.snapshot()
    (s.directory / vs.JOURNAL).write_bytes(journal)  # as if the crash came before the journal reset
    again = reopen(col, cache)
    assert len(again.edits) == 2
    assert sorted(again.names.values()).count("two") == 1


def test_new_clustering_replaces_the_edits(col, cache):
    s = start(col, cache)
    s.record("rename", "r", cid=0, name="a")
    labels = np.zeros(N, dtype=np.int64)
    vs.start_session(col, "bundled-x", ClusterConfig(method="hdbscan"), labels, {0: "all"}, cache_dir=cache)
    again = reopen(col, cache)
    assert again.edits == []
    assert again.config.method == "hdbscan"
    assert again.names == {0: "all"}
    [kept] = (cache / "sessions" / "replaced").iterdir()  # the dropped edits, as a file to import
    assert json.loads(kept.read_text())["edits"][0]["name"] == "a"


def test_replaced_exports_are_pruned(col, cache, monkeypatch):
    monkeypatch.setattr(vs, "KEEP_REPLACED", 2)
    for i in range(4):
        start(col, cache).record("rename", "r", cid=0, name=f"round {i}")
    start(col, cache)
    kept = sorted((cache / "sessions" / "replaced").iterdir())
    assert [json.loads(p.read_text())["edits"][0]["name"] for p in kept] == ["round 2", "round 3"]


def test_other_images_are_refused(col, cache, tmp_path):
    start(col, cache).record("rename", "r", cid=0, name="a")
    s = reopen(col, cache)
    changed = collection(col.root, salt="x")
    assert not s.matches(changed)
    with pytest.raises(SessionError, match="other images"):
        s.check(changed)
    assert vs.open_session(col.root, "other-model", cache_dir=cache) is None
    with pytest.raises(ConfigError, match="one entry per image"):
        vs.start_session(col, "m", ClusterConfig(), LABELS[:3], NAMES, cache_dir=cache)


def test_list_and_delete(col, cache, tmp_path):
    assert vs.list_sessions(cache_dir=cache) == []
    start(col, cache).record("rename", "r", cid=0, name="a")
    (tmp_path / "two").mkdir()
    other = vs.start_session(
        collection(tmp_path / "two", 3), "m2", ClusterConfig(), [0, 0, 1], {}, cache_dir=cache
    )
    infos = {i.id: i for i in vs.list_sessions(cache_dir=cache)}
    assert len(infos) == 2
    mine = infos[vs.session_id(col.root, "bundled-x")]
    assert (mine.folder, mine.model_id, mine.images, mine.edits, mine.method) == (
        str(col.root.resolve()),
        "bundled-x",
        N,
        1,
        "kmeans",
    )
    assert vs.delete_session(other.id, cache_dir=cache) is True
    assert vs.delete_session(other.id, cache_dir=cache) is False
    assert [i.id for i in vs.list_sessions(cache_dir=cache)] == [mine.id]
    with pytest.raises(ConfigError, match="not a session id"):
        vs.delete_session("../../etc", cache_dir=cache)


def test_default_store_is_under_the_cache_root(col, tmp_path, monkeypatch):
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(tmp_path / "root"))
    s = vs.start_session(col, "m", ClusterConfig(), LABELS, NAMES)
    assert s.directory.parent == tmp_path / "root" / "sessions"


def test_damaged_session_is_reported_and_kept(col, cache):
    s = start(col, cache)
    (s.directory / vs.SNAPSHOT).write_text('{"format": "vlexplore-session", "version": 1, "id"')
    with pytest.raises(SessionError, match="cannot be read"):
        vs.open_session(col.root, "bundled-x", cache_dir=cache)
    [info] = vs.list_sessions(cache_dir=cache)
    assert info.problem
    assert "cannot be read" in info.problem
    start(col, cache)  # a new clustering moves the damaged one aside, never deletes it
    assert len(list((cache / "sessions" / "damaged").iterdir())) == 1
    assert reopen(col, cache).edits == []


def test_export_import_round_trip_onto_another_folder(col, cache, tmp_path):
    s = start(col, cache)
    some_edits(s)
    data = vs.export_session(s)
    assert json.loads(data)["format"] == "vlexplore-session"
    assert json.loads(data)["version"] == vs.VERSION
    (tmp_path / "copy").mkdir()
    here = collection(tmp_path / "copy")  # same files elsewhere (another machine)
    other_cache = tmp_path / "cache2"
    got = vs.import_session(data, collection=here, model_id="bundled-x", cache_dir=other_cache)
    assert got.folder == str(here.root.resolve())
    again = vs.open_session(here.root, "bundled-x", cache_dir=other_cache)
    assert again is not None
    assert again.names == s.names
    assert again.labels.tolist() == s.labels.tolist()


def test_import_over_an_existing_session_keeps_the_old_one(col, cache):
    s = start(col, cache)
    s.record("rename", "r", cid=0, name="old name")
    data = vs.export_session(s)
    s.record("rename", "r", cid=0, name="newer name")
    vs.import_session(data, collection=col, model_id="bundled-x", cache_dir=cache)
    assert reopen(col, cache).names[0] == "old name"
    [kept] = (cache / "sessions" / "replaced").iterdir()
    assert json.loads(kept.read_text())["edits"][-1]["name"] == "newer name"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe not text", "not JSON"),
        (b"[1, 2]", "not a vlexplore session"),
        (b'{"format": "something-else"}', "not a vlexplore session"),
        (b'{"format": "vlexplore-session", "version": 99}', "version 99"),
        (b'{"format": "vlexplore-session", "version": 1, "id": "x"}', "field 'folder'"),
    ],
)
def test_import_refuses_foreign_or_damaged_files(col, cache, data, message):
    s = start(col, cache)
    s.record("rename", "r", cid=0, name="mine")
    before = sorted(p.name for p in (cache / "sessions").rglob("*"))
    with pytest.raises(SessionError, match=message):
        vs.import_session(data, collection=col, model_id="bundled-x", cache_dir=cache)
    assert sorted(p.name for p in (cache / "sessions").rglob("*")) == before
    assert reopen(col, cache).names[0] == "mine"


def test_import_refuses_damaged_inner_fields_and_other_images(col, cache, tmp_path):
    s = start(col, cache)
    s.record("rename", "r", cid=0, name="mine")
    doc = json.loads(vs.export_session(s))
    for change, message in (
        ({"labels": pack_ints([0, 1])}, "2 labels for 12 images"),
        ({"labels": "@@@"}, "damaged"),
        ({"config": {"method": "nope"}}, "config is not usable"),
        ({"config": {"colour": 1}}, "config is not usable"),
        ({"edits": [{"kind": "merge", "log": "", "ids": [0, 9]}]}, "does not apply"),
        ({"edits": [{"kind": "explode"}]}, "unknown saved edit"),
    ):
        bad = json.dumps({**doc, **change}).encode()
        with pytest.raises(SessionError, match=message):
            vs.import_session(bad, collection=col, model_id="bundled-x", cache_dir=cache)
    with pytest.raises(SessionError, match="other images"):
        vs.import_session(json.dumps(doc).encode(), collection=collection(col.root, 5), cache_dir=cache)
    assert reopen(col, cache).names[0] == "mine"


# ------------------------------------------------------------------------------ kill -9

CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, pandas as pd
from pathlib import Path
from vlexplore import sessions as vs
from vlexplore.collection import Collection
from vlexplore.config import ClusterConfig

root, cache, n = Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
items = pd.DataFrame({"relpath": [f"img_{i:02d}.png" for i in range(12)],
                      "fingerprint": [f"b3{i:030d}" for i in range(12)]})
col = Collection(root=root, items=items, skipped=pd.DataFrame({"relpath": [], "reason": []}))
s = vs.start_session(col, "bundled-x", ClusterConfig(k=3), np.arange(12) % 3, {}, cache_dir=cache)
for i in range(n):
    s.record("rename", f"r{i}", cid=i % 3, name=f"name {i}")
    print(f"recorded {i}", flush=True)
time.sleep(600)
"""


def test_kill_9_right_after_an_edit_loses_nothing(col, cache):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(REPO), str(col.root), str(cache), "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        last = None
        for line in proc.stdout:  # the child blocks in sleep after its last edit, never exits by itself
            last = line.strip()
            if last == "recorded 39":
                break
        assert last == "recorded 39", proc.stderr.read()[-2000:]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    s = reopen(col, cache)
    assert len(s.edits) == 40
    assert s.note is None
    assert s.names == {0: "name 39", 1: "name 37", 2: "name 38"}


def test_a_new_session_on_changed_images_keeps_the_old_edits(col, cache):
    start(col, cache).record("rename", "r", cid=0, name="precious")
    changed = collection(col.root, salt="y")  # same folder, other contents
    vs.start_session(changed, "bundled-x", ClusterConfig(k=3), LABELS, NAMES, cache_dir=cache)
    [kept] = (cache / "sessions" / "replaced").iterdir()
    assert json.loads(kept.read_text())["edits"][0]["name"] == "precious"
    assert reopen(changed, cache).matches(changed)


def test_two_writers_on_one_session_build_on_each_other(col, cache):
    a = start(col, cache)
    b = reopen(col, cache)  # a second browser tab on the same folder and model
    a.record("rename", "a", cid=0, name="from a")
    _labels, names = b.record("rename", "b", cid=1, name="from b")
    assert names[0] == "from a"
    assert names[1] == "from b"
    a.undo()  # undoes b's rename: the last edit on disk
    again = reopen(col, cache)
    assert again.names[0] == "from a"
    assert again.names[1] == "flower"
    assert len(again.edits) == 1


def test_content_digest_is_each_rows_path_and_key_in_order_and_follows_a_new_table(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setattr(session_log, "DIGEST_CHUNK", 5)  # rows joined per update: several chunks for 12 rows
    col = collection(tmp_path, salt="é")  # non-ASCII keys
    h = hashlib.blake2b(digest_size=16)  # the format saved sessions were written with: one update per row
    for rel, key in zip(col.items["relpath"], col.items["fingerprint"]):
        h.update(f"{rel}\0{key}\n".encode())
    assert vs.content_digest(col) == h.hexdigest()
    assert vs.content_digest(col) == h.hexdigest()  # kept
    col.items = col.items.iloc[::-1].reset_index(drop=True)  # another table: hashed again, in its order
    assert vs.content_digest(col) != h.hexdigest()
    fresh = Collection(root=tmp_path, items=col.items.copy(), skipped=col.skipped)
    assert vs.content_digest(col) == vs.content_digest(fresh)
