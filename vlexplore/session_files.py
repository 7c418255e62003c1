"""Sessions as one file: export a saved session, import one (checked completely before anything is written)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .fsutil import atomic_write_bytes
from .session_log import SessionError, check_doc, read_journal
from .sessions import (
    JOURNAL,
    SNAPSHOT,
    Session,
    _keep,
    _load,
    _now,
    _write_snapshot,
    content_digest,
    session_id,
    sessions_dir,
)

MAX_IMPORT_BYTES = 256 * 1024 * 1024


def export_session(session: Session) -> bytes:
    """The session as one JSON file (the snapshot format, every edit folded in)."""
    return (json.dumps(session.document(), ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def import_session(
    data: bytes,
    *,
    collection=None,
    model_id: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Session:
    """Save the session in ``data`` (from :func:`export_session`) and return it, open.

    With ``collection`` (and ``model_id``) it is filed under that folder and model — a session
    exported elsewhere opens on the same images here — after checking it was made on them.
    A session already saved under the same key is first kept as ``sessions/replaced/<id>-<time>.json``.

    Raises:
        SessionError: ``data`` is not a whole session file of a known version, or belongs to other
            images; nothing on disk is changed.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise SessionError(f"the file is {len(data):,} bytes, more than a session file can be")
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SessionError("the file is not a vlexplore session (not JSON text)") from None
    doc = check_doc(doc, where="the file")
    if collection is not None:
        doc["folder"] = str(Path(collection.root).expanduser().resolve())
        if len(collection) != doc["images"] or content_digest(collection) != doc["content_digest"]:
            raise SessionError(
                f"the file's session was made on other images ({doc['images']:,} then, {len(collection):,} "
                "here, or files differ); nothing was imported"
            )
    if model_id is not None:
        doc["model_id"] = str(model_id)
    doc["id"] = session_id(doc["folder"], doc["model_id"])
    directory = sessions_dir(cache_dir) / doc["id"]
    if (directory / SNAPSHOT).exists():
        try:
            old = export_session(_load(directory))
        except SessionError:
            old = (directory / SNAPSHOT).read_bytes()
        _keep(directory, old)
    doc["seq"] = max(int(doc["seq"]), _journal_max_seq(directory)) + 1
    doc["updated_utc"] = _now()
    _write_snapshot(directory, doc)
    atomic_write_bytes(directory / JOURNAL, b"", durable=True)
    return _load(directory)


def _journal_max_seq(directory: Path) -> int:
    try:
        records, _ = read_journal((directory / JOURNAL).read_bytes())
    except OSError:
        return 0
    return max((r["seq"] for r in records), default=0)
