"""docs/api.md lists the facade exactly: every name of ``vlexplore.__all__``, and no other ``vx.`` name."""

from __future__ import annotations

import re
from pathlib import Path

import vlexplore as vx

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
FACADE_HEADING = "## The facade"


def _documented(text: str) -> set[str]:
    return set(re.findall(r"`vx\.([A-Za-z_][A-Za-z0-9_]*)", text))


def _facade_section(text: str) -> str:
    start = text.index(FACADE_HEADING)
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_every_facade_name_is_documented_in_the_facade_section():
    section = _facade_section(API_DOC.read_text(encoding="utf-8"))
    missing = sorted(set(vx.__all__) - _documented(section))
    assert not missing, f"docs/api.md does not document {missing}"


def test_the_docs_name_nothing_the_facade_lacks():
    extra = sorted(_documented(API_DOC.read_text(encoding="utf-8")) - set(vx.__all__))
    assert not extra, f"docs/api.md documents {extra}, which vlexplore does not export"


def test_every_facade_name_resolves_under_its_own_name():
    import vlexplore.cluster
    import vlexplore.evaluate
    import vlexplore.project
    import vlexplore.search  # noqa: F401

    for name in vx.__all__:
        value = getattr(vx, name)
        assert value is not None
        own = getattr(value, "__name__", name)
        if callable(value) and not isinstance(value, type) and own != "<lambda>":
            assert own == name, f"vx.{name} is {own}"
    assert len(set(vx.__all__)) == len(vx.__all__)
