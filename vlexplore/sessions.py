"""Saved work: a user's clustering and hand edits kept on disk, keyed by folder and model, reopened later.

Layout under the cache root (:func:`vlexplore.config.default_cache_dir`, or the ``cache_dir`` given)::

    sessions/<id>/session.json     the snapshot: clustering config, labels (packed), names, edits so far
    sessions/<id>/journal.log      edits since the snapshot, one checksummed line each, fsynced

``<id>`` is a hash of the resolved folder and the model id. Each edit is appended to the journal
and fsynced before :meth:`Session.record` returns, so a ``kill -9`` right after loses nothing; a
line cut short by a crash is recognised by its checksum and left out. Every
:data:`SNAPSHOT_EVERY` lines the edits are folded into a new snapshot (written atomically) and the
journal starts over; journal lines carry sequence numbers, so a crash between the two steps
replays nothing twice. The labels are stored, not only the config, with a digest of the images'
paths and content keys: a session reopens only on the images it was made on.

The snapshot format is also the export format (one JSON file, ``format`` and ``version`` fields);
importing checks it completely before anything is written, and a damaged or foreign file is refused
with one line. Nothing here deletes a session except :func:`delete_session`: a damaged one is moved
aside when a new session starts in its place, and one with edits that a new clustering or an import
replaces is kept as an export (the newest :data:`KEEP_REPLACED` of each folder and model).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .config import ClusterConfig, default_cache_dir
from .errors import ConfigError
from .fsutil import atomic_write_bytes, fsync_dir
from .session_log import (
    FORMAT,
    VERSION,
    SessionError,
    apply_edit,
    check_doc,
    config_dict,
    content_digest,
    journal_line,
    make_edit,
    pack_ints,
    read_config,
    read_journal,
    replay,
    unpack_ints,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "Session",
    "SessionError",
    "SessionInfo",
    "content_digest",
    "delete_session",
    "export_session",
    "import_session",
    "list_sessions",
    "open_session",
    "session_id",
    "sessions_dir",
    "start_session",
]

SNAPSHOT_EVERY = 32
KEEP_REPLACED = 10  # exports of replaced sessions kept per folder and model
SNAPSHOT, JOURNAL = "session.json", "journal.log"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sessions_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where sessions are kept: ``<cache root>/sessions``."""
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "sessions"


