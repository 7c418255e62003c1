"""Which folders may be read: allowed roots, and paths resolved against them.

Pure functions; the app passes its environment and ``st.secrets`` in. Paths are resolved (``~``, ``..``, symlinks) before the
check, so neither a ``..`` nor a symlink can lead outside the roots.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import ConfigError, PathNotAllowedError

REPO_DIR = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_DIR / "demo"
ROOTS_ENV = "VLEXPLORE_ROOTS"
FOLDER_ENV = "VLEXPLORE_FOLDER"
MODEL_ENV = "VLEXPLORE_MODEL"


SECRETS_HINT = "`roots` in .streamlit/secrets.toml"


def _split(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p for p in value.split(os.pathsep) if p.strip()]
    return [str(p) for p in value if str(p).strip()]


def _refuse_filesystem_root(path: Path, where: str) -> Path:
    if path == Path(path.anchor):
        raise ConfigError(
            f"{where} names the file-system root {path}; the app does not read the whole disk, name a folder"
        )
    return path


def _configured(values: list[str], where: str) -> list[Path]:
    out: list[Path] = []
    for value in values:
        try:
            path = resolve_path(value.strip())
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"{where}: {value[:200]!r} is not a usable folder path ({exc})") from exc
        out.append(_refuse_filesystem_root(path, where))
    return out


def secret_roots(secrets: Mapping | None) -> str | list[str] | None:
    """The ``roots`` secret from ``secrets`` (``st.secrets``), checked; ``None`` when unset or no secrets file.

    Raises:
        ConfigError: the secrets file cannot be read or parsed, or ``roots`` is neither a string nor a
            list of strings.
    """
    if secrets is None:
        return None
    try:
        value = secrets.get("roots")
    except FileNotFoundError as exc:  # Streamlit's StreamlitSecretNotFoundError: missing *or* unparsable
        if getattr(exc, "error_id", None) == "no-secrets-found" or str(exc).startswith("No secrets found"):
            return None
        raise ConfigError(f"the secrets file cannot be used: {_one_line(exc)}") from exc
    except (OSError, ValueError, TypeError) as exc:  # unreadable file, undecodable text
        raise ConfigError(f"the secrets file cannot be read: {_one_line(exc)}") from exc
    return _checked_secret(value)


def _checked_secret(value: object) -> str | list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(
        f"{SECRETS_HINT} must be a folder path or a list of folder paths, not {type(value).__name__}"
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def home_root(env: Mapping[str, str] | None = None) -> tuple[Path | None, str | None]:
    """The user's home as a default root, or ``(None, why not)`` when it is ``/``, empty or not a folder."""
    env = os.environ if env is None else env
    if "HOME" in env:
        text = env["HOME"]
    else:
        try:
            text = os.path.expanduser("~")
            text = "" if text == "~" else text
        except (KeyError, RuntimeError, OSError):  # no passwd entry for this user
            text = ""
    if not text.strip():
        return None, "The home folder is not set (HOME is empty), so it is not an allowed root."
    try:
        home = Path(text).expanduser().resolve(strict=False)
    except (OSError, ValueError, RuntimeError):
        return None, "The home folder is not a usable path, so it is not an allowed root."
    if home == Path(home.anchor):
        return None, f"The home folder is the file-system root {home}, so it is not an allowed root."
    try:
        is_dir = home.is_dir()
    except OSError:
        is_dir = False
    if not is_dir:
        return None, "The home folder does not exist, so it is not an allowed root."
    return home, None


def resolve_path(path: str | os.PathLike, *, base: Path | None = None) -> Path:
    """``~`` expanded, made absolute against ``base`` (default: the working directory), symlinks and ``..`` resolved."""
    p = Path(os.fspath(path)).expanduser()
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    return p.resolve(strict=False)


