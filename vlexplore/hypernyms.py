"""General names for clusters from WordNet's hypernyms: "black grouse, partridge, black stork" → *bird*.

Vocabulary naming (:mod:`vlexplore.naming`) picks the words that fit a cluster best, and the best fitting
words are specific ("kite", "hartebeest"). A person names the group by what its words have in common.
For each cluster, its name and keywords are looked up in a table of WordNet 3.0 ancestors
(``data/hypernyms.json``, built by ``bench/make_hypernyms.py`` for the ImageNet classes and the noun
bank); the nearest ancestor that at least :data:`COVERAGE` of them share becomes the short name, and the
specific name moves to the front of the keywords. Too abstract ancestors ("object", "organism",
"artifact", "placental") never name a cluster, and a general name goes to one cluster only (the one
whose words it covers best); the others keep their specific names. Words the table does not know (a
user's own vocabulary, another language) leave their cluster as it was.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "hypernyms.json"
#: Share of a cluster's words (its name and keywords) an ancestor must cover to name the cluster.
COVERAGE = 0.6
#: Ancestors too abstract (or too technical) to say what a cluster is.
ABSTRACT = frozenset(
    {
        "entity",
        "physical entity",
        "object",
        "whole",
        "living thing",
        "organism",
        "artifact",
        "instrumentality",
        "matter",
        "solid",
        "substance",
        "abstraction",
        "thing",
        "part",
        "unit",
        "causal agent",
        "relation",
        "attribute",
        "measure",
        "group",
        "psychological feature",
        "chordate",
        "vertebrate",
        "placental",
        "metatherian",
        "spermatophyte",
        "vascular plant",
        "angiosperm",
        "game",
        "device",
        "implement",
        "commodity",
        "structure",
        "covering",
        "container",
        "equipment",
        "material",
        "natural object",
        "invertebrate",
        "arthropod",
        "aquatic vertebrate",
        "foodstuff",
        "food",
        "produce",
        "way",
        "conveyance",
        "person",
        "worker",
        "creation",
        "representation",
        "system",
        "location",
        "region",
        "area",
    }
)


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, list[str]]:
    try:
        data = json.loads(DATA.read_text("utf-8"))
    except (OSError, ValueError):  # pragma: no cover - the file ships with the package
        return {}
    names = data["names"]
    return {w: [names[i] for i in idx] for w, idx in data["words"].items()}


def ancestors(word: str) -> list[str]:
    """``word``'s WordNet ancestors, nearest first (``[]`` for a word the table does not know)."""
    table = _table()
    return table.get(word) or table.get(word.lower()) or []


def common_name(words: list[str], *, coverage: float = COVERAGE) -> tuple[str | None, float]:
    """The non-abstract ancestor shared by the most of ``words`` (at least ``coverage`` of them).

    The nearest of those on a tie → ``(name, share)``; ``(None, 0)`` when none is shared that widely.

    "Nearest" is the smallest mean distance (rank in each word's ancestor list) over the words that have it,
    so "bird" names five birds rather than "animal", and "game bird" names three game birds and a stork
    only when nothing covers more.
    """
    chains = [ancestors(w) for w in words]
    known = [c for c in chains if c]
    if len(known) < 2:
        return None, 0.0
    best: tuple[float, float, str] | None = None
    for name in {a for c in known for a in c if a not in ABSTRACT}:
        having = [c.index(name) for c in known if name in c]
        share = len(having) / len(chains)
        if share >= coverage:
            key = (-share, sum(having) / len(having), name)
            if best is None or key < best:
                best = key
    return (best[2], -best[0]) if best else (None, 0.0)


def general_names(
    names: Mapping[int, str],
    keywords: Mapping[int, list[str]],
    *,
    fixed: Collection[int] = (),
    coverage: float = COVERAGE,
    n_keywords: int = 5,
) -> tuple[dict[int, str], dict[int, list[str]], dict[int, str]]:
    """Give clusters general names where their words share one (see the module doc).

    Args:
        names: cluster id → specific name (noise ``-1`` is left alone).
        keywords: cluster id → its keywords.
        fixed: clusters whose names stay (prototype prompts).
        coverage: see :data:`COVERAGE`.
        n_keywords: the specific words kept per renamed cluster.

    Returns:
        ``(names, keywords, general)``; ``general`` maps each renamed cluster to its new name.
    """
    names, keywords = dict(names), {c: list(v) for c, v in keywords.items()}
    taken = {names[c].lower() for c in names if c in fixed or c == -1}
    offers: dict[str, list[tuple[float, int]]] = {}
    for c in names:
        if c == -1 or c in fixed:
            continue
        name, share = common_name([names[c], *keywords.get(c, [])], coverage=coverage)
        if name and name.lower() != names[c].lower() and name.lower() not in taken:
            offers.setdefault(name, []).append((share, c))
    general: dict[int, str] = {}
    for name, bids in offers.items():
        share, c = max(bids)  # the cluster it describes best; a tie goes to the higher id
        general[c] = name
    existing = {v.lower() for c, v in names.items() if c not in general}
    for c, name in general.items():
        if name.lower() in existing:  # another cluster's specific name already says it
            continue
        keywords[c] = [names[c], *[k for k in keywords.get(c, []) if k != names[c]]][:n_keywords]
        names[c] = name
    return names, keywords, {c: n for c, n in general.items() if names[c] == n}
