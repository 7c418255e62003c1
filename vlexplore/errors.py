"""The few exceptions vlexplore raises.

Every message says what was received and what to do about it, so the CLI and
the app can show it to a person as it is.
"""

from __future__ import annotations


class VlexploreError(Exception):
    """Base class of every error vlexplore raises on purpose."""


class ConfigError(VlexploreError, ValueError):
    """A parameter or an input array is not acceptable.

    Attributes:
        option: the configuration field the message is about (``"k"``, ``"captioner"``), or ``None``. The
            message names no syntax; the CLI prefixes its flag (``--k``), the app can name its control.
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class ImageReadError(VlexploreError):
    """One image file could not be read; the caller skips it and reports it.

    Attributes:
        lasting: the failure belongs to the file's content (damaged, not an image, too large), so it may be
            remembered under the content's key; ``False`` for passing trouble (I/O, permissions, memory, a
            file that changed while it was read), which is tried again on the next run.
    """

    def __init__(self, reason: str, *, lasting: bool = True) -> None:
        super().__init__(reason)
        self.lasting = lasting


class ModelUnavailableError(VlexploreError):
    """A model's weights or code cannot be had (no hub, bad path, missing package)."""


class CacheError(VlexploreError):
    """The on-disk cache could not be read or written."""


class PathNotAllowedError(VlexploreError, PermissionError):
    """A path lies outside the roots the app is allowed to read."""


class CacheWriteWarning(UserWarning):
    """Something could not be written to the cache directory; the result was computed in memory.

    The CLI says the first of these once, as a note; the app shows one warning.
    """
