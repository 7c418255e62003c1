"""Typed per-representation options: unknown keys are refused in one place, defaults are documented."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields

import pytest

from vlexplore import naming, textguided
from vlexplore.config import ClusterConfig
from vlexplore.errors import ConfigError
from vlexplore.options import (
    OPTION_CLASSES,
    NamingOptions,
    PromptOptions,
    naming_options,
    option_names,
    representation_options,
)
from vlexplore.represent import REPRESENTATIONS


def test_every_representation_has_an_options_class():
    assert set(OPTION_CLASSES) == set(REPRESENTATIONS)
    for rep in REPRESENTATIONS:
        assert set(option_names(rep)) >= {f.name for f in fields(NamingOptions)}


@pytest.mark.parametrize(
    ("representation", "key", "close"),
    [
        ("nouns", "n_noun", "n_nouns"),
        ("keywords", "max_keyword", "max_keywords"),
        ("image", "naming_word", "naming_words"),
    ],
)
def test_a_typo_is_one_line_naming_representation_key_and_closest_match(representation, key, close):
    with pytest.raises(ConfigError) as exc:
        ClusterConfig(representation=representation, options={key: 1})
    message = str(exc.value)
    assert "\n" not in message
    assert repr(representation) in message
    assert repr(key) in message
    assert f"did you mean {close!r}" in message


def test_a_key_of_another_representation_is_refused():
    with pytest.raises(ConfigError, match="'image' has no option 'captioner'"):
        ClusterConfig(options={"captioner": "blip-base"})
    assert ClusterConfig(representation="caption-tfidf", options={"captioner": "blip-base"}).options == {
        "captioner": "blip-base"
    }


def test_options_must_be_a_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        ClusterConfig(options=["n_nouns"])  # type: ignore[arg-type]


def test_typed_options_carry_the_modules_defaults():
    assert NamingOptions().naming_contrast == naming.CONTRAST
    assert NamingOptions().naming_drift_top == naming.DRIFT_TOP
    assert PromptOptions().prompt_weight == textguided.PROMPT_WEIGHT
    opts = naming_options({"naming_words": ("a",), "n_nouns": 3})
    assert opts.naming_words == ("a",)
    assert opts.naming_general is True
    rep = representation_options("keywords", {"max_keywords": 3, "naming_words": ("a",)})
    assert rep.max_keywords == 3
    assert rep.num_captions == 1
    with pytest.raises(FrozenInstanceError):
        rep.max_keywords = 4  # type: ignore[misc]
