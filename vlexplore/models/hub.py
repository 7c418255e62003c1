"""The model hub, offline first.

Try the local cache, tell "not cached and unreachable" (fall back) from "does not exist" (a loud error) within
seconds, and keep open_clip's download noise off the console.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator

from ..errors import ConfigError, ModelUnavailableError

HUB_HOST = "huggingface.co"
HUB_PROBE_TIMEOUT_S = 3.0


def hub_reachable(host: str = HUB_HOST, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """True when the model hub answers a TCP connect within ``timeout`` seconds.

    Never called when ``HF_HUB_OFFLINE`` is set (then the hub counts as unreachable).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_hub() -> Iterator[None]:
    """Make huggingface_hub use its local cache only, for the duration of the block."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


class _DropOpenClipRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}open_clip{os.sep}" not in record.pathname


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Keep open_clip's root-logger lines ("Failed to download…") off the console while the cache is tried.

    A miss there is expected, and the error raised afterwards says what matters.
    """
    root = logging.getLogger()
    quiet = _DropOpenClipRecords()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


# -- errors -----------------------------------------------------------------------------------------
def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line (its type when it has no message)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _hub_errors() -> dict[str, tuple[type, ...]]:
    try:
        from huggingface_hub import errors
    except ImportError:  # pragma: no cover
        return {"not_cached": (), "gated": (), "not_found": ()}
    return {
        "not_cached": (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled),
        "gated": (errors.GatedRepoError,),
        "not_found": (
            errors.RepositoryNotFoundError,
            errors.RevisionNotFoundError,
            errors.EntryNotFoundError,
        ),
    }


_NOT_CACHED_TEXT = re.compile(
    r"offline mode|local_files_only|couldn't connect|cannot find the requested files in the (local )?cache"
    r"|not (be )?found in the (local )?cache|outgoing traffic has been disabled",
    re.IGNORECASE,
)


def is_not_cached(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says a hub file is not in the local cache while offline."""
    kinds = _hub_errors()["not_cached"]
    return any(
        isinstance(e, kinds) or (isinstance(e, OSError) and _NOT_CACHED_TEXT.search(str(e)))
        for e in _chain(exc)
    )


def hub_failure(exc: BaseException, what: str) -> Exception:
    """The error to raise when loading ``what`` from the reachable hub failed with ``exc``."""
    kinds = _hub_errors()
    if any(isinstance(e, kinds["gated"]) for e in _chain(exc)):
        return ModelUnavailableError(
            f"{what} is gated on the model hub: accept its terms there and log in (huggingface-cli login)"
        )
    if any(isinstance(e, kinds["not_found"]) for e in _chain(exc)):
        return ConfigError(f"{what} does not exist on the model hub (check the spelling): {first_line(exc)}")
    return ModelUnavailableError(f"could not fetch {what} from the model hub: {first_line(exc)}")


def offline_first(build, what: str, advice: str):
    """``build()`` from the local hub cache; when something is not cached, from the hub if it can be reached.

    Raises:
        ModelUnavailableError: not cached and the hub cannot be reached (``advice`` says what to do),
            or the hub failed; ConfigError: the hub has no such repository or file.
    """
    try:
        with _offline_hub(), quiet_open_clip():
            return build()
    except (ConfigError, ModelUnavailableError):
        raise
    except Exception as exc:
        if not is_not_cached(exc):
            raise
        if not hub_reachable():
            raise ModelUnavailableError(
                f"{what}: not cached here, and the model hub cannot be reached; {advice}"
            ) from exc
    try:
        return build()
    except (ConfigError, ModelUnavailableError):
        raise
    except Exception as exc:
        raise hub_failure(exc, what) from exc


# -- names --------------------------------------------------------------------------------------------
