"""General cluster names from WordNet's hypernyms (vlexplore/hypernyms.py)."""

from __future__ import annotations

from vlexplore import hypernyms
from vlexplore.hypernyms import ancestors, common_name, general_names, shared_ancestors
from vlexplore.models.bundled import imagenet_class_names


def test_the_table_knows_every_imagenet_class_and_the_noun_bank():
    assert all(ancestors(names[0]) for names in imagenet_class_names())
    assert "bird" in ancestors("black grouse")
    assert "mammal" in ancestors("wombat")


def test_the_most_shared_ancestor_names_a_group_the_nearest_on_a_tie():
    assert common_name(["kite", "black grouse", "partridge", "black stork", "prairie chicken"])[0] == "bird"
    assert common_name(["hog", "brown bear", "wombat", "mink", "wild boar"])[0] == "mammal"
    assert common_name(["hatchet", "shovel", "hammer", "scabbard"])[0] == "tool"


def test_nothing_shared_widely_or_only_abstract_ancestors_give_no_name():
    assert common_name(["daisy", "hair slide", "pot", "hamper", "vase"]) == (None, 0.0)
    assert common_name(["kite", "hatchet"])[0] is None  # only "object", "whole": too abstract
    assert common_name(["xyzzy", "plugh"]) == (None, 0.0)


def test_general_names_are_unique_and_keep_the_specific_words():
    names = {0: "kite", 1: "ruffed grouse", 2: "hog", -1: "other"}
    keywords = {
        0: ["black grouse", "partridge", "black stork"],
        1: ["partridge", "quail", "ptarmigan"],
        2: ["brown bear", "wombat", "mink"],
        -1: ["x"],
    }
    out, kw, general = general_names(names, keywords)
    assert list(out.values()).count("bird") == 1
    assert out[2] == "mammal"
    assert out[-1] == "other"
    assert kw[2][0] == "hog"
    assert general[2] == "mammal"
    renamed = [c for c in (0, 1) if out[c] == "bird"]
    assert len(renamed) == 1
    assert kw[renamed[0]][0] == names[renamed[0]]


def test_fixed_names_stay_and_are_never_given_to_another_cluster():
    names, keywords = {0: "bird", 1: "kite"}, {0: ["x"], 1: ["black grouse", "partridge", "black stork"]}
    out, _, _ = general_names(names, keywords, fixed={0})
    assert out[0] == "bird"
    assert out[1] != "bird"


def test_a_cluster_that_loses_a_general_name_takes_a_narrower_one_never_a_broader_one():
    names = {0: "hog", 1: "hartebeest"}
    ranked = {
        0: ["brown bear", "wombat", "mink", "wild boar", "otter", "beaver", "weasel"],
        1: ["ibex", "gazelle", "impala", "bighorn", "ox", "sorrel"],
    }
    out, kw, general = general_names(names, {0: ranked[0][:4], 1: ranked[1][:4]}, ranked=ranked)
    assert out == {
        0: "mammal",
        1: "ungulate",
    }  # the antelopes' next ancestor; "animal" is broader than "mammal"
    assert set(general) <= {0, 1}
    assert all(kw[c][0] == names[c] for c in general)


def test_one_word_is_not_a_shared_ancestor():
    assert common_name(["kite", "hatchet"])[0] is None
    assert shared_ancestors(["hatchet", "xyzzy"]) == []


def test_coverage_is_the_threshold(monkeypatch):
    words = ["lemon", "Granny Smith", "orange", "croquet ball", "spaghetti squash"]
    assert common_name(words)[0] == "edible fruit"
    assert common_name(words, coverage=0.8)[0] is None
    assert hypernyms.COVERAGE == 0.5
