"""Small file-system helpers every writer shares: atomic writes, an advisory lock, durable renames."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, overwrite: bool = True, durable: bool = True) -> Iterator[str]:
    """Write ``target`` in one step, for writers that want a file name (pandas, pyarrow).

    Yield the name of a new, empty temp file beside it; when the block ends it is (fsynced and) renamed into
    place.

    A reader sees the old file or the finished new one, never half a file; when the block raises,
    the temp file is removed and ``target`` is untouched. The temp name (``.<name>-<random>.tmp``)
    fits the 255-byte name limit even when ``target``'s name nearly does.

    Args:
        target: the file to write.
        overwrite: replace an existing ``target``. With ``False`` the finished file is hard-linked into
            place, which fails when ``target`` appeared meanwhile (no check-then-write race); file systems
            without hard links fall back to a last check and a rename.
        durable: ``fsync`` the file before the rename (off for caches that can be rebuilt).

    Raises:
        FileExistsError: ``overwrite`` is false and ``target`` exists.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:64]}-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        _place(tmp, target, overwrite=overwrite)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_writer(
    target: str | os.PathLike,
    mode: str = "wb",
    *,
    overwrite: bool = True,
    durable: bool = True,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO]:
    """Write ``target`` in one step (see :func:`atomic_path`): yield an open temp file beside it.

    Args:
        target: the file to write.
        mode: ``"wb"`` or ``"w"`` (text; give ``encoding``, and ``newline=""`` to write line ends as they are).
        overwrite: as for :func:`atomic_path`.
        durable: as for :func:`atomic_path`.
        encoding: the text encoding (text mode only).
        newline: as for :func:`open` (text mode only).

    Raises:
        FileExistsError: ``overwrite`` is false and ``target`` exists.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer writes new files: mode 'w' or 'wb', not {mode!r}")
    with (
        atomic_path(target, overwrite=overwrite, durable=False) as tmp,
        open(tmp, mode, encoding=encoding, newline=newline) as fh,
    ):
        yield fh
        fh.flush()
        if durable:
            os.fsync(fh.fileno())


def _place(tmp: str, target: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network shares)
        if target.exists():
            raise FileExistsError(f"{target} exists") from None
        os.replace(tmp, target)


def atomic_write_bytes(
    target: str | os.PathLike, data: bytes, *, overwrite: bool = True, durable: bool = True
) -> None:
    """Replace ``target`` with ``data`` in one step (see :func:`atomic_writer`)."""
    with atomic_writer(target, "wb", overwrite=overwrite, durable=durable) as fh:
        fh.write(data)


def atomic_write_text(target: Path, text: str, *, encoding: str = "utf-8", durable: bool = False) -> None:
    """Replace ``target`` with ``text`` in one step (a temp file in the same folder, then a rename)."""
    with atomic_writer(target, "w", durable=durable, encoding=encoding, newline="") as fh:
        fh.write(text)


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