def session_id(folder: str | os.PathLike, model_id: str) -> str:
    """The key of a session: 16 hex digits of a hash of the resolved folder and the model id."""
    text = f"{Path(folder).expanduser().resolve()}\0{model_id}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    """One line of :func:`list_sessions`. ``problem`` is set (and the rest may be empty) for a damaged one."""

    id: str
    folder: str
    model_id: str
    images: int
    edits: int
    method: str
    updated_utc: str
    problem: str | None = None
    model_name: str = ""


class Session:
    """A saved session, open for recording. Read ``labels``, ``names``, ``selections`` for the current state.

    Attributes:
        id, folder, model_id, images, digest: what it belongs to.
        config: the :class:`ClusterConfig` of its clustering; base_labels, base_names: that clustering's result.
        edits: the edit records applied since (undone ones removed), oldest first.
        labels ``int64 (n,)``, names, selections (name → indices ``int64``): the state after the edits.
        note: set when the journal was cut short by a crash (the whole lines before it were kept).
    """

    def __init__(self, directory: Path, doc: dict, edits: list[dict], seq: int, note: str | None = None):
        self.directory = directory
        self.id: str = doc["id"]
        self.folder: str = doc["folder"]
        self.model_id: str = doc["model_id"]
        self.model_name: str = str(doc.get("model") or doc["model_id"])
        self.images: int = doc["images"]
        self.digest: str = doc["content_digest"]
        self.config: ClusterConfig = read_config(doc["config"])
        self.base_labels: np.ndarray = unpack_ints(doc["labels"], what="the saved labels")
        self.base_names: dict[int, str] = {int(k): str(v) for k, v in doc["names"].items()}
        self.created_utc: str = doc.get("created_utc", "")
        self.updated_utc: str = doc.get("updated_utc", "")
        self.edits = list(edits)
        self.seq = seq
        self.note = note
        self._since_snapshot = 0
        self._refresh()
        self._seen = self._stamp()

    # -- reading ------------------------------------------------------------------------
    def _refresh(self) -> None:
        self.labels, self.names, self.selections = replay(self.base_labels, self.base_names, self.edits)

    journal = property(lambda self: self.directory / JOURNAL, doc="The session's edit journal file.")

    def matches(self, collection) -> bool:
        """The session was made on exactly these images (same paths and contents, same order)."""
        return len(collection) == self.images and content_digest(collection) == self.digest

    def check(self, collection) -> None:
        """Raise :class:`SessionError` unless :meth:`matches`."""
        if not self.matches(collection):
            raise SessionError(
                f"this session was saved on other images ({self.images:,} then, {len(collection):,} now, or "
                "files changed); it is kept as it was — start afresh or delete it"
            )

    def document(self) -> dict:
        """The session as one JSON-ready record (the snapshot and export format)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "id": self.id,
            "folder": self.folder,
            "model_id": self.model_id,
            "model": self.model_name,
            "images": self.images,
            "content_digest": self.digest,
            "config": config_dict(self.config),
            "labels": pack_ints(self.base_labels),
            "names": {str(k): v for k, v in self.base_names.items()},
            "edits": self.edits,
            "seq": self.seq,
            "created_utc": self.created_utc,
            "updated_utc": self.updated_utc,
        }

    # -- writing ------------------------------------------------------------------------
    def record(self, kind: str, log: str, **args: Any) -> tuple[np.ndarray, dict[int, str]]:
        """Apply an edit (see :mod:`vlexplore.session_log`), write it to disk durably, return ``(labels, names)``.

        Raises:
            ConfigError: the edit does not apply; nothing is written.
        """
        record = make_edit(kind, log, **args)
        self._catch_up()
        self.labels, self.names, self.selections = apply_edit(
            self.labels, self.names, self.selections, record
        )
        self.edits.append(record)
        self._append({"op": "edit", "edit": record})
        return self.labels, self.names

    def undo(self) -> str | None:
        """Undo the last edit (durably); returns its log line, or ``None`` when there is nothing to undo."""
        self._catch_up()
        if not self.edits:
            return None
        last = self.edits.pop()
        self._refresh()
        self._append({"op": "undo"})
        return str(last.get("log", last.get("kind")))

    def _append(self, op: dict) -> None:
        self.seq += 1
        self.updated_utc = _now()
        line = journal_line({"seq": self.seq, "utc": self.updated_utc, **op})
        new = not self.journal.exists()
        with open(self.journal, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        if new:
            fsync_dir(self.directory)
        self._since_snapshot += 1
        if self._since_snapshot >= SNAPSHOT_EVERY:
            self.snapshot()
        self._seen = self._stamp()

    def _stamp(self) -> tuple:
        """What the files look like now: another writer (a second browser tab) changes it."""
        out: list[tuple[int, int, int] | None] = []
        for path in (self.journal, self.directory / SNAPSHOT):
            try:
                st = os.stat(path)
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
        return tuple(out)

    def _catch_up(self) -> None:
        """Read the session again when someone else wrote to it since this object last did.

        So an edit goes on top of theirs instead of beside it (sequence numbers would then hide one of the
        two).
        """
        if self._stamp() == self._seen:
            return
        try:
            fresh = _load(self.directory)
        except SessionError:
            return  # unreadable now: keep this state; the next snapshot writes it whole
        if fresh.id == self.id:
            self.__dict__.update(fresh.__dict__)

    def snapshot(self) -> None:
        """Fold the journal into a new snapshot (atomic, durable), then start the journal over."""
        _write_snapshot(self.directory, self.document())
        atomic_write_bytes(self.journal, b"", durable=True)
        self._since_snapshot = 0


# ------------------------------------------------------------------------------ store


def _write_snapshot(directory: Path, doc: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")
    atomic_write_bytes(directory / SNAPSHOT, data, durable=True)
    fsync_dir(directory)


def _load(directory: Path) -> Session:
    """Read a session directory: snapshot plus the journal's whole lines after it."""
    path = directory / SNAPSHOT
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise SessionError(f"the saved session {directory.name} has no snapshot") from None
    except (OSError, ValueError) as exc:
        raise SessionError(f"the saved session {directory.name} cannot be read ({exc})") from None
    doc = check_doc(doc, where=f"the saved session {directory.name}")
    edits, seq = list(doc["edits"]), int(doc["seq"])
    try:
        raw = (directory / JOURNAL).read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        raise SessionError(f"the journal of session {directory.name} cannot be read ({exc})") from None
    records, note = read_journal(raw)
    base = (
        unpack_ints(doc["labels"], what="the saved labels"),
        {int(k): str(v) for k, v in doc["names"].items()},
    )
    state = replay(*base, edits)
    since = 0
    for rec in records:
        if rec["seq"] <= seq:
            continue  # already folded into the snapshot (a crash between snapshot and journal reset)
        if rec.get("op") == "undo":
            if edits:
                edits.pop()
                state = replay(*base, edits)
        elif rec.get("op") == "edit" and isinstance(rec.get("edit"), dict):
            try:
                state = apply_edit(*state, rec["edit"])
            except (ConfigError, SessionError) as exc:
                note = f"a journal line does not apply ({exc}); it and the lines after it are left out"
                break
            edits.append(rec["edit"])
        else:
            note = "the journal has a line of an unknown kind; it and the lines after it are left out"
            break
        seq = rec["seq"]
        doc["updated_utc"] = rec.get("utc", doc.get("updated_utc", ""))
        since += 1
    session = Session(directory, doc, edits, seq, note)
    session._since_snapshot = since
    return session


def open_session(
    folder: str | os.PathLike, model_id: str, *, cache_dir: str | os.PathLike | None = None
) -> Session | None:
    """The saved session of ``folder`` with ``model_id``, or ``None`` when there is none.

    Raises:
        SessionError: it exists but is damaged (it is left as it is).
    """
    directory = sessions_dir(cache_dir) / session_id(folder, model_id)
    if not (directory / SNAPSHOT).exists():
        return None
    return _load(directory)


def start_session(
    collection,
    model_id: str,
    config: ClusterConfig,
    labels: np.ndarray,
    names: Mapping[int, str],
    *,
    model_name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Session:
    """A new session on a fresh clustering of ``collection`` (``labels`` ``int (n,)``), written to disk.

    It takes the place of the saved session of the same folder and model (its edits belonged to the
    clustering being replaced), which is kept, when it has edits, as ``sessions/replaced/<id>-<time>.json``
    (the newest :data:`KEEP_REPLACED`), a file :func:`import_session` reads; a damaged one is moved to
    ``sessions/damaged/`` instead of overwritten.
    ``model_name`` is what the user asked for (``"bundled"``), kept so the app can reopen the folder with it.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(collection),):
        raise ConfigError(
            f"labels must have one entry per image ({len(collection)}), got shape {labels.shape}"
        )
    folder = str(Path(collection.root).expanduser().resolve())
    sid = session_id(folder, model_id)
    directory = sessions_dir(cache_dir) / sid
    seq, created = 0, _now()
    if (directory / SNAPSHOT).exists() or (directory / JOURNAL).exists():
        try:
            old = _load(directory)
            seq, created = old.seq, old.created_utc or created
            if old.edits:  # a new clustering drops the hand edits: keep them as a file to import
                _keep(directory, export_session(old))
        except SessionError:
            aside = (
                sessions_dir(cache_dir) / "damaged" / f"{sid}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
            )
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(directory, aside)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "id": sid,
        "folder": folder,
        "model_id": str(model_id),
        "model": str(model_name or model_id),
        "images": len(collection),
        "content_digest": content_digest(collection),
        "config": config_dict(config),
        "labels": pack_ints(labels),
        "names": {str(int(k)): str(v) for k, v in names.items()},
        "edits": [],
        "seq": seq + 1,  # above every line of an older journal, so none of them is replayed
        "created_utc": created,
        "updated_utc": _now(),
    }
    _write_snapshot(directory, doc)
    atomic_write_bytes(directory / JOURNAL, b"", durable=True)
    return Session(directory, doc, [], seq + 1)


def _keep(directory: Path, data: bytes) -> Path:
    """Keep an outgoing session's export as ``sessions/replaced/<id>-<utc time>.json``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    kept = directory.parent / "replaced" / f"{directory.name}-{stamp}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(kept, data, durable=True)
    for old in sorted(kept.parent.glob(f"{directory.name}-*.json"))[:-KEEP_REPLACED]:
        old.unlink(missing_ok=True)
    return kept


def list_sessions(*, cache_dir: str | os.PathLike | None = None) -> list[SessionInfo]:
    """Every saved session, most recently changed first; damaged ones are listed with their ``problem``."""
    root = sessions_dir(cache_dir)
    out: list[SessionInfo] = []
    if not root.is_dir():
        return out
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and _is_id(p.name)):
        try:
            s = _load(directory)
        except SessionError as exc:
            out.append(SessionInfo(directory.name, "", "", 0, 0, "", "", problem=str(exc)))
            continue
        out.append(
            SessionInfo(
                s.id,
                s.folder,
                s.model_id,
                s.images,
                len(s.edits),
                s.config.method,
                s.updated_utc,
                model_name=s.model_name,
            )
        )
    return sorted(out, key=lambda i: i.updated_utc, reverse=True)


def _is_id(name: str) -> bool:
    return len(name) == 16 and all(c in "0123456789abcdef" for c in name)


def delete_session(sid: str, *, cache_dir: str | os.PathLike | None = None) -> bool:
    """Delete the saved session ``sid``; ``False`` when there was none."""
    if not _is_id(sid):
        raise ConfigError(f"not a session id: {sid!r}")
    directory = sessions_dir(cache_dir) / sid
    if not directory.is_dir():
        return False
    shutil.rmtree(directory)
    return True


from .session_files import export_session, import_session  # noqa: E402  (they build on the store above)
