"""Tests of vlexplore.threads: background threads at a lower CPU priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from vlexplore.threads import BACKGROUND_NICE, lower_this_thread_priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_a_thread(fn):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(timeout=30)
    return out[0]


def test_only_the_calling_thread_becomes_nicer():
    main = _nice()
    assert _in_a_thread(lambda: (lower_this_thread_priority(), _nice())) == (
        True,
        min(19, main + BACKGROUND_NICE),
    )
    assert _nice() == main
    assert _in_a_thread(_nice) == main  # a thread started later by another is unaffected


def test_threads_started_by_a_nicer_thread_inherit_it_and_the_cap_is_19():
    def outer():
        lower_this_thread_priority(15)
        lower_this_thread_priority(15)
        return _nice(), _in_a_thread(_nice)

    assert _in_a_thread(outer) == (19, 19)


def test_a_refused_change_is_false_and_changes_nothing(monkeypatch):
    def refuse(*_a):
        raise PermissionError("not allowed")

    monkeypatch.setattr(os, "setpriority", refuse)
    assert _in_a_thread(lambda: (lower_this_thread_priority(), _nice())) == (False, _nice())


def test_the_apps_map_worker_runs_at_the_background_priority():
    from ui import cached

    pool = cached.map_executor()
    assert pool.submit(_nice).result(timeout=30) == min(19, _nice() + BACKGROUND_NICE)