def allowed_roots(
    env: Mapping[str, str] | None = None,
    secrets_roots: str | Iterable[str] | None = None,
    *,
    secrets: Mapping | None = None,
) -> list[Path]:
    """The folders the app may read, resolved and without duplicates.

    ``VLEXPLORE_ROOTS`` (``os.pathsep``-separated) wins over the ``roots`` secret (``secrets_roots``,
    or read from ``secrets``, i.e. ``st.secrets``, with :func:`secret_roots`); with neither, the demo
    folder and the user's home (unless the home is ``/``, empty or missing: see :func:`home_root`).
    The start-up folder ``VLEXPLORE_FOLDER`` is always allowed: whoever started the server chose it.

    Bad configuration never widens access, it stops with :class:`ConfigError`: a ``VLEXPLORE_ROOTS``
    that is set but names no folder, a ``roots`` secret of the wrong type or without a folder, an
    unreadable secrets file, or a root that is the file-system root ``/``.
    """
    env = os.environ if env is None else env
    if ROOTS_ENV in env:
        where = f"the environment variable {ROOTS_ENV}"
        values = _split(env[ROOTS_ENV])
        if not values:
            raise ConfigError(
                f"{where} is set but names no folder ({env[ROOTS_ENV][:100]!r}); give folder paths separated "
                f"by {os.pathsep!r}, or unset it"
            )
        roots = _configured(values, where)
    else:
        if secrets_roots is None and secrets is not None:
            secrets_roots = secret_roots(secrets)
        secrets_roots = _checked_secret(secrets_roots)
        if secrets_roots is not None:
            values = _split(secrets_roots)
            if not values:
                raise ConfigError(f"{SECRETS_HINT} is set but names no folder")
            roots = _configured(values, SECRETS_HINT)
        else:
            home, _ = home_root(env)
            roots = [DEMO_DIR.resolve()] + ([home] if home is not None else [])
    start = startup_folder(env)
    if start is not None:
        roots.append(start)
    out: list[Path] = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def startup_folder(env: Mapping[str, str] | None = None) -> Path | None:
    """``VLEXPLORE_FOLDER`` resolved (relative to the working directory), or ``None`` when unset.

    Raises:
        ConfigError: it is not a usable path, or it is the file-system root ``/``.
    """
    env = os.environ if env is None else env
    value = (env.get(FOLDER_ENV) or "").strip()
    if not value:
        return None
    return _configured([value], f"the start-up folder {FOLDER_ENV}")[0]


def startup_model(env: Mapping[str, str] | None = None) -> str:
    """``VLEXPLORE_MODEL``: the model the start-up folder is embedded with (default ``"bundled"``).

    Any id the Load page takes (an open_clip ``ARCH/TAG``, ``hf-hub:org/name``, a checkpoint or a model
    directory). Whoever started the server chose it, so its weights need not lie inside the allowed roots.
    """
    env = os.environ if env is None else env
    return (env.get(MODEL_ENV) or "").strip() or "bundled"


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
        # Neither where it resolves to nor the roots: the message must not map the disk for whoever typed it.
        raise PathNotAllowedError(
            f"{text[:200]!r} is outside the folders this app may read. Pick a folder inside the allowed roots, "
            f"or allow more with the environment variable {ROOTS_ENV} (paths separated by {os.pathsep!r}) "
            f"or {SECRETS_HINT}."
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


#: Model-id forms that carry a local path after a prefix (see :func:`vlexplore.models.registry.resolve_spec`).
_MODEL_PATH_FORMS = (
    re.compile(r"^openclip:[^:]+:(?P<p>.+)$"),
    re.compile(r"^local-dir:(?P<p>.+)$"),
    re.compile(r"^hf:(?P<p>.+)$"),
    re.compile(r"^[\w.-]+@(?P<p>.+)$"),
)


def model_path(name: str) -> str | None:
    """The local file or folder a model id names, or ``None`` for registry names and hub ids.

    Local forms: ``openclip:ARCH:/ckpt.pt``, ``local-dir:DIR``, a plain path…; not local: registry
    names, ``ARCH/TAG`` and hub ids. Read from the text alone.
    """
    text = name.strip()
    for form in _MODEL_PATH_FORMS:
        m = form.match(text)
        if m:
            return m.group("p")
    if text.startswith(("/", "~", ".")) or (not text.startswith("hf-hub:") and os.path.exists(text)):
        return text
    return None


def check_model_path(name: str, roots: list[Path]) -> None:
    """Refuse a model id typed in the app whose local weights lie outside ``roots``.

    Checked before the model id is resolved, so nothing about the place is said (not even whether it exists).

    Raises:
        PathNotAllowedError: the id names a file or folder outside every root.
    """
    path = model_path(name)
    if path is None:
        return
    try:
        resolved = resolve_path(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path[:200]!r} is not a usable path ({exc})") from exc
    if not is_within(resolved, roots):
        raise PathNotAllowedError(
            f"the model weights {path[:200]!r} are outside the folders this app may read; put them inside an "
            f"allowed root, or allow more with {ROOTS_ENV} or {SECRETS_HINT}."
        )
