"""Captions users already have: sidecar text files and caption tables in the folder.

Three sources, read by :func:`vlexplore.collection.scan_folder` (and through ``--captions FILE``):

- a **sidecar** ``photo.txt`` beside ``photo.jpg`` (same folder, same stem; its first line is the
  caption, so Tux Paint's ``lang.utf8=…`` translation lines below it are left out);
- a **caption table** in the folder itself: ``captions.csv`` (columns ``path, caption``) or
  ``captions.jsonl`` (one ``{"path": …, "caption": …}`` per line), paths relative to the folder;
- a table the caller names (``captions=`` / ``--captions FILE``), or a ``{relpath: caption}`` mapping.

When several give a caption for the same image, the one named by the caller wins, then
``captions.csv``, then ``captions.jsonl``, then the sidecar: the most deliberate source first.
Bad input never stops a scan: images without a caption get none; captions for files that are not
among the images, duplicate rows, unreadable rows and files that are not UTF-8 (read as
Windows-1252, else Latin-1) each give one line in :attr:`UserCaptions.notes`. Only a table the
caller names explicitly and that cannot be used at all raises :class:`ConfigError`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter, methodcaller
from pathlib import Path

from .errors import ConfigError

#: Caption tables looked for in the scanned folder, in order of precedence.
CAPTION_TABLES = ("captions.csv", "captions.jsonl")
#: Column (or key) names accepted for the image path and for its caption (case-insensitive).
PATH_KEYS = ("path", "relpath", "file", "filename", "image")
CAPTION_KEYS = ("caption", "text")
#: Longest caption kept (characters); a sidecar is read up to :data:`SIDECAR_MAX_BYTES`.
MAX_CAPTION_CHARS = 2000
SIDECAR_MAX_BYTES = 64 * 1024
#: Distinct captions of one image in one table are joined with this (as sampled captions are).
JOIN = " | "
#: Every spelling of a name that lower-cases to ``….txt`` (no other character lower-cases to ``.``, ``t`` or ``x``).
_TXT_ENDINGS = tuple(f".{t}{x}{u}" for t in "tT" for x in "xX" for u in "tT")


@dataclass
class UserCaptions:
    """The captions found for a collection.

    Attributes:
        texts: ``relpath → caption`` (non-empty, one line) for the images that have one.
        sources: source name (``captions.csv``, ``sidecar .txt``…) → images it captioned.
        notes: one line per problem met (extra rows, duplicates, encodings, unreadable rows).
    """

    texts: dict[str, str] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def decode_text(data: bytes) -> tuple[str, str | None]:
    """Bytes → text: UTF-8 (a BOM dropped), else Windows-1252, else Latin-1 (never fails).

    Returns:
        ``(text, encoding used when it was not UTF-8, else None)``.
    """
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1"


def clean_caption(text: object) -> str:
    """A caption on one line: white space runs (new lines too) become one space; cut to the limit."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return " ".join(str(text).split())[:MAX_CAPTION_CHARS]


def _key(raw: object, root: Path) -> str:
    """A table's path cell → a relpath as the scan spells it (``/`` separators, no ``./``)."""
    text = str(raw).strip().replace("\\", "/")
    if os.path.isabs(text):
        try:
            text = Path(text).resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            return text
    while text.startswith("./"):
        text = text[2:]
    return text


