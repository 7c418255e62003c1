"""tools.browser.ServedURL.report: a thread dump from a server that asked for one, and no signal to one that did not."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tools.browser import ServedURL, _catches

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

DUMPS = "import faulthandler, signal, time; faulthandler.register(signal.SIGUSR1, all_threads=True); print('ready', flush=True); time.sleep(60)"
PLAIN = "import time; print('ready', flush=True); time.sleep(60)"


def start(code: str, log) -> tuple[subprocess.Popen, ServedURL]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while b"ready" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    url = ServedURL("http://127.0.0.1:1")
    url.pid, url.log = proc.pid, log
    return proc, url


def test_a_server_that_registered_sigusr1_dumps_its_threads(tmp_path):
    proc, url = start(DUMPS, tmp_path / "log")
    try:
        assert _catches(proc.pid, signal.SIGUSR1)
        report = url.report(wait_s=1.0)
        assert "most recent call first" in report  # faulthandler's header above each thread's stack
        assert proc.poll() is None  # still serving
    finally:
        proc.kill()
        proc.wait()


def test_a_server_without_a_handler_is_not_signalled(tmp_path):
    proc, url = start(PLAIN, tmp_path / "log")
    try:
        assert not _catches(proc.pid, signal.SIGUSR1)
        assert url.report(wait_s=0.1).strip() == "ready"
        time.sleep(0.3)
        assert proc.poll() is None  # SIGUSR1's default action would have ended it
    finally:
        proc.kill()
        proc.wait()
