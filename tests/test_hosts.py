"""Host allow-list against DNS rebinding (ui/hosts.py).

The pure helpers, the ASGI check, and the real server answering 403 to an unknown Host on pages, /media/,
/_stcore/health and the websocket.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tools.browser import free_port, serve_command, wait_healthy
from ui import hosts

REPO = Path(__file__).resolve().parent.parent
ALLOWED = hosts.allowed_hosts(env={})


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8501", "localhost"),
        ("127.0.0.1:8501", "127.0.0.1"),
        ("[::1]:8501", "::1"),
        ("[::1]", "::1"),
        ("localhost.", "localhost"),
        ("evil.example:8501", "evil.example"),
        (None, None),
        ("", None),
        ("localhost:", None),
        ("localhost:abc", None),
        ("localhost:99999", None),
        ("user@localhost", None),
        ("localhost/x", None),
        ("local host", None),
        ("localhost\r\nX: y", None),
    ],
)
def test_parse_host(header, name):
    assert hosts.parse_host(header) == name


@pytest.mark.parametrize("header", ["localhost", "localhost:8501", "127.0.0.1:1", "[::1]:8501", "LOCALHOST"])
def test_this_machine_is_allowed(header):
    assert hosts.is_allowed(header, ALLOWED)


@pytest.mark.parametrize(
    "header",
    [
        "evil.example",
        "evil.example:8501",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "0.0.0.0:8501",
        "",
        None,
        "localhost:bad",
        "user@localhost",
    ],
)
def test_other_hosts_are_refused(header):
    assert not hosts.is_allowed(header, ALLOWED)


def test_configured_names_and_bind_address_are_allowed():
    allowed = hosts.allowed_hosts(
        env={hosts.HOSTS_ENV: " pc.lan , Box.Example:8501,, fe80::1 "}, bind_address="192.168.1.5"
    )
    for header in ("pc.lan:8501", "box.example", "192.168.1.5:8501", "[fe80::1]:8501", "localhost"):
        assert hosts.is_allowed(header, allowed), header
    assert not hosts.is_allowed("evil.example", allowed)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "", None, "unix:///tmp/s.sock"])
def test_wildcard_bind_address_adds_no_name(address):
    assert hosts.allowed_hosts(env={}, bind_address=address) == frozenset(hosts.DEFAULT_HOSTS)


def _call(app, scope_type: str, host: str | None, extensions=None) -> list[dict]:
    sent: list[dict] = []
    headers = [(b"host", host.encode())] if host is not None else []
    scope = {"type": scope_type, "path": "/", "headers": headers, "extensions": extensions or {}}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _inner_app():
    calls = []

    async def app(scope, receive, send):
        calls.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    return app, calls


def test_guard_refuses_http_with_403_plain_text():
    inner, calls = _inner_app()
    app = hosts.guard(inner, ALLOWED)
    sent = _call(app, "http", "evil.example:8501")
    assert sent[0]["status"] == 403
    assert (b"content-type", b"text/plain; charset=utf-8") in sent[0]["headers"]
    assert sent[1]["body"] == hosts.REFUSED_BODY
    assert not calls
    assert _call(app, "http", None)[0]["status"] == 403  # no Host at all
    assert _call(app, "http", "localhost:8501")[0]["status"] == 200
    assert calls == ["http"]


def test_guard_refuses_websocket_upgrade():
    inner, calls = _inner_app()
    app = hosts.guard(inner, ALLOWED)
    sent = _call(app, "websocket", "evil.example", extensions={"websocket.http.response": {}})
    assert sent[0] == {"type": "websocket.http.response.start", "status": 403, "headers": sent[0]["headers"]}
    assert _call(app, "websocket", "evil.example") == [{"type": "websocket.close", "code": 1008}]
    assert not calls
    _call(app, "websocket", "127.0.0.1:8501")
    assert calls == ["websocket"]


def test_guard_passes_lifespan_through():
    inner, calls = _inner_app()
    _call(hosts.guard(inner, ALLOWED), "lifespan", None)
    assert calls == ["lifespan"]


# ---------------------------------------------------------------------------------- the real server


def _request(port: int, host: str, path: str, *, upgrade: bool = False) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Host": host}
    if upgrade:
        headers |= {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Protocol": "streamlit",
        }
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, (resp.read(300) if resp.status != 101 else b"")
    finally:
        conn.close()


def _run_script_as(port: int, host: str) -> str:
    """Open a session's websocket with ``Host: host``, ask for a script run, return the text it sent."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    out: list[str] = []
    with connect(f"ws://{host}/_stcore/stream", sock=sock, subprotocols=["streamlit"], open_timeout=30) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        ws.send(msg.SerializeToString())
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            fwd = ForwardMsg()
            fwd.ParseFromString(ws.recv(timeout=90))
            out.append(str(fwd))
            if fwd.WhichOneof("type") == "script_finished":
                break
    return "\n".join(out)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = dict(os.environ, VLEXPLORE_WARM_UMAP="0", HF_HUB_OFFLINE="1", VLEXPLORE_ROOTS=str(REPO / "demo"))
    env.pop("VLEXPLORE_FOLDER", None)
    env.pop(hosts.HOSTS_ENV, None)
    log = tmp_path_factory.mktemp("hosts") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            serve_command(REPO / "app.py", port), cwd=REPO, env=env, stdout=out, stderr=out
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=120)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_real_server_refuses_other_hosts(server):
    port = server
    # The first session runs the script (which installs the request check); its own Host is refused,
    # so the script stops before it shows anything.
    text = _run_script_as(port, f"evil.example:{port}")
    assert "not allowed to use the app" in text
    assert "Load a folder" not in text
    for path in (
        "/",
        "/_stcore/health",
        "/media/0123456789abcdef.jpg",
        "/static/js/x.js",
        "/_stcore/host-config",
    ):
        status, body = _request(port, "evil.example", path)
        assert (status, body) == (403, hosts.REFUSED_BODY), path
        assert _request(port, f"evil.example:{port}", path)[0] == 403
    assert _request(port, f"evil.example:{port}", "/_stcore/stream", upgrade=True) == (
        403,
        hosts.REFUSED_BODY,
    )
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        assert _request(port, host, "/")[0] == 200, host
        assert _request(port, host, "/_stcore/health") == (200, b"ok"), host
        assert _request(port, host, "/_stcore/stream", upgrade=True)[0] == 101, host
    # an allowed session runs the app
    assert "Load a folder" in _run_script_as(port, f"localhost:{port}")
