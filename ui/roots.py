"""Which folders the app may read: allowed roots, and paths resolved against them.

Pure functions (no Streamlit). Paths are resolved (``~``, ``..``, symlinks) before the
check, so neither a ``..`` nor a symlink can lead outside the roots.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from vlexplore.errors import ConfigError, PathNotAllowedError

REPO_DIR = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_DIR / "demo"
ROOTS_ENV = "VLEXPLORE_ROOTS"
FOLDER_ENV = "VLEXPLORE_FOLDER"


def _split(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p for p in value.split(os.pathsep) if p.strip()]
    return [str(p) for p in value if str(p).strip()]


def resolve_path(path: str | os.PathLike, *, base: Path | None = None) -> Path:
    """``~`` expanded, made absolute against ``base`` (default: the working directory), symlinks and ``..`` resolved."""
    p = Path(os.fspath(path)).expanduser()
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    return p.resolve(strict=False)


def allowed_roots(
    env: Mapping[str, str] | None = None,
    secrets_roots: str | Iterable[str] | None = None,
) -> list[Path]:
    """The folders the app may read, resolved and without duplicates.

    ``VLEXPLORE_ROOTS`` (``os.pathsep``-separated) wins over the ``roots`` secret; with
    neither, the demo folder and the user's home. The start-up folder ``VLEXPLORE_FOLDER``
    is always allowed: whoever started the server chose it.
    """
    env = os.environ if env is None else env
    configured = _split(env.get(ROOTS_ENV)) or _split(secrets_roots)
    roots = [resolve_path(p) for p in configured] or [DEMO_DIR.resolve(), Path.home().resolve()]
    start = startup_folder(env)
    if start is not None:
        roots.append(start)
    out: list[Path] = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def startup_folder(env: Mapping[str, str] | None = None) -> Path | None:
    """``VLEXPLORE_FOLDER`` resolved (relative to the working directory), or ``None`` when unset."""
    env = os.environ if env is None else env
    value = (env.get(FOLDER_ENV) or "").strip()
    return resolve_path(value) if value else None


def is_within(path: Path, roots: Iterable[Path]) -> bool:
    """``path`` (already resolved) is one of ``roots`` or lies below one."""
    return any(path == r or path.is_relative_to(r) for r in roots)


def check_folder(path: str | os.PathLike, roots: list[Path], *, base: Path | None = None) -> Path:
    """Resolve ``path`` and make sure it is a readable folder inside ``roots``.

    Raises:
        PathNotAllowedError: it resolves outside every root.
        ConfigError: it is empty, missing or not a folder.
    """
    text = os.fspath(path).strip() if isinstance(path, str) else os.fspath(path)
    if not text:
        raise ConfigError("no folder given; type a path or pick one under “Browse”")
    try:
        resolved = resolve_path(text, base=base)
    except (OSError, ValueError) as exc:  # a NUL byte, a name longer than the file system allows
        raise ConfigError(f"{text[:200]!r} is not a usable folder path ({exc})") from exc
    if not is_within(resolved, roots):
        listed = ", ".join(str(r) for r in roots)
        raise PathNotAllowedError(
            f"{text!r} resolves to {resolved}, which is outside the folders this app may read ({listed}). "
            f"Pick a folder inside them, or allow more with the environment variable {ROOTS_ENV} "
            f"(paths separated by {os.pathsep!r}) or `roots` in .streamlit/secrets.toml."
        )
    try:
        exists, is_dir = resolved.exists(), resolved.is_dir()
    except OSError as exc:
        raise ConfigError(f"the folder {resolved} cannot be read ({exc.strerror or exc})") from exc
    if not exists:
        raise ConfigError(f"the folder {resolved} does not exist")
    if not is_dir:
        raise ConfigError(f"{resolved} is a file, not a folder; choose the folder that holds the images")
    return resolved


def subfolders(folder: Path, roots: list[Path], *, limit: int = 500) -> list[str]:
    """Names of the visible sub-folders of ``folder`` that stay inside ``roots``, sorted, at most ``limit``."""
    names: list[str] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name.lower())
    except OSError:
        return names
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if not entry.is_dir(follow_symlinks=True):
                continue
        except OSError:
            continue
        if entry.is_symlink() and not is_within(Path(entry.path).resolve(), roots):
            continue
        names.append(entry.name)
        if len(names) >= limit:
            break
    return names


def parent_within(folder: Path, roots: list[Path]) -> Path | None:
    """The parent of ``folder`` when it is still inside ``roots``, else ``None``."""
    parent = folder.parent
    return parent if parent != folder and is_within(parent, roots) else None
