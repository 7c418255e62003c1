"""Types shared by several modules of the library."""

from __future__ import annotations

from collections.abc import Callable

#: A progress callback ``on_progress(done, total)``, or ``None`` for no progress reports.
Progress = Callable[[int, int], None] | None