def _pick(keys: Iterable[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {str(k).strip().lower(): k for k in keys}
    return next((lowered[w] for w in wanted if w in lowered), None)


def read_caption_table(path: str | Path) -> tuple[list[tuple[object, object]], list[str]]:
    """The ``(path, caption)`` rows of a ``.csv`` or ``.jsonl`` caption table, and notes on it.

    Raises:
        ConfigError: the file cannot be read, has another suffix, or lacks a path or caption column.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ConfigError(
            f"caption file {path.name!r} must be a .csv (columns path, caption) or a .jsonl "
            '(lines like {"path": "a.jpg", "caption": "…"})'
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"caption file {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    text, encoding = decode_text(data)
    notes = [f"{path.name} is not UTF-8; read as {encoding}"] if encoding else []
    rows: list[tuple[object, object]] = []
    bad = 0
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        pk, ck = _pick(reader.fieldnames or (), PATH_KEYS), _pick(reader.fieldnames or (), CAPTION_KEYS)
        if pk is None or ck is None:
            raise ConfigError(
                f"caption file {path.name!r} needs a header with columns 'path' and 'caption' "
                f"(found: {', '.join(map(str, reader.fieldnames or [])) or 'none'})"
            )
        try:
            for row in reader:
                rows.append((row.get(pk), row.get(ck)))
        except csv.Error as exc:
            notes.append(f"{path.name}: rows after line {reader.line_num} cannot be parsed ({exc}); ignored")
    else:
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            pk = _pick(obj, PATH_KEYS) if isinstance(obj, dict) else None
            ck = _pick(obj, CAPTION_KEYS) if isinstance(obj, dict) else None
            if obj is None or pk is None or ck is None:
                bad += 1
                continue
            rows.append((obj[pk], obj[ck]))
        if bad and not rows:
            raise ConfigError(
                f'caption file {path.name!r} has no line like {{"path": "a.jpg", "caption": "…"}}'
            )
    bad += sum(1 for p, _ in rows if p is None or not str(p).strip())
    if bad:
        notes.append(f"{path.name}: {bad} row(s) without a path or caption ignored")
    return rows, notes


def _from_rows(
    rows: Iterable[tuple[object, object]], name: str, root: Path, wanted: set[str]
) -> tuple[dict[str, str], list[str]]:
    """Table rows → ``relpath → caption`` for the wanted images; extras and duplicates counted."""
    found: dict[str, list[str]] = {}
    extra: list[str] = []
    repeats = 0
    for raw_path, raw_caption in rows:
        if raw_path is None or not str(raw_path).strip():
            continue
        key = _key(raw_path, root)
        if key not in wanted:
            extra.append(key)
            continue
        repeats += key in found
        texts = found.setdefault(key, [])
        caption = clean_caption(raw_caption)
        if caption and caption not in texts:
            texts.append(caption)
    notes = []
    if extra:
        notes.append(
            f"{name}: {len(extra)} caption(s) for files that are not images of this folder, ignored "
            f"(e.g. {extra[0]!r})"
        )
    joined = sum(1 for t in found.values() if len(t) > 1)
    if repeats:
        notes.append(
            f"{name}: {repeats} repeated row(s) for images already listed"
            + (
                f"; {joined} image(s) with different captions keep them all, joined by '{JOIN.strip()}'"
                if joined
                else ""
            )
        )
    return {k: JOIN.join(t)[:MAX_CAPTION_CHARS] for k, t in found.items() if t}, notes


def _read_sidecar(path: str) -> tuple[str, str | None] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(SIDECAR_MAX_BYTES)
    except OSError:
        return None
    text, encoding = decode_text(data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    return clean_caption(first), encoding


def read_sidecars(root: Path, relpaths: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """``photo.txt`` beside ``photo.jpg`` → ``relpath → caption`` (first non-empty line), and notes.

    Each folder holding images is listed once; only the ``.txt`` files that match an image are opened.
    """
    rels = list(relpaths)
    listed: dict[str, dict[str, str]] = {}  # folder → lower-cased .txt name → its name
    for folder in dict.fromkeys(map(itemgetter(0), map(methodcaller("rpartition", "/"), rels))):
        try:
            names = os.listdir(root / folder if folder else root)
        except OSError:
            continue
        texts = {n.lower(): n for n in names if n.endswith(_TXT_ENDINGS)}
        if texts:
            listed[folder] = texts
    if not listed:
        return {}, []
    by_dir: dict[str, list[str]] = {}
    for rel in rels:
        folder = rel.rpartition("/")[0]
        if folder in listed:
            by_dir.setdefault(folder, []).append(rel)
    wanted: list[tuple[str, str]] = []
    for folder, in_folder in by_dir.items():
        texts = listed[folder]
        for rel in in_folder:
            stem = rel.rpartition("/")[2].rpartition(".")[0]
            name = texts.get(stem.lower() + ".txt")
            if name is not None:
                wanted.append((rel, str(root / folder / name if folder else root / name)))
    if not wanted:
        return {}, []
    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        read = list(pool.map(_read_sidecar, [p for _, p in wanted]))
    out: dict[str, str] = {}
    odd: list[str] = []
    for (rel, path), got in zip(wanted, read):
        if got is None:
            continue
        caption, encoding = got
        if encoding:
            odd.append(os.path.relpath(path, root).replace(os.sep, "/"))
        if caption:
            out[rel] = caption
    notes = []
    if odd:
        notes.append(
            f"{len(odd)} caption .txt file(s) are not UTF-8 (e.g. {odd[0]!r}); read as Windows-1252 or Latin-1"
        )
    return out, notes


def read_user_captions(
    root: str | Path,
    relpaths: Iterable[str],
    *,
    captions: str | Path | Mapping[str, str] | None = None,
    sidecars: bool = True,
) -> UserCaptions:
    """Every caption the user already has for the images ``relpaths`` of ``root``.

    Args:
        root: the scanned folder (table paths are relative to it).
        relpaths: the images (as the scan spells them).
        captions: a caption table (``.csv``/``.jsonl``) or a ``{relpath: caption}`` mapping that wins
            over what the folder holds; ``None`` = only the folder's own.
        sidecars: also read ``photo.txt`` beside ``photo.jpg``.

    Raises:
        ConfigError: ``captions`` names a file that is missing, unreadable or has no path/caption columns.
    """
    root = Path(root)
    rels = list(relpaths)
    wanted = set(rels)
    result = UserCaptions()
    layers: list[tuple[str, dict[str, str]]] = []
    rows: list[tuple[object, object]]
    if captions is not None:
        if isinstance(captions, Mapping):
            name, rows = "captions given", list(captions.items())
        else:
            name = Path(captions).name
            if not Path(captions).is_file():
                raise ConfigError(
                    f"caption file {str(captions)!r} does not exist (give a .csv or .jsonl file)"
                )
            rows, notes = read_caption_table(captions)
            result.notes.extend(notes)
        texts, notes = _from_rows(rows, name, root, wanted)
        layers.append((name, texts))
        result.notes.extend(notes)
    explicit = Path(captions).resolve() if isinstance(captions, (str, Path)) else None
    for table in CAPTION_TABLES:
        path = root / table
        if not path.is_file() or (explicit is not None and path.resolve() == explicit):
            continue
        try:
            rows, notes = read_caption_table(path)
        except ConfigError as exc:
            result.notes.append(f"{exc}; it is ignored")
            continue
        texts, more = _from_rows(rows, table, root, wanted)
        layers.append((table, texts))
        result.notes.extend(notes + more)
    if sidecars:
        texts, notes = read_sidecars(root, rels)
        layers.append(("sidecar .txt", texts))
        result.notes.extend(notes)
    for name, texts in layers:
        fresh = {k: v for k, v in texts.items() if k not in result.texts}
        if fresh:
            result.texts.update(fresh)
            result.sources[name] = len(fresh)
    return result


def merge_captions(collection, texts: list[str] | None) -> list[str]:
    """Each image's own caption (``collection.captions``) where it has one, else ``texts``' (or ``""``).

    The one place user captions meet model captions: the user's text is what they wrote about the
    image, so it wins; a captioner's (or the bundled label captions) only fills the gaps.
    """
    n = len(texts) if texts is not None else len(collection)
    own = getattr(collection, "captions", None) or [""] * n
    texts = list(texts) if texts is not None else [""] * n
    if not any(own):
        return texts
    return [mine or (theirs or "") for mine, theirs in zip(own, texts, strict=True)]
