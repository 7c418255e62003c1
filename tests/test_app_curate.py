"""AppTest of the Curate page.

Duplicate groups with a threshold, outliers, uncertain images, and every prompt's clustering side by side with
the AMI matrix.
"""

from __future__ import annotations

import dataclasses
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_app_pages import _embed, _make_folder, data, env, run_page, seeded, state_of, texts  # noqa: F401

import vlexplore as vx
from ui import curation
from vlexplore.curate import DEFAULT_THRESHOLD
from vlexplore.textguided import rank_prompts


@pytest.fixture(scope="module")
def dups(tmp_path_factory):
    """The AppTest folder plus an identical copy of one image and a resized copy of another."""
    base = tmp_path_factory.mktemp("curate")
    root, cache = base / "images", base / "cache"
    _make_folder(root)
    shutil.copy(root / "red/red_0.png", root / "red/red_0 copy.png")
    Image.open(root / "blue/blue_1.png").resize((64, 48)).save(root / "blue/blue_1 big.png")
    emb = _embed(root, cache)
    coords = np.random.default_rng(0).normal(size=(emb.n, 2)).astype(np.float32)
    cl = vx.cluster_embedded(emb, vx.ClusterConfig(k=3), coords=coords, cache_dir=cache)
    return SimpleNamespace(base=base, root=root, cache=cache, emb=emb, cl=cl)


def curate(state, view: str = "Duplicates"):
    at = run_page("curate", state)
    if view != "Duplicates":
        at.radio(key="curate-view").set_value(view).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def captions(at) -> list[str]:
    return [img.proto.imgs[0].caption for img in at.get("image")]


def test_exact_and_near_duplicates_are_grouped_with_one_kept(dups):
    at = curate(seeded(dups))
    md = texts(at.markdown)
    assert "2 identical files" in md
    caps = captions(at)
    n_groups = texts(at.markdown).count("**Group ")
    assert sum(c.startswith("✔ keep") for c in caps) == n_groups >= 1  # one kept per group
    same = [c for c in caps if "same file" in c]
    assert same
    assert all("red_0" in c for c in same)
    (button,) = at.get("download_button")
    assert button.proto.label.startswith("Download the groups")


def test_the_threshold_slider_changes_the_groups(dups):
    at = curate(seeded(dups))
    at.slider(key="dup-threshold").set_value(1.0).run()
    strict = len(captions(at))
    at.slider(key="dup-threshold").set_value(0.7).run()
    loose = len(captions(at))
    memo = at.session_state[curation.KEY]
    assert memo[("duplicates", 1.0)].n_groups <= memo[("duplicates", 0.7)].n_groups
    assert 2 <= strict < loose


def test_duplicates_table_matches_the_library(dups):
    s = seeded(dups)
    at = curate(s)
    groups = at.session_state[curation.KEY][("duplicates", DEFAULT_THRESHOLD)]
    expected = vx.duplicates(dups.emb, threshold=DEFAULT_THRESHOLD)
    pd.testing.assert_frame_equal(groups.table, expected)
    exact = groups.table[groups.table["kind"] == "exact"]
    assert set(exact["path"]) == {"red/red_0.png", "red/red_0 copy.png"}
    assert exact["keep"].sum() == 1


def test_no_duplicates_says_so(data):  # noqa: F811
    at = curate(seeded(data))
    at.slider(key="dup-threshold").set_value(1.0).run()
    assert "No duplicates among the 18 images" in texts(at.success)


def test_outliers_are_sorted_by_score(dups):
    at = curate(seeded(dups), "Outliers")
    scores = vx.outlier_scores(dups.emb, k=curation.OUTLIER_K)
    caps = captions(at)
    shown = [float(c.split(" · ")[0]) for c in caps]
    assert shown == sorted(shown, reverse=True)
    assert shown[0] == pytest.approx(scores.max(), abs=1e-3)
    assert len(caps) == dups.emb.n
    assert at.checkbox, "outliers can be ticked and moved"


def test_uncertain_view_needs_a_confident_mask(data):  # noqa: F811
    at = curate(seeded(data), "Uncertain")
    assert "Uncertain images are known when" in texts(at.info)


def test_uncertain_images_are_shown_and_can_be_moved(data):  # noqa: F811
    mask = np.ones(data.emb.n, dtype=bool)
    mask[[1, 7, 13]] = False
    cl = dataclasses.replace(data.cl, info={**data.cl.info, "confident": mask})
    s = seeded(data)
    s.set_clustered(cl)
    at = curate(s, "Uncertain")
    assert "3 uncertain images" in texts(at.markdown)
    assert len(at.get("image")) == 3
    for box in at.checkbox:
        box.check()
    at.run()
    assert sorted(state_of(at).selection.tolist()) == [1, 7, 13]
    assert "3 images selected" in texts(at.markdown)
    pick = at.selectbox(key="uncertain-cluster")
    pick.select(int(s.labels[7])).run()
    assert len(at.get("image")) == int((s.labels[[1, 7, 13]] == s.labels[7]).sum())


def test_every_prompt_clustering_side_by_side_with_the_ami_matrix(data):  # noqa: F811
    rng = np.random.default_rng(0)
    colour = np.array([p.split("/")[0] for p in data.emb.collection.items["relpath"]])
    spaces = {
        "What colour is it?": np.eye(3)[np.searchsorted(["blue", "green", "red"], colour)] + 0.01,
        "Is it big?": rng.normal(size=(data.emb.n, 3)),
    }
    ranking = rank_prompts(spaces, k=3, seed=0)
    answers = {
        "What colour is it?": list(colour),
        "Is it big?": ["yes" if i % 2 else "no" for i in range(18)],
    }
    info = {
        "chosen_prompt": ranking["chosen"],
        "prompt_ranking": ranking["table"],
        "prompt_labels": ranking["labels"],
        "prompt_answers": answers,
        "ami": ranking["ami"],
        "ami_prompts": ranking["prompts"],
    }
    s = seeded(data)
    s.set_clustered(dataclasses.replace(data.cl, info={**data.cl.info, **info}))
    at = curate(s, "Prompts")
    md = texts(at.markdown)
    assert "What colour is it?" in md
    assert "Is it big?" in md
    assert "✔" in md
    plain = md.replace("\\", "")  # (chips escape Markdown punctuation)
    assert all(f"{w} (6)" in plain for w in ("red", "green", "blue")), plain
    (chart,) = at.get("plotly_chart")
    assert "What colour is it?" in chart.proto.spec


def test_prompts_view_without_a_prompt_guided_run_explains(data):  # noqa: F811
    at = curate(seeded(data), "Prompts")
    assert "Prompt-guided clustering asks each image" in texts(at.info)
    assert not at.error
