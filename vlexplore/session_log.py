"""The pieces a saved session is made of.

Compact integer arrays, checksummed journal lines, and the edits as plain records replayed through
:mod:`vlexplore.edit`.

An edit record is a small dict, ``{"kind": ..., "log": "<one line for people>", ...arguments}``:

============== =============================================== ===================================
kind           arguments                                       effect
============== =============================================== ===================================
``rename``     ``cid``, ``name``                               :func:`vlexplore.edit.rename`
``merge``      ``ids``, ``name`` (optional)                    :func:`vlexplore.edit.merge`
``move``       ``indices`` (packed), ``target``                :func:`vlexplore.edit.move`
``new_cluster`` ``indices`` (packed), ``name``, ``source``     :func:`vlexplore.edit.new_cluster`
``selection``  ``name``, ``indices`` (packed)                  a named selection (labels unchanged)
============== =============================================== ===================================

``source`` says where a new cluster's images came from (``"map"``, ``"search: a red car"``…).
The edit functions are deterministic, so replaying the records on the clustering they started
from gives the same labels and names every time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import edit
from .config import ClusterConfig
from .errors import ConfigError, VlexploreError

FORMAT = "vlexplore-session"
VERSION = 1
EDIT_KINDS = ("rename", "merge", "move", "new_cluster", "selection")


class SessionError(VlexploreError):
    """A saved session cannot be read, is not one, or does not belong to the images at hand."""


#: Rows hashed per update in :func:`content_digest` (the rows joined first: one Python call per chunk).
DIGEST_CHUNK = 50_000


def content_digest(collection) -> str:
    """A digest of the images, in order: relative path and content key of each row of ``collection.items``.

    Kept on the collection while its ``items`` table is the same object (a re-cluster starts a session on
    the same images: hashing 100,000 rows again took 0.11 s of each).
    """
    items = collection.items
    memo = getattr(collection, "_content_digest", None)
    if memo is not None and memo[0] is items and memo[1] == len(items):
        return memo[2]
    h = hashlib.blake2b(digest_size=16)
    rels, keys = items["relpath"].tolist(), items["fingerprint"].tolist()
    for start in range(0, len(rels), DIGEST_CHUNK):  # one update per chunk: the same digest as one per row
        rows = zip(rels[start : start + DIGEST_CHUNK], keys[start : start + DIGEST_CHUNK])
        h.update("".join([f"{rel}\0{key}\n" for rel, key in rows]).encode("utf-8", "surrogateescape"))
    digest = h.hexdigest()
    with contextlib.suppress(AttributeError):  # a read-only stand-in for a collection is hashed each time
        collection._content_digest = (items, len(items), digest)
    return digest


# --------------------------------------------------------------------------- compact arrays


def pack_ints(values: Iterable[int] | np.ndarray) -> str:
    """Integers as text.

    Int32 little-endian, zlib-compressed, base64 (a labels array of 100,000 images with a few dozen clusters
    takes tens of kilobytes).
    """
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype="<i4")
    return base64.b64encode(zlib.compress(arr.tobytes(), 6)).decode("ascii")


def unpack_ints(text: object, *, what: str) -> np.ndarray:
    """The ``int64`` array :func:`pack_ints` made of ``text``.

    Raises:
        SessionError: ``text`` is not such a string (``what`` names the field in the message).
    """
    if not isinstance(text, str):
        raise SessionError(f"{what} is not a packed integer array (got {type(text).__name__})")
    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    except (ValueError, zlib.error) as exc:
        raise SessionError(f"{what} is damaged ({exc})") from None
    if len(raw) % 4:
        raise SessionError(f"{what} is damaged (its length is not a whole number of integers)")
    return np.frombuffer(raw, dtype="<i4").astype(np.int64)


# --------------------------------------------------------------------------- journal lines


def journal_line(record: Mapping[str, Any]) -> bytes:
    """One journal line: the CRC-32 of the JSON text in hex, a space, the JSON, a newline."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8")
    return f"{zlib.crc32(data):08x} ".encode("ascii") + data + b"\n"


def read_journal(raw: bytes) -> tuple[list[dict], str | None]:
    """The whole records of a journal, in order, and a note when it stops early.

    A line cut short by a crash (the last one, without its newline or with a bad checksum) and
    anything after a damaged line are left out; the note says how many lines that was.
    """
    records: list[dict] = []
    lines = raw.split(b"\n")
    complete = lines[:-1]  # the part after the last newline never finished
    for i, line in enumerate(complete):
        record = _parse_line(line)
        if record is None:
            return records, f"the journal is damaged at line {i + 1}; {len(complete) - i} line(s) left out"
        records.append(record)
    if lines[-1].strip():
        return records, "the journal's last line was cut short (a crash while writing it) and is left out"
    return records, None


def _parse_line(line: bytes) -> dict | None:
    head, _, body = line.partition(b" ")
    try:
        if len(head) != 8 or int(head, 16) != zlib.crc32(body):
            return None
        record = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("seq"), int) else None


# --------------------------------------------------------------------------- edits


