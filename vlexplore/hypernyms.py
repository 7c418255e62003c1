"""General names for clusters from WordNet's hypernyms: "black grouse, partridge, black stork" → *bird*.

Vocabulary naming (:mod:`vlexplore.naming`) picks the words that fit a cluster best, and the best fitting
words are specific ("kite", "hartebeest"). A person names the group by what its words have in common.
For each cluster, its name and its top words by contrastive score (:data:`GENERAL_WORDS`; its keywords
when no ranking is given) are looked up in a table of WordNet 3.0 ancestors (``data/hypernyms.json``,
built by ``bench/make_hypernyms.py`` for the ImageNet classes and the noun bank); the nearest ancestor
that at least :data:`COVERAGE` of them share becomes the short name, and the specific name moves to the
front of the keywords. Judging eight ranked words rather than the five shown (which are each given to
one cluster only) lets a group's shared ancestor show through a stray word ("amphibian, forklift, tow
truck, minibus, …" → *wheeled vehicle*; ``bench/results/naming.json``). Too abstract ancestors ("object", "organism",
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
#: Share of a cluster's words (its name and top words) an ancestor must cover to name the cluster.
COVERAGE = 0.5
#: Ranked words per cluster (besides its name) whose ancestors are compared.
GENERAL_WORDS = 8
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


def shared_ancestors(words: list[str], *, coverage: float = COVERAGE) -> list[tuple[str, float]]:
    """Every non-abstract ancestor that at least two of ``words`` and at least ``coverage`` of them share.

    As ``(name, share)``, best first: the most shared, then the nearest (smallest mean distance, i.e. rank in
    each word's ancestor list, over the words that have it), so "bird" names five birds rather than "animal",
    and "game bird" names three game birds and a stork only when nothing covers more.
    """
    chains = [ancestors(w) for w in words]
    known = [c for c in chains if c]
    if len(known) < 2:
        return []
    keys = []
    for name in {a for c in known for a in c if a not in ABSTRACT}:
        having = [c.index(name) for c in known if name in c]
        share = len(having) / len(chains)
        if len(having) >= 2 and share >= coverage:
            keys.append((-share, sum(having) / len(having), name))
    return [(name, -neg) for neg, _, name in sorted(keys)]


def common_name(words: list[str], *, coverage: float = COVERAGE) -> tuple[str | None, float]:
    """The best of :func:`shared_ancestors` → ``(name, share)``; ``(None, 0)`` when none is shared that widely."""
    found = shared_ancestors(words, coverage=coverage)
    return found[0] if found else (None, 0.0)


def general_names(
    names: Mapping[int, str],
    keywords: Mapping[int, list[str]],
    *,
    fixed: Collection[int] = (),
    coverage: float = COVERAGE,
    n_keywords: int = 5,
    ranked: Mapping[int, list[str]] | None = None,
) -> tuple[dict[int, str], dict[int, list[str]], dict[int, str]]:
    """Give clusters general names where their words share one (see the module doc).

    A general name goes to the cluster whose words it covers best (a tie: the higher id); a cluster that
    loses it takes its next shared ancestor that is not broader than a name already given ("mammal" to
    the bears, then "ungulate" rather than "animal" to the antelopes), or keeps its specific name.

    Args:
        names: cluster id → specific name (noise ``-1`` is left alone).
        keywords: cluster id → its keywords.
        fixed: clusters whose names stay (prototype prompts).
        ranked: cluster id → its best words by score, best first (``ClusterNaming.top_words``); the
            ancestors of the name and these are compared. ``None``: the name and its keywords.
        coverage: see :data:`COVERAGE`.
        n_keywords: the specific words kept per renamed cluster.

    Returns:
        ``(names, keywords, general)``; ``general`` maps each renamed cluster to its new name.
    """
    names, keywords = dict(names), {c: list(v) for c, v in keywords.items()}
    taken = {names[c].lower() for c in names if c in fixed or c == -1}
    options: dict[int, list[tuple[str, float]]] = {}
    for c in names:
        if c == -1 or c in fixed:
            continue
        pool = keywords.get(c, []) if ranked is None else ranked.get(c, [])
        pool = [names[c], *[w for w in pool if w != names[c]]]
        options[c] = [
            (n, sh)
            for n, sh in shared_ancestors(pool, coverage=coverage)
            if n.lower() != names[c].lower() and n.lower() not in taken
        ]
    general: dict[int, str] = {}
    broader: set[str] = set()  # ancestors of the names given: they would not tell the clusters apart
    while True:
        bids: dict[str, list[tuple[float, int]]] = {}
        for c, opts in options.items():
            opts[:] = [(n, sh) for n, sh in opts if n.lower() not in taken and n.lower() not in broader]
            if c not in general and opts:
                bids.setdefault(opts[0][0], []).append((opts[0][1], c))
        if not bids:
            break
        for name, cands in bids.items():
            _, c = max(cands)  # the cluster it describes best; a tie goes to the higher id
            general[c] = name
            taken.add(name.lower())
            broader.update(a.lower() for a in ancestors(name))
    existing = {v.lower() for c, v in names.items() if c not in general}
    for c, name in general.items():
        if name.lower() in existing:  # another cluster's specific name already says it
            continue
        keywords[c] = [names[c], *[k for k in keywords.get(c, []) if k != names[c]]][:n_keywords]
        names[c] = name
    return names, keywords, {c: n for c, n in general.items() if names[c] == n}
