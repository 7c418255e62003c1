"""Small file-system helpers every writer shares: atomic replacement, an advisory lock, durable renames."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write_text(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` in one step (a temp file in the same folder, then a rename)."""
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=".", suffix=".tmp", delete=False) as fh:
        fh.write(text)
    os.replace(fh.name, target)


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """Yield ``True`` while holding an advisory lock on ``lock_path``, ``False`` when another process holds it.

    Where the lock cannot be taken (no ``fcntl``, a read-only folder) it yields ``True``: compaction is
    safe without it, only wasteful.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield True
        return
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
