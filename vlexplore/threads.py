"""Background threads that yield the CPU to interactive work."""

from __future__ import annotations

import os
import threading

#: How much nicer than the rest of the process a background thread runs (Linux nice, 0-19). At 10 a busy
#: background thread gets about a tenth of the CPU that an interactive one gets when both want it, and all
#: of it when nothing else runs.
BACKGROUND_NICE = 10


def lower_this_thread_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Make the calling thread (and the threads it starts from now on) ``nice`` steps nicer; ``True`` if it could.

    Linux schedules each thread on its own, so this leaves the rest of the process as it is. Elsewhere (or when
    the system refuses) nothing changes and ``False`` is returned. Meant as a ``ThreadPoolExecutor`` initializer
    or the first line of a background thread: a priority once lowered cannot be raised again without privileges.
    """
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None or not hasattr(threading, "get_native_id") or os.uname().sysname != "Linux":
        return False
    tid = threading.get_native_id()
    try:
        setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + int(nice)))
    except OSError:
        return False
    return True
