"""AppTest of every page: a small generated folder, the test FakeEncoder, pre-seeded session state.

Nothing here loads a real model or runs UMAP (the folder has fewer than 30 images: PCA).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import CLASS_COLOURS, FakeEncoder, colour_image
from streamlit.testing.v1 import AppTest

import vlexplore as vx
from ui.grid import NATIVE_KEY as NATIVE_GRID
from ui.state import KEY, AppState
from vlexplore import export, tables
from vlexplore.export import csv_bytes, parquet_bytes

APP = Path(__file__).resolve().parent.parent / "app.py"
PER_CLASS = 6
TIMEOUT = 60


def _make_folder(root: Path, *, sub_folders: bool = True) -> None:
    for c, (label, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(PER_CLASS):
            rel = f"{label}/{label}_{i}.png" if sub_folders else f"{label}_{i}.png"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            colour_image(colour, (32, 24), seed=10 * c + i).save(path)
    broken = root / ("red/broken.jpg" if sub_folders else "broken.jpg")
    broken.write_bytes(b"<!DOCTYPE html><html>not found</html>")


def _embed(root: Path, cache: Path) -> vx.Embedded:
    col = vx.scan(root)
    emb = vx.embed(col, vx.EncodeConfig(cache_dir=cache), encoder=FakeEncoder())
    # the fake encoder has no captions; give each image its colour word so keywords exist
    captions = [f"a {p.split('/')[-1].split('_')[0]} square" for p in col.items["relpath"]]
    return dataclasses.replace(emb, captions=captions)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A labelled folder (3 colour sub-folders × 6 + 1 broken file), embedded and clustered (k=3)."""
    base = tmp_path_factory.mktemp("app")
    root, cache = base / "images", base / "cache"
    _make_folder(root)
    emb = _embed(root, cache)
    coords = np.random.default_rng(0).normal(size=(emb.n, 2)).astype(np.float32)
    cl = vx.cluster_embedded(emb, vx.ClusterConfig(k=3), coords=coords, cache_dir=cache)
    return SimpleNamespace(base=base, root=root, cache=cache, emb=emb, cl=cl)


