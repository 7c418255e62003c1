"""The options of each representation, typed: ``ClusterConfig.options`` checked in one place.

Callers (the CLI, the app, a notebook) keep passing ``ClusterConfig.options`` as a plain dict;
:class:`~vlexplore.config.ClusterConfig` hands it to :func:`check_options`, which refuses a key the
chosen representation does not read with one line naming the representation, the key, the closest
valid key and all of them. Readers take the typed form: :func:`naming_options` (every
representation names its clusters) and :func:`representation_options` (what its builder reads).
Values are checked where they are used, with the key in the message.

=================================  =====================================================
``image``                          :class:`ImageOptions` (naming only)
``caption-tfidf``                  :class:`CaptionOptions`
``caption-sbert``                  :class:`SentenceOptions`
``keywords``                       :class:`KeywordOptions`
``prompt``                         :class:`PromptOptions`
``nouns``, ``relations``,          :class:`vlexplore.language.LanguageOptions` (plus the naming keys)
``centres``
``pair``                           :class:`vlexplore.pair.PairOptions`
=================================  =====================================================
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class NamingOptions:
    """How clusters are named from the encoder's vocabulary (see :mod:`vlexplore.naming`).

    Every representation accepts these.

    Attributes:
        naming_words: the user's words added to the vocabulary.
        naming_nouns: a vocabulary replacing the noun bank; ``None`` = the bank.
        naming_vocabulary: the noun bank's source; ``None`` = :func:`vlexplore.naming.default_vocabulary`.
        naming_general: WordNet hypernyms as short names ("kite, grouse" → bird).
        naming_score: ``margin``, ``mean-margin`` or ``rank``.
        naming_contrast: weight of the other clusters' similarity in a score
            (:data:`vlexplore.naming.CONTRAST`, 0.5).
        naming_drift_top: a prototype ranked below this is "drifted" (:data:`vlexplore.naming.DRIFT_TOP`, 10).
    """

    naming_words: tuple[str, ...] | list[str] = ()
    naming_nouns: tuple[str, ...] | list[str] | None = None
    naming_vocabulary: str | None = None
    naming_general: bool = True
    naming_score: str = "margin"
    naming_contrast: float = 0.5
    naming_drift_top: int = 10


@dataclass(frozen=True)
class ImageOptions:
    """The ``image`` representation has no options of its own."""


@dataclass(frozen=True)
class CaptionOptions:
    """``caption-tfidf``: where the captions come from (see :mod:`vlexplore.textguided`).

    Attributes:
        captioner: a captioner name or folder (BLIP, BLIP-2, GIT…); ``None`` = the embedded captions.
        num_captions: captions sampled per image (``" | "``-joined).
        device: the captioner's device.
        cache_dir: where captions and sentence vectors are cached; ``None`` = the embeddings' cache.
        label_top: re-make the bundled label captions with this many classes; ``None`` = keep them.
    """

    captioner: str | None = None
    num_captions: int = 1
    device: str = "auto"
    cache_dir: str | Path | None = None
    label_top: int | None = None


@dataclass(frozen=True)
class SentenceOptions(CaptionOptions):
    """``caption-sbert``: captions, then sentence embeddings.

    Attributes:
        sentence_model: a sentence-transformers name or folder; ``None`` = the encoder's own, else MiniLM.
    """

    sentence_model: str | None = None


@dataclass(frozen=True)
class KeywordOptions(CaptionOptions):
    """``keywords``: captions, then their keywords.

    Attributes:
        max_keywords: keywords kept per caption.
    """

    max_keywords: int = 5


@dataclass(frozen=True)
class PromptOptions(SentenceOptions):
    """``prompt``: answers to the questions, one clustering each.

    Attributes:
        answer_top: offline answers: classes per answer.
        prompt_weight: offline answers: how strongly the question steers them
            (:data:`vlexplore.textguided.PROMPT_WEIGHT`, 0.5).
    """

    answer_top: int = 2
    prompt_weight: float = 0.5


#: representation → "module:class" of its options (imported on use, as the builders are).
OPTION_CLASSES: dict[str, str] = {
    "image": "vlexplore.options:ImageOptions",
    "caption-tfidf": "vlexplore.options:CaptionOptions",
    "caption-sbert": "vlexplore.options:SentenceOptions",
    "keywords": "vlexplore.options:KeywordOptions",
    "prompt": "vlexplore.options:PromptOptions",
    "nouns": "vlexplore.language:LanguageOptions",
    "relations": "vlexplore.language:LanguageOptions",
    "centres": "vlexplore.language:LanguageOptions",
    "pair": "vlexplore.pair:PairOptions",
}


def option_class(representation: str) -> type:
    """The options dataclass of ``representation`` (:class:`ImageOptions` for an unknown name)."""
    module_name, cls_name = OPTION_CLASSES.get(representation, OPTION_CLASSES["image"]).split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def option_names(representation: str) -> tuple[str, ...]:
    """Every key ``ClusterConfig.options`` may hold with ``representation``, its own first."""
    own = [f.name for f in fields(option_class(representation))]
    return (*own, *(f.name for f in fields(NamingOptions)))


def check_options(representation: str, options: Mapping[str, Any]) -> None:
    """Refuse a key ``representation`` does not read.

    Raises:
        ConfigError: one line with the representation, the bad key, the closest valid key and all of them.
    """
    if not isinstance(options, Mapping):
        raise ConfigError(f"options must be a mapping of names to values, got {type(options).__name__}")
    valid = option_names(representation)
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"representation {representation!r} has no option {key!r}{hint} (valid: {', '.join(valid)})"
            )


def _pick(cls: type, options: Mapping[str, Any] | None):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (options or {}).items() if k in names})


def naming_options(options: Mapping[str, Any] | None) -> NamingOptions:
    """The naming keys of ``options``, typed (the others left alone)."""
    return _pick(NamingOptions, options)


def representation_options(representation: str, options: Mapping[str, Any] | None):
    """The keys of ``options`` the builder of ``representation`` reads, as its options dataclass."""
    return _pick(option_class(representation), options)


@dataclass(frozen=True)
class TextGuidedOptions(KeywordOptions, PromptOptions):
    """Every key of the four text-guided representations: what their shared helpers read."""


def textguided_options(options: Mapping[str, Any] | None) -> TextGuidedOptions:
    """The text-guided keys of ``options``, typed (the others left alone)."""
    return _pick(TextGuidedOptions, options)
