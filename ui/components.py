"""Streamlit components v2 built from one JavaScript file each (the map, the thumbnail grid)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

_registered: dict[str, Callable] = {}


def available(js: Path) -> bool:
    """Whether a component from ``js`` can be used: the file is there and Streamlit has components v2."""
    if not js.is_file():
        return False
    try:
        from streamlit.components.v2 import component  # noqa: F401
    except ImportError:
        return False
    return True


def component(name: str, js: Path) -> Callable:
    """The component ``name`` from the ES module ``js``, registered once per process."""
    if name not in _registered:
        from streamlit.components.v2 import component as make

        _registered[name] = make(name, js=js.read_text(encoding="utf-8"), isolate_styles=False)
    return _registered[name]
