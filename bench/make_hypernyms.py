"""Build ``vlexplore/data/hypernyms.json``: each naming word's WordNet ancestors, for general cluster names.

For every ImageNet class (by its WordNet id) and every noun of ``vlexplore/data/nouns.txt`` (its first
sense), the chain of hypernyms up to ``entity`` (first hypernym at each step), as names (the first lemma of
each synset, underscores as spaces). :func:`vlexplore.naming.general_names` reads it to call a cluster of
"black grouse, partridge, black stork" a *bird*. Stored as a table of names and, per word, the
indices of its ancestors, nearest first. WordNet 3.0 comes from Debian's ``wordnet-base``
(Princeton licence, in ``vlexplore/data/WORDNET_LICENSE``)::

    sudo apt-get install wordnet-base
    python bench/make_hypernyms.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDNET = Path("/usr/share/wordnet")
OUT = ROOT / "vlexplore" / "data" / "hypernyms.json"


def read_nouns(wordnet: Path) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """``(offset → first lemma, offset → first hypernym offset, lemma → offsets by sense)`` of the noun files."""
    name, parents, senses = {}, {}, {}
    for line in (wordnet / "data.noun").read_text("latin-1").splitlines():
        if line.startswith(" "):
            continue
        head = line.split(" | ", 1)[0].split()
        offset, n_words = head[0], int(head[3], 16)
        name[offset] = head[4].replace("_", " ")
        at = 4 + 2 * n_words
        for i in range(int(head[at])):
            symbol, target = head[at + 1 + 4 * i], head[at + 2 + 4 * i]
            if symbol in ("@", "@i"):
                parents.setdefault(offset, []).append(target)
    for line in (wordnet / "index.noun").read_text("latin-1").splitlines():
        if line.startswith(" "):
            continue
        parts = line.split()
        n_synsets = int(parts[2])
        senses[parts[0].replace("_", " ")] = parts[-n_synsets:]
    return name, parents, senses


def ancestors(offset: str, name: dict[str, str], parents: dict[str, list[str]]) -> list[str]:
    """Every hypernym on every path up to ``entity``, nearest first (breadth first), each once."""
    out: list[str] = []
    seen, frontier = {offset}, [offset]
    while frontier:
        nxt = []
        for node in frontier:
            for up in parents.get(node, []):
                if up not in seen:
                    seen.add(up)
                    nxt.append(up)
                    if name[up] not in out:
                        out.append(name[up])
        frontier = nxt
    return out


def main() -> None:
    if not (WORDNET / "data.noun").is_file():
        sys.exit("needs WordNet 3.0: sudo apt-get install wordnet-base")
    sys.path.insert(0, str(ROOT))
    from vlexplore.models.bundled import imagenet_class_names

    name, parents, senses = read_nouns(WORDNET)
    info = ROOT / ".venv" / "lib"
    synsets_file = next(info.glob("python*/site-packages/timm/data/_info/imagenet_synsets.txt"))
    table: dict[str, list[str]] = {}
    for wnid, names in zip(synsets_file.read_text().split(), imagenet_class_names()):
        table[names[0]] = ancestors(wnid[1:], name, parents)
    for noun in (ROOT / "vlexplore" / "data" / "nouns.txt").read_text("utf-8").splitlines():
        noun = noun.strip()
        if noun and not noun.startswith("#") and noun not in table and noun.lower() in senses:
            table[noun] = ancestors(senses[noun.lower()][0], name, parents)
    names = sorted({a for chain in table.values() for a in chain})
    index = {n: i for i, n in enumerate(names)}
    data = {"names": names, "words": {w: [index[a] for a in chain] for w, chain in sorted(table.items())}}
    OUT.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", "utf-8")
    print(f"{OUT}: {len(table)} words, {OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
