"""Generate ``vlexplore/data/nouns.txt``: concrete, common English nouns from WordNet 3.0.

The noun bank of language-assisted clustering (TAC, Li et al. 2024) is WordNet's nouns.
All 82,000 of them are mostly rare or abstract ("abaca", "abnegation"), which slows every
run and crowds the selection with words nobody would name a cluster with, so this keeps:

* synsets under ``physical_entity.n.01`` (hypernym edges, not instance edges: no proper names)
  in the lexicographer files of visible things: animals, artifacts, body parts, food,
  natural objects, people (see :data:`PERSON_ROOTS`), plants, substances, places and natural
  phenomena;
* lemmas of one or two words, lower-case letters (plus ``-`` and ``'``), 3–30 characters;
* whose physical sense is among the lemma's first :data:`MAX_SENSE_RANK` senses (WordNet
  orders senses by frequency: "mind" is not kept for its rare physical sense);
* common in English: wordfreq's Zipf frequency ≥ :data:`MIN_ZIPF` for one word; two words
  (``ankle boot``, ``t-shirt``) are kept when the phrase is sense-tagged in SemCor (WordNet's
  own counts) or wordfreq's estimate for it is ≥ :data:`MIN_ZIPF_TWO` (wordfreq estimates a
  phrase from its words, so this asks for two very common words: "t-shirt", "ice cream");
* minus every lemma one of whose noun senses WordNet glosses as offensive, a slur,
  disparaging, derogatory, vulgar, obscene or sexual (they would surface as names of
  clusters of people's photos).

The data comes from Debian's ``wordnet-base`` (``/usr/share/wordnet``); the frequencies from
the PyPI package ``wordfreq`` (only this generator needs it; its data is not shipped)::

    sudo apt-get install wordnet-base
    pip install wordfreq
    python bench/make_nouns.py            # writes vlexplore/data/nouns.txt and WORDNET_LICENSE

The output is deterministic (sorted) and committed, so the library never needs either package.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
OUT_DIR = Path(__file__).resolve().parent.parent / "vlexplore" / "data"
PHYSICAL_ENTITY = "00001930"
#: Lexicographer files kept (WordNet's lexnames): things one can photograph.
LEXFILES = {
    5: "noun.animal",
    6: "noun.artifact",
    8: "noun.body",
    13: "noun.food",
    15: "noun.location",
    17: "noun.object",
    18: "noun.person",
    19: "noun.phenomenon",
    20: "noun.plant",
    27: "noun.substance",
}
#: noun.person is limited to these subtrees (occupations, players, performers, soldiers, travellers,
#: children) and :data:`PEOPLE`: the rest of it names people by ethnicity, belief, sexuality, health
#: or character, which is no name for a cluster of someone's photos.
PERSON_ROOTS = {
    "09632518": "worker.n.01",
    "09613191": "contestant.n.01",
    "10415638": "performer.n.01",
    "10582746": "serviceman.n.01",
    "09629752": "traveler.n.01",
    "09622049": "juvenile.n.01",
    "10480253": "professional.n.01",
}
PEOPLE = {
    "person",
    "people",
    "man",
    "woman",
    "adult",
    "child",
    "baby",
    "boy",
    "girl",
    "bride",
    "bridegroom",
    "groom",
}
#: Kept by the rules above but a slur in common use.
DENY = {"gypsy"}
MAX_SENSE_RANK = 1
MIN_ZIPF = 2.5
MIN_ZIPF_TWO = 4.5
OFFENSIVE = re.compile(
    r"\b(offensive|slur|disparaging|derogatory|vulgar|obscene|contemptuous|insulting|prostitut|sexual|promiscu|lewd)",
    re.I,
)
WORD = re.compile(r"^[a-z][a-z']*$")


def read_synsets(path: Path) -> dict[str, tuple[int, list[str], list[str], str]]:
    """``data.noun`` → offset → (lexfile number, lemmas, hypernym offsets, gloss)."""
    synsets = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            offset, lexfile, n_words = fields[0], int(fields[1]), int(fields[3], 16)
            words = [fields[4 + 2 * i] for i in range(n_words)]
            pos = 4 + 2 * n_words
            n_ptrs = int(fields[pos])
            hypernyms = [fields[pos + 2 + 4 * i] for i in range(n_ptrs) if fields[pos + 1 + 4 * i] == "@"]
            synsets[offset] = (lexfile, words, hypernyms, gloss.strip())
    return synsets


def read_index(path: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """``index.noun`` → (lemma → its synset offsets, most frequent sense first; lemma → senses tagged in SemCor)."""
    order, tagged = {}, {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split()
            order[fields[0]] = fields[-int(fields[2]) :]  # the synset offsets close the line
            tagged[fields[0]] = int(fields[5 + int(fields[3])])
    return order, tagged


def below(synsets: dict, root: str) -> set[str]:
    """Offsets of the synsets that have ``root`` among their (non-instance) hypernym ancestors."""
    memo: dict[str, bool] = {root: True}

    def below(offset: str, depth: int = 0) -> bool:
        if offset in memo:
            return memo[offset]
        memo[offset] = False  # guards against cycles while recursing
        memo[offset] = depth < 40 and any(below(h, depth + 1) for h in synsets[offset][2])
        return memo[offset]

    return {o for o in synsets if below(o)}


def make_nouns(wordnet_dir: Path = WORDNET_DIR) -> list[str]:
    """The filtered noun list (spaces between words), sorted."""
    try:
        from wordfreq import zipf_frequency
    except ImportError as exc:
        raise SystemExit("this generator needs the package wordfreq: pip install wordfreq") from exc
    synsets = read_synsets(wordnet_dir / "data.noun")
    order, tagged = read_index(wordnet_dir / "index.noun")
    people = set().union(*(below(synsets, root) for root in PERSON_ROOTS))
    concrete = {
        o
        for o in below(synsets, PHYSICAL_ENTITY)
        if synsets[o][0] in LEXFILES and (synsets[o][0] != 18 or o in people)
    }
    offensive = {o for o, s in synsets.items() if OFFENSIVE.search(s[3])}
    kept = set()
    for lemma, offsets in order.items():
        if (
            lemma in DENY
            or any(o in offensive for o in offsets)
            or (lemma not in PEOPLE and not any(o in concrete for o in offsets[:MAX_SENSE_RANK]))
        ):
            continue
        text = lemma.replace("_", " ")
        words = re.split(r"[ -]", text)  # "t-shirt" and "ankle boot" are two words each
        if len(words) > 2 or not 3 <= len(text) <= 30 or not all(WORD.match(w) for w in words):
            continue
        zipf = zipf_frequency(text, "en")
        if zipf >= (MIN_ZIPF if len(words) == 1 else MIN_ZIPF_TWO) or (
            len(words) == 2 and tagged.get(lemma, 0) > 0
        ):
            kept.add(text)
    return sorted(kept)


def licence_text(wordnet_dir: Path = WORDNET_DIR) -> str:
    """WordNet's licence, as printed at the top of its data files."""
    lines = []
    with (wordnet_dir / "data.noun").open(encoding="utf-8") as f:
        for line in f:
            if not line.startswith("  "):
                break
            lines.append(re.sub(r"^\s+\d+ ?", "", line).rstrip())
    return "\n".join(lines).strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wordnet-dir", type=Path, default=WORDNET_DIR)
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    a = ap.parse_args(argv)
    if not (a.wordnet_dir / "data.noun").is_file():
        print(
            f"{a.wordnet_dir} has no data.noun; install it: sudo apt-get install wordnet-base",
            file=sys.stderr,
        )
        return 2
    nouns = make_nouns(a.wordnet_dir)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    header = (
        "# Concrete, common English nouns from WordNet 3.0 (Princeton University; licence in WORDNET_LICENSE).\n"
        "# Generated by bench/make_nouns.py; one noun per line; do not edit by hand.\n"
    )
    (a.out_dir / "nouns.txt").write_text(header + "\n".join(nouns) + "\n", encoding="utf-8")
    (a.out_dir / "WORDNET_LICENSE").write_text(licence_text(a.wordnet_dir), encoding="utf-8")
    print(f"wrote {len(nouns)} nouns to {a.out_dir / 'nouns.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
