"""AppTest of saved work.

Edits persist as they happen, a restart reopens them (said in one line), undo, the Sessions section (list,
reopen, delete), import of a good and a bad file. Same folder and FakeEncoder as tests/test_app_pages.py; each
test has its own cache root, so its own sessions.
"""

from __future__ import annotations

import pytest
from test_app_pages import PER_CLASS, data, env, fake_models, run_page, seeded, state_of, texts  # noqa: F401

import vlexplore as vx
from ui import sessions as saved
from vlexplore import sessions as vs


@pytest.fixture(autouse=True)
def own_cache(env, monkeypatch, tmp_path):  # noqa: F811  (env is the imported fixture)
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


SHOWN: list[str] = []


def load(folder) -> object:
    """A fresh browser session (as after a restart or a reload) loading ``folder`` from the Load page."""
    at = run_page("load")
    at.text_input(key="folder_input").set_value(str(folder)).run()
    next(b for b in at.button if b.label == "Load and cluster").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Clusters"
    SHOWN[:] = [texts(at.info), texts(at.warning)]  # the one-line notes, shown once on arrival
    at.switch_page("views/clusters.py").run()  # (AppTest's next run would be the Load page's again)
    return at


def rename_first(at, name: str) -> int:
    s = state_of(at)
    first = s.order()[0]
    at.text_input(key=f"rename-{first}-{s.version}").set_value(name).run()
    return first


def test_edits_are_saved_and_reopened_after_a_restart(data, fake_models, own_cache):  # noqa: F811
    at = load(data.root)
    s = state_of(at)
    assert s.session is not None
    assert s.session.directory.parent == own_cache / "sessions"
    assert "Reopened" not in SHOWN[0]  # nothing saved before: a fresh start says nothing
    first = rename_first(at, "my squares")
    ids = state_of(at).order()[1:3]
    at.multiselect(key=f"merge_ids-{state_of(at).version}").set_value(ids).run()
    next(b for b in at.button if b.label == "Merge").click().run()
    before = state_of(at)
    on_disk = vs.open_session(data.root, before.emb.model_id, cache_dir=own_cache)
    assert on_disk is not None
    assert len(on_disk.edits) == 2

    again = load(data.root)  # "restart": a new session state, same folder and model
    s = state_of(again)
    assert s.names[first] == "my squares"
    assert s.n_clusters == 2
    assert s.labels.tolist() == before.labels.tolist()
    assert len(s.edit_log) == 2
    [line] = [t for t in SHOWN[0].splitlines() if "Reopened" in t]
    assert "2 edits" in line


def test_undo_last_edit_on_the_load_page(data, fake_models, own_cache):  # noqa: F811
    at = load(data.root)
    first = rename_first(at, "named once")
    at.switch_page("views/load.py").run()
    assert "**1** edit since the clustering" in texts(at.markdown)
    undo = next(b for b in at.button if b.label == "Undo last edit")
    assert not undo.disabled
    undo.click().run()
    s = state_of(at)
    assert s.names[first] != "named once"
    assert s.edit_log == []
    assert "Undone: renamed cluster" in texts(at.success)
    assert next(b for b in at.button if b.label == "Undo last edit").disabled
    assert load(data.root).session_state["vx"].names[first] != "named once"  # undone on disk too


def test_sessions_list_reopen_and_delete(data, fake_models, own_cache, tmp_path):  # noqa: F811
    at = load(data.root)
    rename_first(at, "kept")
    blue = data.root / "blue"
    other = load(blue)  # a second folder: a second session
    at = run_page("load", state_of(other))
    listing = texts(at.markdown)
    assert f"`{data.root.resolve()}`" in listing
    assert "**open now**" in listing
    assert "**1** edit ·" in listing
    buttons = {b.key: b for b in at.button}
    mine = vs.session_id(data.root, state_of(at).emb.model_id)
    open_now = state_of(at).session.id
    assert buttons[f"session-del-{open_now}"].disabled
    assert buttons[f"session-open-{open_now}"].disabled
    buttons[f"session-open-{mine}"].click().run()  # reopen the first folder from the list
    s = state_of(at)
    assert s.folder == data.root.resolve()
    assert "kept" in s.names.values()
    assert at.title[0].value == "Clusters"
    assert "Reopened your saved work" in texts(at.info)
    at.switch_page("views/load.py").run()
    next(b for b in at.button if b.key == f"session-del-{open_now}").click().run()  # the blue one
    assert "Session deleted." in texts(at.success)
    assert [i.id for i in vs.list_sessions(cache_dir=own_cache)] == [mine]


def test_import_of_a_good_and_a_bad_file(data, fake_models, own_cache):  # noqa: F811
    at = load(data.root)
    first = rename_first(at, "exported name")
    s = state_of(at)
    exported = saved.export_bytes(s)
    at.switch_page("views/load.py").run()
    undo = next(b for b in at.button if b.label == "Undo last edit")
    undo.click().run()
    s = state_of(at)
    assert s.names[first] != "exported name"
    assert saved.read_import(s, b'{"format": "something else"}') is None  # refused, nothing changed
    assert len(vs.list_sessions(cache_dir=own_cache)) == 1
    assert vs.open_session(data.root, s.emb.model_id, cache_dir=own_cache).edits == []
    got = saved.read_import(s, exported)
    assert got is not None
    assert got.names[first] == "exported name"


def test_seeded_state_without_a_session_says_edits_are_not_saved(data):  # noqa: F811
    at = run_page("load", seeded(data))
    assert "not being saved to disk" in texts(at.caption)
    assert f"{3 * PER_CLASS:,} images" in texts(at.markdown)


def test_undo_on_the_clusters_page(data, fake_models):  # noqa: F811
    at = load(data.root)
    assert not [b for b in at.button if b.label == "Undo last edit"]  # no edit yet: no button
    first = rename_first(at, "take me back")
    next(b for b in at.button if b.label == "Undo last edit").click().run()
    assert state_of(at).names[first] != "take me back"
    assert "Undone" in texts(at.success)


def test_two_tabs_on_one_folder_keep_both_edits(data, fake_models):  # noqa: F811
    tab_a, tab_b = load(data.root), load(data.root)
    first = rename_first(tab_a, "renamed in tab a")
    s = state_of(tab_b)
    second = s.order()[1]
    tab_b.text_input(key=f"rename-{second}-{s.version}").set_value("renamed in tab b").run()
    s = state_of(tab_b)
    assert s.names[first] == "renamed in tab a"
    assert s.names[second] == "renamed in tab b"
    assert len(s.edit_log) == 2


def test_a_saved_clustering_that_cannot_be_made_again_falls_back(data, fake_models, own_cache):  # noqa: F811
    at = load(data.root)
    s = state_of(at)
    # A session saved with a representation these images cannot give any more (no captioner, no captions).
    caption_cfg = vx.ClusterConfig(representation="caption-tfidf")
    vs.start_session(s.emb.collection, s.emb.model_id, caption_cfg, s.labels, s.names, cache_dir=own_cache)
    again = load(data.root)
    s2 = state_of(again)
    assert "could not be reopened" in SHOWN[1]
    assert s2.clustered.config.representation == "image"
    assert s2.n_clusters >= 2


def test_reopening_a_default_clustering_never_edited_says_nothing(data, fake_models):  # noqa: F811
    load(data.root)
    again = load(data.root)
    assert state_of(again).session is not None
    assert "Reopened" not in SHOWN[0]
