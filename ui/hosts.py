"""Host allow-list against DNS rebinding.

The server answers only requests whose ``Host`` header names this machine (``localhost``, ``127.0.0.1``,
``::1``), the address the server was told to bind, or a name listed in ``VLEXPLORE_ALLOWED_HOSTS``
(comma-separated). Anything else gets ``403`` with a short plain-text body: pages, ``/media/`` and static
files, ``/_stcore/*`` and the websocket upgrade alike.

A page on a rebinding domain (``evil.example`` resolving to 127.0.0.1) talks to the server
from the browser with ``Host: evil.example``; refusing unknown names stops it reading thumbnails,
file names or driving the app.

The pure helpers (:func:`parse_host`, :func:`allowed_hosts`, :func:`is_allowed`) need no server.
:func:`install` puts the check in front of Streamlit's Starlette application (class-level, so it
applies to every later request of the running server); :func:`session_allowed` checks the Host
of the current session's websocket, for the session that ran the script before the check existed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

HOSTS_ENV = "VLEXPLORE_ALLOWED_HOSTS"
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
#: Bind addresses that mean "every interface": not a name a browser sends.
WILDCARD_ADDRESSES = {"", "0.0.0.0", "::", "[::]", "*"}
REFUSED_BODY = b"403 Forbidden: this Host is not allowed. See docs/security.md (VLEXPLORE_ALLOWED_HOSTS).\n"
_MARK = "_vlexplore_host_guard"


def parse_host(value: str | None) -> str | None:
    """The host name of a ``Host`` header value, or ``None`` when missing or malformed.

    Accepts ``name``, ``name:port`` and ``[v6]:port``; returns it lower-case, without a trailing dot or
    IPv6 brackets. Malformed: user info, a path, a bad port.
    """
    if value is None:
        return None
    value = value.strip()
    if not value or any(c.isspace() or ord(c) < 32 for c in value):
        return None
    if value.count(":") > 1 and not value.startswith("["):  # a bare IPv6 address (a configured name)
        return value.lower()
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port  # validates a given port
    except ValueError:
        return None
    if (
        parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
    ):
        return None
    if value.endswith(":") or (port is None and ":" in value.rsplit("]", 1)[-1]):
        return None
    name = (parts.hostname or "").rstrip(".")
    return name or None


def allowed_hosts(env: Mapping[str, str] | None = None, bind_address: str | None = None) -> frozenset[str]:
    """The host names the server answers.

    This machine's, the bind address (unless it is a wildcard such as ``0.0.0.0``) and the comma-separated
    names in ``VLEXPLORE_ALLOWED_HOSTS``.
    """
    env = os.environ if env is None else env
    names = set(DEFAULT_HOSTS)
    extra: list[str] = [p for p in (env.get(HOSTS_ENV) or "").split(",") if p.strip()]
    address = (bind_address or "").strip()
    if address not in WILDCARD_ADDRESSES and not address.startswith("unix://"):
        extra.append(address)
    for item in extra:
        name = parse_host(item)
        if name:
            names.add(name)
    return frozenset(names)


def is_allowed(host_header: str | None, allowed: Iterable[str]) -> bool:
    """``host_header`` (a raw ``Host`` value) names one of ``allowed``; a missing or malformed one does not."""
    name = parse_host(host_header)
    return name is not None and name in set(allowed)


def _scope_host(scope) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == b"host":
            return value.decode("latin-1")
    return None


async def _refuse(scope, receive, send) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(REFUSED_BODY)).encode()),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": REFUSED_BODY})
        return
    # websocket: answer the upgrade with a plain 403 where the server supports it, else close (also a 403)
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": REFUSED_BODY})
    else:
        await send({"type": "websocket.close", "code": 1008})


def refused(scope, allowed: frozenset[str]) -> bool:
    """An ASGI ``scope`` that is a request (page, file, websocket) with a Host outside ``allowed``."""
    return scope.get("type") in ("http", "websocket") and not is_allowed(_scope_host(scope), allowed)


def guard(app, allowed: Iterable[str]):
    """An ASGI app that passes requests with an allowed ``Host`` to ``app`` and refuses the rest."""
    allowed = frozenset(allowed)

    async def guarded(scope, receive, send):
        if refused(scope, allowed):
            await _refuse(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


def server_bind_address() -> str | None:
    """``server.address`` of the running Streamlit server (``None`` when unset)."""
    from streamlit import config

    return config.get_option("server.address")


def install(allowed: Iterable[str] | None = None) -> frozenset[str]:
    """Check the Host of every request Starlette serves from now on (idempotent; returns the allow-list).

    Streamlit builds its Starlette application before the script runs, and uvicorn calls it for
    every request; replacing ``Starlette.__call__`` on the class reaches that running instance.
    """
    from starlette.applications import Starlette

    current = getattr(Starlette.__call__, _MARK, None)
    if current is not None:
        return current
    names = frozenset(allowed) if allowed is not None else allowed_hosts(bind_address=server_bind_address())
    original = Starlette.__call__

    async def __call__(self, scope, receive, send):
        if refused(scope, names):
            await _refuse(scope, receive, send)
            return
        await original(self, scope, receive, send)

    setattr(__call__, _MARK, names)
    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    Starlette.__call__ = __call__
    return names


def session_allowed(allowed: Iterable[str]) -> bool:
    """Whether the current session's websocket was opened with an allowed Host.

    ``True`` outside a server, e.g. under ``AppTest``, where the session has no request headers.
    """
    import streamlit as st

    try:
        headers = st.context.headers
        host = headers.get("host") if headers else None
        if not headers:
            return True
    except Exception:  # no session context at all
        return True
    return is_allowed(host, allowed)


def enforce() -> None:
    """From the app script: install the request check, and stop this run if the session's Host is refused."""
    import streamlit as st

    names = install()
    if not session_allowed(names):
        st.error(
            "This address is not allowed to use the app (Host check against DNS rebinding). "
            f"Open it via localhost, or add the name to {HOSTS_ENV}.",
            icon=":material/block:",
        )
        st.stop()