@pytest.fixture(autouse=True)
def env(monkeypatch, data):
    monkeypatch.delenv("VLEXPLORE_FOLDER", raising=False)
    monkeypatch.setenv("VLEXPLORE_ROOTS", str(data.base))
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(data.cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VLEXPLORE_WARM_UMAP", "0")  # no numba compilation in a background thread


@pytest.fixture
def fake_models(monkeypatch):
    """``ui.cached.encoder`` returns a FakeEncoder (and the note set in ``notes``)."""
    from ui import cached

    notes: list[str | None] = [None]
    monkeypatch.setattr(cached, "encoder", lambda model, device, cache_dir: (FakeEncoder(), notes[0]))
    return notes


def seeded(data, **changes) -> AppState:
    s = AppState(cache_dir=data.cache, auto_started=True)
    s.set_embedded(data.emb, folder=data.root, model="bundled", device="cpu")
    s.set_clustered(data.cl)
    for k, v in changes.items():
        setattr(s, k, v)
    return s


def run_page(
    page: str | None, state: AppState | None = None, *, plotly_map: bool = False, native_grid: bool = True
) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if (
        native_grid
    ):  # AppTest runs no JavaScript: the native grid (the component is tests/test_grid_component)
        at.session_state[NATIVE_GRID] = True
    if state is not None:
        at.session_state[KEY] = state
    if (
        plotly_map
    ):  # the Map page's toggle off: the plotly map (the WebGL one is tested in test_map_component)
        at.session_state["map-use-webgl"] = False
    at.run()
    if page is not None:  # AppTest wants one run before a page switch
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def state_of(at: AppTest) -> AppState:
    return at.session_state[KEY]


# ------------------------------------------------------------------------------------- no data


@pytest.mark.parametrize("page", ["clusters", "map", "evaluate", "export", "cluster"])
def test_pages_without_data_point_to_load(page):
    at = run_page(page)
    assert "No folder loaded" in texts(at.info)
    assert not at.error


def test_opens_on_load_page_without_start_folder():
    at = run_page(None)
    assert at.title[0].value == "Load a folder"
    assert "No folder loaded" in texts(at.sidebar.caption)


# ------------------------------------------------------------------------------------- Load


def test_load_refuses_folder_outside_roots(data):
    at = run_page("load")
    at.text_input(key="folder_input").set_value("/etc").run()
    assert "outside the folders this app may read" in texts(at.error)
    assert at.button[-1].label == "Load and cluster"
    assert at.button[-1].disabled


def test_load_refuses_dotdot_and_symlink_escapes(data, tmp_path):
    link = data.base / "escape"
    if not link.exists():
        os.symlink("/etc", link)
    for path in (str(data.root / ".." / ".."), str(link)):
        at = run_page("load")
        at.text_input(key="folder_input").set_value(path).run()
        assert "outside the folders this app may read" in texts(at.error), path


def test_load_runs_pipeline_and_opens_clusters(data, fake_models):
    at = run_page("load")
    at.text_input(key="folder_input").set_value(str(data.root)).run()
    assert not at.error
    at.radio[0].set_value("cpu")
    at.button[-1].click().run()
    assert not at.exception
    s = state_of(at)
    assert s.n_images == 3 * PER_CLASS
    assert s.has_clusters
    assert s.folder == data.root.resolve()
    assert at.title[0].value == "Clusters"  # switched page
    assert f"**{3 * PER_CLASS}** images · **3** clusters" in texts(at.sidebar.markdown)


def test_load_page_shows_skipped_files_and_cache_state(data):
    at = run_page("load", seeded(data))
    assert any("1 file skipped" in e.label for e in at.expander)
    skipped = at.dataframe[-1].value
    assert list(skipped["relpath"]) == ["red/broken.jpg"]
    assert "not an image" in skipped["reason"].iloc[0]
    assert "**18 images**, 18 embedded now, 0 from the cache" in texts(at.markdown)
    cached = seeded(data)
    cached.emb = dataclasses.replace(cached.emb, n_computed=0)
    at = run_page("load", cached)
    assert "**18 images**, embeddings cached" in texts(at.markdown)


def test_fallback_note_is_shown_as_warning(data, fake_models):
    fake_models[0] = "ViT-B-32/openai is not reachable — using the bundled offline model instead."
    at = run_page("load")
    at.text_input(key="folder_input").set_value(str(data.root)).run()
    at.button[-1].click().run()
    s = state_of(at)
    assert s.emb.fallback_note == fake_models[0]
    assert fake_models[0] in texts(at.sidebar.warning)
    assert fake_models[0] in texts(run_page("load", s).warning)


def test_browse_opens_sub_folder(data):
    at = run_page("load")
    at.text_input(key="folder_input").set_value(str(data.root)).run()
    at.selectbox(key="browse_pick").set_value("green").run()
    next(b for b in at.button if b.label == "Open sub-folder").click().run()
    assert at.text_input(key="folder_input").value == str(data.root / "green")


def test_auto_start_loads_start_folder(data, fake_models, monkeypatch):
    monkeypatch.setenv("VLEXPLORE_FOLDER", str(data.root))
    at = run_page(None)
    s = state_of(at)
    assert s.auto_started
    assert s.n_images == 3 * PER_CLASS
    assert s.has_clusters
    assert at.title[0].value == "Clusters"


def test_auto_start_embeds_with_the_start_up_model(data, monkeypatch, tmp_path):
    from ui import cached

    asked: list[str] = []

    def encoder(model, device, cache_dir):
        asked.append(model)
        return FakeEncoder(), None

    monkeypatch.setattr(cached, "encoder", encoder)
    monkeypatch.setenv("VLEXPLORE_FOLDER", str(data.root))
    monkeypatch.setenv("VLEXPLORE_MODEL", str(tmp_path / "my-clip"))
    s = state_of(run_page(None))
    assert asked == [str(tmp_path / "my-clip")]
    assert s.model == str(tmp_path / "my-clip")


# ------------------------------------------------------------------------------------- Cluster


def test_cluster_page_offers_every_representation_of_the_library(data):
    from vlexplore.represent import REPRESENTATIONS

    at = run_page("cluster", seeded(data))
    box = next(b for b in at.selectbox if b.label == "Represent images by")
    assert sorted(box.options) == sorted(box.format_func(r) for r in REPRESENTATIONS)


def test_cluster_kmeans_with_chosen_k(data):
    at = run_page("cluster", seeded(data))
    at.number_input[0].set_value(2)
    at.form_submit_button[0].click().run()
    s = state_of(at)
    assert s.n_clusters == 2
    assert s.clustered.config.k == 2
    assert "2 clusters" in texts(at.subheader)
    assert "k-means: 2 clusters" in texts(at.success)


def test_cluster_prototypes_names_clusters_and_reuses_map(data):
    s = seeded(data)
    coords = s.clustered.coords
    at = run_page("cluster", s)
    at.radio(key="method").set_value("prototypes").run()
    at.text_area[0].set_value("red\ngreen, blue")
    at.form_submit_button[0].click().run()
    s = state_of(at)
    assert s.clustered.config.method == "prototypes"
    assert sorted(s.names.values()) == ["blue", "green", "red"]
    assert s.clustered.coords is coords  # no new projection
    table = at.dataframe[0].value
    assert set(table["cluster"]) == {"red", "green", "blue"}
    assert table["images"].sum() == 18


def test_cluster_prototypes_without_text_is_an_error(data):
    at = run_page("cluster", seeded(data))
    at.radio(key="method").set_value("prototypes").run()
    at.form_submit_button[0].click().run()
    assert "needs at least one text prototype" in texts(at.error)


def test_cluster_hdbscan_defaults(data):
    at = run_page("cluster", seeded(data))
    at.radio(key="method").set_value("hdbscan").run()
    assert at.number_input[0].value == 5  # the library's default: n / 20, at least 5


def test_cluster_hdbscan_shows_and_assigns_its_noise(data):
    at = run_page("cluster", seeded(data))
    at.radio(key="method").set_value("hdbscan").run()
    at.form_submit_button[0].click().run()
    assert not at.error
    assert "as noise" in texts(at.caption)
    at.checkbox[0].check()
    at.form_submit_button[0].click().run()
    s = state_of(at)
    assert s.clustered.config.assign_noise
    assert (s.clustered.labels >= 0).all()


def test_cluster_on_caption_tfidf_representation(data):
    at = run_page("cluster", seeded(data))
    at.selectbox[0].set_value("caption-tfidf")
    at.number_input[0].set_value(3)
    at.form_submit_button[0].click().run()
    s = state_of(at)
    assert not at.error
    assert s.clustered.config.representation == "caption-tfidf"
    assert s.n_clusters == 3
    assert vx.evaluate_labels(data.emb.collection.labels, s.clustered.labels)["acc"] == 1.0


# ------------------------------------------------------------------------------------- Clusters


def test_clusters_page_shows_one_card_per_cluster(data):
    s = seeded(data)
    at = run_page("clusters", s)
    assert "3 clusters" in texts(at.markdown)
    cards = [m for m in at.markdown if "images" in str(m.value) and "border-radius:50%" in str(m.value)]
    assert len(cards) == 3
    assert len(at.image) == 3 * PER_CLASS  # every image: the clusters are smaller than a page of thumbnails
    assert not at.error


def test_clusters_rename_merge_and_move(data):
    s = seeded(data)
    at = run_page("clusters", s)
    first = s.order()[0]
    key = f"rename-{first}-{s.version}"
    at.text_input(key=key).set_value("=SUM(A1)").run()
    s = state_of(at)
    assert s.names[first] == "=SUM(A1)"
    assert "Renamed" in texts(at.success)

    ids = s.order()[:2]
    at.multiselect(key=f"merge_ids-{s.version}").set_value(ids).run()
    next(b for b in at.button if b.label == "Merge").click().run()
    s = state_of(at)
    assert s.n_clusters == 2
    assert len(s.edit_log) == 2
    assert "Merged" in texts(at.success)

    at.selectbox(key="per_card").set_value(32)
    at.toggle(key="select_mode").set_value(True).run()
    boxes = [c for c in at.checkbox if c.key and "-sel-" in c.key]
    assert len(boxes) == 3 * PER_CLASS
    boxes[0].check().run()
    s = state_of(at)
    assert len(s.selection) == 1
    moved = int(s.selection[0])
    assert "1 image selected" in texts(at.markdown)
    at.text_input(key=f"clusters-newname-{s.version}").set_value("odd one").run()
    next(b for b in at.button if b.label == "Create cluster").click().run()
    s = state_of(at)
    assert s.names[int(s.labels[moved])] == "odd one"
    assert s.n_clusters == 3
    assert len(s.selection) == 0


# ------------------------------------------------------------------------------------- Map


def test_map_shows_clusters_and_names_selection(data):
    s = seeded(data)
    s.set_selection([0, 1, 2, 3])
    at = run_page("map", s, plotly_map=True)
    chart = at.get("plotly_chart")[0]
    import json

    fig = json.loads(chart.proto.spec)
    assert len(fig["data"]) == 3
    assert {t["name"].split(" (")[0] for t in fig["data"]} == set(s.names.values())
    assert "4 images selected" in texts(at.markdown)
    at.text_input(key=f"map-newname-{s.version}").set_value("picked").run()
    next(b for b in at.button if b.label == "Create cluster").click().run()
    s = state_of(at)
    new_id = next(c for c, n in s.names.items() if n == "picked")
    assert (s.labels == new_id).sum() == 4
    assert "Created cluster “picked” with 4 images." in texts(at.success)


def test_map_without_selection_explains_how_to_select(data):
    at = run_page("map", seeded(data))
    assert "Select points on the map" in texts(at.info)


# ------------------------------------------------------------------------------------- Evaluate


def test_evaluate_shows_label_scores_and_confusion(data):
    s = seeded(data)
    at = run_page("evaluate", s)
    metrics = {m.label: m.value for m in at.metric}
    from vlexplore.evaluate import evaluate_labels

    expected = evaluate_labels(data.emb.collection.labels, s.labels)
    assert metrics["Accuracy (ACC)"] == f"{expected['acc']:.3f}"
    assert metrics["NMI"] == f"{expected['nmi']:.3f}"
    assert metrics["ARI"] == f"{expected['ari']:.3f}"
    assert metrics["Clusters"] == "3"
    assert len(at.get("plotly_chart")) == 1
    per_folder = at.dataframe[0].value
    assert sorted(per_folder["folder"]) == ["blue", "green", "red"]
    assert per_folder["images"].sum() == 18


def test_evaluate_follows_hand_edits(data):
    s = seeded(data)
    labels = s.labels.copy()
    labels[:] = 0
    s.apply(labels, {0: "everything"}, "merged all")
    at = run_page("evaluate", s)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ARI"] == "0.000"
    assert metrics["Clusters"] == "1"


def test_evaluate_without_folder_labels_uses_label_free_scores(tmp_path):
    root = tmp_path / "flat"
    _make_folder(root, sub_folders=False)
    emb = _embed(root, tmp_path / "cache")
    assert emb.collection.labels is None
    coords = np.zeros((emb.n, 2), dtype=np.float32)
    cl = vx.cluster_embedded(emb, vx.ClusterConfig(k=3), coords=coords)
    s = AppState(cache_dir=tmp_path / "cache", auto_started=True)
    s.set_embedded(emb, folder=root, model="bundled", device="cpu")
    s.set_clustered(cl)
    at = run_page("evaluate", s)
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["Silhouette", "Davies–Bouldin", "Calinski–Harabasz"]
    assert float(at.metric[0].value) == pytest.approx(cl.metrics["silhouette"], abs=1e-3)
    assert not at.get("plotly_chart")


# ------------------------------------------------------------------------------------- Export


def test_export_offers_csv_parquet_and_provenance(data):
    s = seeded(data)
    first = s.order()[0]
    s.apply(None, {**s.names, first: "=HYPERLINK(evil)"}, "renamed")
    at = run_page("export", s)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download CSV", "Download Parquet", "Download provenance (JSON)"]
    preview = at.dataframe[0].value
    assert list(preview.columns[:6]) == ["path", "cluster_id", "cluster_label", "umap_x", "umap_y", "caption"]
    assert "=HYPERLINK(evil)" in set(preview["cluster_label"])
    # what the buttons serve
    df = tables.labelled_frame(s.emb, s.clustered, s.labels, s.names)
    csv = pd.read_csv(io.BytesIO(csv_bytes(df)))
    assert "'=HYPERLINK(evil)" in set(csv["cluster_label"])
    assert len(csv) == 18
    pq = pd.read_parquet(io.BytesIO(parquet_bytes(df)))
    assert "=HYPERLINK(evil)" in set(pq["cluster_label"])
    assert "renamed" in texts(at.json) or any("renamed" in str(j.proto.body) for j in at.json)


def test_export_adds_curation_columns_for_small_folders_and_when_asked_for_large(data, monkeypatch):
    at = run_page("export", seeded(data))
    assert at.toggle(key="export-curation").value
    assert "outlier_score" in at.dataframe[0].value.columns
    monkeypatch.setattr(export, "CURATION_AUTO_MAX", 5)  # this folder is now "large"
    at = run_page("export", seeded(data))
    assert not at.toggle(key="export-curation").value
    assert "outlier_score" not in at.dataframe[0].value.columns
    at.toggle(key="export-curation").set_value(True).run()
    assert "outlier_score" in at.dataframe[0].value.columns


def test_map_waits_for_a_pending_layout(data):
    s = seeded(data)
    s.clustered = dataclasses.replace(s.clustered, coords=np.full((s.n_images, 2), np.nan, dtype=np.float32))
    assert not s.map_ready
    at = run_page("map", s, plotly_map=True)
    s = state_of(at)
    assert s.map_ready
    assert np.isfinite(s.clustered.coords).all()
    assert len(at.get("plotly_chart")) == 1


def test_load_lays_out_the_map_in_the_background(data, fake_models):
    at = run_page("load")
    at.text_input(key="folder_input").set_value(str(data.root)).run()
    at.button[-1].click().run()
    s = state_of(at)
    assert not at.error, texts(at.error)
    assert s.map_job is not None
    assert not s.map_ready
    s.map_job.result(timeout=300)  # the Export page does not wait for it
    at.switch_page("views/export.py").run()
    assert s.map_ready, [
        texts(at.error),
        texts(at.warning),
        [e.value for e in at.exception],
        state_of(at) is s,
    ]
    assert s.map_job is None
    assert np.isfinite(at.dataframe[0].value[["umap_x", "umap_y"]].to_numpy()).all()


def test_cluster_prototypes_threshold_sends_weak_matches_to_other(data):
    at = run_page("cluster", seeded(data))
    at.radio(key="method").set_value("prototypes").run()
    at.text_area[0].set_value("red, green")  # no blue prototype: blue squares match weakly
    at.checkbox[0].check()
    at.slider[0].set_value(0.9)
    at.checkbox[2].uncheck()  # zero-shot only
    at.form_submit_button[0].click().run()
    s = state_of(at)
    assert s.clustered.config.threshold == 0.9
    assert s.clustered.config.refine is False
    assert (s.labels == -1).sum() >= PER_CLASS
    assert "other" in set(at.dataframe[0].value["cluster"])
    at.switch_page("views/clusters.py").run()
    assert "not in any cluster" in texts(at.markdown)


def test_roots_from_secrets_when_env_is_unset(data, monkeypatch, tmp_path):
    monkeypatch.delenv("VLEXPLORE_ROOTS")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.secrets["roots"] = [str(tmp_path)]
    at.run()
    assert f"`{tmp_path.resolve()}`" in texts(at.caption)
    at.text_input(key="folder_input").set_value(str(data.root)).run()
    assert "outside the folders this app may read" in texts(at.error)


# ------------------------------------------------------------------------------------- bad configuration


@pytest.mark.parametrize("secret", [5, [1, 2], {"a": "b"}, []])
def test_load_page_stops_on_a_bad_roots_secret(monkeypatch, secret):
    monkeypatch.delenv("VLEXPLORE_ROOTS")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.secrets["roots"] = secret
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Allowed folders misconfigured" in texts(at.error)
    assert "roots" in texts(at.error)
    assert not at.text_input  # the page stopped: no folder box, no fallback to wider roots


@pytest.mark.parametrize("value", [":", "", "/"])
def test_load_page_stops_on_a_bad_roots_variable(monkeypatch, value):
    monkeypatch.setenv("VLEXPLORE_ROOTS", value)
    at = run_page(None)
    assert "Allowed folders misconfigured" in texts(at.error)
    assert not at.text_input


def test_outside_error_does_not_say_where_a_path_resolves(data):
    link = data.base / "escape"
    if not link.exists():
        os.symlink("/etc", link)
    at = run_page("load")
    at.text_input(key="folder_input").set_value(str(link)).run()
    error = texts(at.error)
    assert "outside the folders this app may read" in error
    assert "/etc" not in error
    assert "resolves to" not in error


# ------------------------------------------------------------------------------------- user text is text


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


MARKDOWN_PROTOS = {"Markdown", "Heading", "Alert", "Progress", "Toast"}


def _markdown_strings(at: AppTest) -> list[tuple[str, bool]]:
    """Every string the browser renders as Markdown.

    Element bodies, labels and help texts (with whether HTML is allowed there).
    """
    out = []
    for node in _walk(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "ListFields"):
            continue
        allow_html = bool(getattr(proto, "allow_html", False))
        kind = proto.DESCRIPTOR.name  # st.json, st.code, st.text bodies are not Markdown
        fields = ("body", "label", "help", "text") if kind in MARKDOWN_PROTOS else ("label", "help")
        for field, value in proto.ListFields():
            if field.name in fields and isinstance(value, str) and value:
                out.append((value, allow_html and field.name == "body"))
    return out


def _bad_tokens(text: str, allow_html: bool) -> list[str]:
    from markdown_it import MarkdownIt

    bad = []
    stack = list(MarkdownIt("commonmark").parse(text))
    while stack:
        tok = stack.pop()
        stack.extend(tok.children or [])
        if tok.type in ("image", "link_open"):
            bad.append(f"{tok.type} {tok.attrs}")
        elif tok.type.startswith("html"):
            tags = re.findall(r"<\s*/?\s*([a-zA-Z]+)", tok.content)
            if not allow_html or any(t.lower() not in ("span", "b") for t in tags) or "src" in tok.content:
                bad.append(f"{tok.type} {tok.content!r}")
    return bad


def test_user_text_is_rendered_as_text_not_markdown(monkeypatch, tmp_path):
    """Folder, sub-folder and cluster names, prompts and typed paths with Markdown images and HTML.

    No page turns them into an image, a link or a tag (the browser would fetch the URL).
    """
    evil_prompt = "![p](http://example.invalid/p.png)"
    folder = (
        tmp_path / "![t](http:" / "example.invalid" / "x.png)"
    )  # the path reads ![t](http:/example.invalid/x.png)
    _make_folder(folder)
    os.rename(folder / "blue", folder / "![s](s.png) <img src=s.png>")
    monkeypatch.setenv("VLEXPLORE_ROOTS", str(tmp_path))
    seen: list[tuple[str, str, bool]] = []

    def collect(at, where):
        assert not at.exception, [e.value for e in at.exception]
        seen.extend((where, text, html) for text, html in _markdown_strings(at))

    at = run_page("load")
    at.text_input(key="folder_input").set_value("/![o](http://example.invalid/o.png)").run()
    assert "outside the folders" in texts(at.error)
    collect(at, "load, outside")
    at.text_input(key="folder_input").set_value(str(folder)).run()
    collect(at, "load, browse")
    from vlexplore.images import scan_folder  # (``vx.scan`` may be shadowed by the module of that name)

    emb = vx.embed(scan_folder(folder), vx.EncodeConfig(cache_dir=tmp_path / "cache"), encoder=FakeEncoder())
    cl = vx.cluster_embedded(emb, vx.ClusterConfig(k=3), coords=np.zeros((emb.n, 2), np.float32))
    s = AppState(cache_dir=tmp_path / "cache", auto_started=True)
    s.set_embedded(emb, folder=folder, model="bundled", device="cpu")
    s.set_clustered(cl)
    at = run_page("load", s)
    collect(at, "load, loaded")
    at.switch_page("views/cluster.py").run()
    at.radio(key="method").set_value("prototypes").run()
    at.text_area[0].set_value(f"{evil_prompt}\nred\n<img src=http://example.invalid/q.png>")
    at.form_submit_button[0].click().run()
    collect(at, "cluster")
    s = state_of(at)
    assert evil_prompt in s.names.values()
    first = s.order()[0]
    at.switch_page("views/clusters.py").run()
    at.text_input(key=f"rename-{first}-{s.version}").set_value("![r](http://example.invalid/r.png)").run()
    assert "Renamed" in texts(at.success)
    collect(at, "clusters")
    s = state_of(at)
    s.set_selection(range(s.n_images))
    for page in ("map", "evaluate", "export"):
        at.switch_page(f"views/{page}.py").run()
        collect(at, page)
    rendered = "\n".join(text for _, text, _ in seen)
    assert "example.invalid" in rendered  # the names are on the pages, as text
    bad = [(where, text, tokens) for where, text, html in seen if (tokens := _bad_tokens(text, html))]
    assert bad == []
