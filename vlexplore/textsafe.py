r"""Untrusted text (file names, folder names, captions, cluster names) made safe to print on a terminal.

A file name may hold ESC sequences (``\x1b]0;title\x07`` retitles the window, ``\x1b[2K`` wipes
the line), carriage returns or newlines, which let it overwrite or forge lines of a report.
:func:`printable` escapes them; ordinary Unicode (accents, CJK, emoji) is kept.
"""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 controls, DEL, C1 controls; Unicode line/paragraph separators and the bidirectional
# overrides/isolates (they reorder what a terminal shows); lone surrogates (undecodable bytes of a
# file name, which ``print`` cannot even encode).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object) -> str:
    r"""``str(text)`` with control characters escaped.

    As ``\n``, ``\r``, ``\t``, else ``\xNN`` / ``\uNNNN`` (ESC → ``\x1b``, DEL → ``\x7f``, U+202E →
    ``\u202e``); everything else unchanged.
    """
    return _UNSAFE.sub(_escape, str(text))
