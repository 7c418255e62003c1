"""AppTest of search.

The Search page, the sidebar box of every page, "Similar" in the cluster grids, the hits on the map and as a
new cluster; bad queries give one message and keep the last results.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from test_app_pages import data, env, run_page, seeded, state_of, texts  # noqa: F401 - fixtures

from ui import search
from ui.search import SearchHits
from ui.state import KEY


def relpaths_of(at, indices) -> list[str]:
    items = state_of(at).emb.collection.items["relpath"]
    return [items.iat[int(i)] for i in indices]


def submit_text(at, query: str):
    at.text_input(key="search-query").input(query)
    next(b for b in at.button if b.label == "Search" and not b.proto.id.startswith("sidebar")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def found(at) -> SearchHits:
    return at.session_state[search.KEY]


@pytest.fixture
def searched(data):  # noqa: F811
    at = run_page("search", seeded(data))
    return submit_text(at, "red")


def test_search_page_without_query_says_what_to_do(data):  # noqa: F811
    at = run_page("search", seeded(data))
    assert "Search" in texts(at.title)
    assert "No search yet" in texts(at.info)
    assert not at.error


def test_text_search_ranks_matching_images_first_with_scores(searched):
    hits = found(searched)
    n_red = 6  # the red folder's readable images (its broken file is skipped)
    assert len(hits.indices) == state_of(searched).n_images  # 24 asked, 18 there
    assert all(p.startswith("red/") for p in relpaths_of(searched, hits.indices[:n_red]))
    assert np.all(np.diff(hits.scores) <= 1e-9)  # best first
    assert "nearest to" in texts(searched.markdown)
    assert "text: red" in texts(searched.markdown)
    captions = [c for img in searched.get("image") for c in [img.proto.imgs[0].caption]]
    assert captions[0].startswith("1. ")
    assert f"{hits.scores[0]:.3f}" in captions[0]


def test_empty_query_says_so_and_keeps_the_results(searched):
    before = found(searched).indices.copy()
    submit_text(searched, "   ")
    assert "the search text is empty" in texts(searched.error)
    np.testing.assert_array_equal(found(searched).indices, before)
    assert "text: red" in texts(searched.markdown)


def test_unreadable_query_image_says_so_and_keeps_the_results(searched):
    state = state_of(searched)
    before = found(searched).indices.copy()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search.st, "session_state", searched.session_state)
        assert not search.search_image(state, b"<html>not an image</html>", "page.jpg")
        assert not search.search_image(state, None, "")
    searched.run()
    assert "Could not search: no query image" in texts(searched.error)
    np.testing.assert_array_equal(found(searched).indices, before)


def test_image_search_finds_images_of_the_same_colour(searched):
    state = state_of(searched)
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (0, 0, 230)).save(buf, format="PNG")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search.st, "session_state", searched.session_state)
        assert search.search_image(state, buf.getvalue(), "query.png", top=3)
    searched.run()
    assert all(p.startswith("blue/") for p in relpaths_of(searched, found(searched).indices))
    assert "image: query.png" in texts(searched.markdown)


def test_sidebar_search_from_another_page_opens_the_results(data):  # noqa: F811
    at = run_page("clusters", seeded(data))
    at.sidebar.text_input[0].input("green")
    next(b for b in at.sidebar.button if b.label == "Search").click().run()
    assert not at.exception
    assert "Search" in texts(at.title)
    assert all(p.startswith("green/") for p in relpaths_of(at, found(at).indices[:6]))


def test_more_like_this_in_a_cluster_grid(data):  # noqa: F811
    at = run_page("clusters", seeded(data))
    similar = [b for b in at.button if b.label == "Similar"]
    assert similar, "every thumbnail of the cluster grids has a 'Similar' button"
    similar[0].click().run()
    assert not at.exception
    hits = found(at)
    assert hits.query.startswith("more like: ")
    source = hits.query.removeprefix("more like: ")
    assert source not in relpaths_of(at, hits.indices)  # the image itself is left out
    colour = source.split("/")[0]
    assert all(p.startswith(f"{colour}/") for p in relpaths_of(at, hits.indices[:5]))


def test_make_a_cluster_of_the_hits(searched):
    searched.selectbox(key="search-top").select(12)
    submit_text(searched, "red")
    hits = found(searched).indices.copy()
    state = state_of(searched)
    searched.text_input(key=f"search-cluster-name-{state.version}").input("reddish")
    next(b for b in searched.button if b.label == "Create cluster").click().run()
    assert not searched.exception
    state = state_of(searched)
    new_id = next(c for c, n in state.names.items() if n == "reddish")
    assert set(np.flatnonzero(state.labels == new_id)) == set(hits.tolist())
    assert "new cluster" in state.edit_log[-1]
    assert len(state.selection) == 0
    assert "Created cluster “reddish”" in texts(searched.success)


def test_make_a_cluster_without_a_name_says_so(searched):
    before = state_of(searched).labels.copy()
    next(b for b in searched.button if b.label == "Create cluster").click().run()
    assert "a cluster name cannot be empty" in texts(searched.error)
    np.testing.assert_array_equal(state_of(searched).labels, before)


def test_show_the_hits_on_the_map(searched):
    hits = found(searched).indices.copy()
    next(b for b in searched.button if b.label == "Show them on the map").click().run()
    assert not searched.exception
    assert "Map" in texts(searched.title)
    np.testing.assert_array_equal(state_of(searched).selection, np.sort(hits))


def test_results_of_another_folder_are_not_shown(searched, data):  # noqa: F811
    other = seeded(data)
    other.set_embedded(dataclasses.replace(data.emb), folder=data.root, model="bundled", device="cpu")
    other.set_clustered(data.cl)
    searched.session_state[KEY] = other
    searched.run()
    assert "No search yet" in texts(searched.info)


def test_empty_sidebar_query_opens_search_with_one_message(data):  # noqa: F811
    at = run_page("map", seeded(data))
    next(b for b in at.sidebar.button if b.label == "Search").click().run()
    assert not at.exception
    assert "Search" in texts(at.title)
    assert texts(at.error).count("the search text is empty") == 1
    assert "No search yet" in texts(at.info)
