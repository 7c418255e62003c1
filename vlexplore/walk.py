"""Walking a folder for image files: deterministic order, hidden entries ignored, symlinks kept inside."""

from __future__ import annotations

import os
from operator import attrgetter

from .imageio import IMAGE_EXTENSIONS, NOT_REGULAR

_NAME = attrgetter("name")


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def list_image_files(root: str, recursive: bool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Walk ``root`` with :func:`os.scandir` → ``([(relpath, path)], [(relpath, reason)])``.

    Deterministic: entries in name order, real folders before symlinked ones; each folder once.
    """
    root_real = os.path.realpath(root)
    seen = {root_real}
    files: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    stack = [("", root)]
    linked: list[tuple[str, str]] = []  # symlinked folders, walked after every real one so real paths win
    while stack or linked:
        if not stack:
            rel, path = linked.pop(0)
            real = os.path.realpath(path)
            if real not in seen:  # else a link loop, or a second way into a folder already walked
                seen.add(real)
                stack.append((rel, path))
            continue
        rel_dir, dir_path = stack.pop()
        try:
            with os.scandir(dir_path) as it:
                entries = sorted(it, key=_NAME)
        except OSError as exc:
            why = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or exc
            skipped.append((rel_dir, f"folder cannot be read ({why})"))
            continue
        subdirs = []
        prefix = f"{rel_dir}/" if rel_dir else ""
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            rel = prefix + name
            is_image = (
                name[name.rfind(".") :].lower() in IMAGE_EXTENSIONS
            )  # no leading dot: as os.path.splitext
            try:
                is_link = entry.is_symlink()
                if is_image and not is_link and entry.is_file():  # the usual case, first
                    files.append((rel, entry.path))
                    continue
                if is_link and not _inside(os.path.realpath(entry.path), root_real):
                    if is_image or entry.is_dir():
                        skipped.append((rel, "symbolic link to a place outside the folder (not followed)"))
                    continue
                if entry.is_dir():
                    if recursive and is_link:
                        linked.append((rel, entry.path))
                    elif recursive and os.path.realpath(entry.path) not in seen:
                        seen.add(os.path.realpath(entry.path))
                        subdirs.append((rel, entry.path))
                elif is_image:
                    if entry.is_file():
                        files.append((rel, entry.path))
                    elif is_link and not os.path.exists(entry.path):
                        skipped.append((rel, "broken symbolic link"))
                    else:
                        skipped.append((rel, NOT_REGULAR))
            except OSError as exc:
                if is_image:
                    skipped.append((rel, f"file cannot be read ({exc.strerror or exc})"))
        stack.extend(reversed(subdirs))
    return files, skipped