def make_edit(kind: str, log: str, **args: Any) -> dict:
    """An edit record (index arrays packed); see the module docstring for the kinds."""
    if kind not in EDIT_KINDS:
        raise ConfigError(f"unknown edit {kind!r}; choose one of {', '.join(EDIT_KINDS)}")
    out: dict[str, Any] = {"kind": kind, "log": str(log)}
    for key, value in args.items():
        if value is None:
            continue
        if key == "indices":
            out[key] = pack_ints(np.asarray(value, dtype=np.int64))
        elif key == "ids":
            out[key] = [int(v) for v in value]
        elif key in ("cid", "target"):
            out[key] = int(value)
        else:
            out[key] = str(value)
    return out


def apply_edit(
    labels: np.ndarray, names: Mapping[int, str], selections: Mapping[str, np.ndarray], record: Mapping
) -> tuple[np.ndarray, dict[int, str], dict[str, np.ndarray]]:
    """``(labels, names, selections)`` after ``record``; inputs are not modified.

    Raises:
        ConfigError: the edit does not apply (an unknown cluster, an index out of range…).
        SessionError: the record is not an edit.
    """
    kind = record.get("kind")
    sel = dict(selections)
    try:
        if kind == "rename":
            return labels, edit.rename(names, int(record["cid"]), str(record["name"])), sel
        if kind == "merge":
            new_labels, new_names, _ = edit.merge(
                labels, names, [int(i) for i in record["ids"]], new_name=record.get("name")
            )
            return new_labels, new_names, sel
        if kind == "move":
            moved = edit.move(labels, _indices(record), int(record["target"]))
            return moved, edit.prune_names(moved, names), sel
        if kind == "new_cluster":
            new_labels, new_names, _ = edit.new_cluster(labels, names, _indices(record), str(record["name"]))
            return new_labels, new_names, sel
        if kind == "selection":
            idx = _indices(record)
            if idx.size and (idx.min() < 0 or idx.max() >= len(labels)):
                raise ConfigError(f"selection indices must lie in [0, {len(labels)})")
            sel[" ".join(str(record["name"]).split()) or "selection"] = idx
            return labels, dict(names), sel
    except (KeyError, TypeError) as exc:
        raise SessionError(f"a saved {kind} edit lacks its {exc}") from None
    raise SessionError(f"unknown saved edit {kind!r}")


def _indices(record: Mapping) -> np.ndarray:
    return unpack_ints(record["indices"], what=f"the images of a saved {record.get('kind')} edit")


def replay(
    labels: np.ndarray, names: Mapping[int, str], edits: Iterable[Mapping]
) -> tuple[np.ndarray, dict[int, str], dict[str, np.ndarray]]:
    """The clustering ``(labels, names)`` after every edit in order, and the named selections."""
    cur_labels = np.asarray(labels, dtype=np.int64)
    cur_names = {int(k): str(v) for k, v in names.items()}
    selections: dict[str, np.ndarray] = {}
    for record in edits:
        cur_labels, cur_names, selections = apply_edit(cur_labels, cur_names, selections, record)
    return cur_labels, cur_names, selections


# --------------------------------------------------------------------------- documents


def read_config(data: object) -> ClusterConfig:
    """The saved clustering config as a :class:`ClusterConfig`; :class:`SessionError` when it is not one."""
    if not isinstance(data, Mapping):
        raise SessionError("the saved clustering config is not a record")
    try:
        return ClusterConfig(**dict(data))
    except (TypeError, ConfigError) as exc:
        raise SessionError(f"the saved clustering config is not usable: {exc}") from None


def config_dict(cfg: ClusterConfig) -> dict:
    """``cfg`` as JSON-ready data."""
    from .export import to_jsonable

    return to_jsonable(cfg.to_dict())


def check_doc(doc: object, *, where: str) -> dict:
    """``doc`` when it is a whole session record of a version this code reads, else :class:`SessionError`."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SessionError(f"{where} is not a vlexplore session (no 'format': '{FORMAT}' field)")
    version = doc.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise SessionError(f"{where} is session format version {version!r}; this vlexplore reads 1…{VERSION}")
    for key, kind in (
        ("id", str),
        ("folder", str),
        ("model_id", str),
        ("images", int),
        ("content_digest", str),
        ("config", dict),
        ("labels", str),
        ("names", dict),
        ("edits", list),
        ("seq", int),
    ):
        if not isinstance(doc.get(key), kind):
            raise SessionError(f"{where} is damaged: field {key!r} is missing or not a {kind.__name__}")
    labels = unpack_ints(doc["labels"], what=f"the labels in {where}")
    if len(labels) != doc["images"]:
        raise SessionError(f"{where} is damaged: {len(labels)} labels for {doc['images']} images")
    try:
        names = {int(k): str(v) for k, v in doc["names"].items()}
    except ValueError:
        raise SessionError(f"{where} is damaged: cluster names keyed by something other than ids") from None
    if not all(isinstance(e, dict) for e in doc["edits"]):
        raise SessionError(f"{where} is damaged: an edit is not a record")
    read_config(doc["config"])
    try:
        replay(labels, names, doc["edits"])
    except ConfigError as exc:
        raise SessionError(f"{where} is damaged: a saved edit does not apply ({exc})") from None
    return doc
