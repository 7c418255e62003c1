"""Serving the app headless and driving Debian's chromium.

Shared by the browser and host tests, the screenshot script and the app benchmarks. Standard library only (no
Streamlit, no playwright import).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
#: Headless flags for this closed network: no background connections, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def serve_command(script, port: int) -> list[str]:
    """The command that serves a Streamlit ``script`` headless on ``127.0.0.1:port``, usage statistics off."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc=None, timeout: float = 60, poll: float = 0.3) -> None:
    """Wait until Streamlit's ``/_stcore/health`` answers 200.

    Fail early if ``proc`` (the server process, anything with ``poll()``) exits. This module starts nothing
    itself.

    Raises:
        RuntimeError: the server process ended. TimeoutError: not healthy within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(poll)
    raise TimeoutError(f"{url} was not healthy after {timeout:.0f} s")


class ServedURL(str):
    """The URL of a served app (a ``str``) that can also say what the server is doing: :meth:`report`."""

    pid: int
    log: Path

    def report(self, wait_s: float = 2.0) -> str:
        """Ask the server for every thread's stack (SIGUSR1, when the app registered it) and return the log's tail.

        The signal is sent only when the server catches it (Linux ``/proc``): by default SIGUSR1 would end it.
        """
        if _catches(self.pid, signal.SIGUSR1):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGUSR1)
                time.sleep(wait_s)
        return Path(self.log).read_text(errors="replace")[-20000:]


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (its ``SigCgt`` mask in ``/proc``); ``False`` if unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) >> (sig - 1) & 1)


@contextlib.contextmanager
def served(script, *, cwd, env: dict, log: Path, timeout: float = 60) -> Iterator[ServedURL]:
    """Serve ``script`` (:func:`serve_command`) from ``cwd`` with ``env``, output to ``log``; yields its URL.

    On leaving: SIGTERM to the server's process group (SIGKILL after 15 s); when it did not end cleanly, the
    log's tail is printed (pytest shows it beside a failure).
    """
    port = free_port()
    with Path(log).open("wb") as out:
        proc = subprocess.Popen(
            serve_command(script, port),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = ServedURL(f"http://127.0.0.1:{port}")
        url.pid, url.log = proc.pid, Path(log)
        try:
            wait_healthy(url, proc, timeout=timeout)
            yield url
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
    if proc.returncode not in (0, -signal.SIGTERM):
        print(Path(log).read_text(errors="replace")[-4000:])


def demo_subset(dest: Path, classes, per_class: int, *, demo: Path | None = None) -> Path:
    """Copy the first ``per_class`` photos of each of ``classes`` from the demo folder into ``dest``."""
    demo = demo or Path(__file__).resolve().parent.parent / "demo"
    for label in classes:
        (dest / label).mkdir(parents=True)
        for f in sorted((demo / label).glob("*.jpg"))[:per_class]:
            shutil.copy(f, dest / label / f.name)
    return dest
