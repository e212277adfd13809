"""Text that people will read: no characters that make it display as something else.

Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069) reorder
what follows them, so `‮gpj.exe` shows as `exe.jpg` and a title can show a
different project code or amount than it holds; control characters are
invisible or break lines where none should be. One-line names (titles, data
keys, directory names) refuse both, and the bidi marks (U+200E, U+200F,
U+061C) too; multi-line text (an event's body, data values) keeps tab, line
feed and carriage return and the marks, which mixed-script prose needs.
"""

from __future__ import annotations

import re

_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_BIDI_MARKS = "\u200e\u200f\u061c"
# Cc: C0, DEL and C1.
LINE_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_CONTROLS}{_BIDI_MARKS}]")
TEXT_UNSAFE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")


def line_problem(value: str) -> str | None:
    """Why `value` may not be a one-line name, or None if it may."""
    return _problem(LINE_UNSAFE.search(value))


def text_problem(value: str) -> str | None:
    """Why `value` may not be shown as (multi-line) text, or None if it may."""
    return _problem(TEXT_UNSAFE.search(value))


def _problem(found: re.Match[str] | None) -> str | None:
    if found is None:
        return None
    char = found.group()
    kind = "a control character" if char <= "\x9f" else "a bidirectional formatting character"
    return f"must not contain {kind} (U+{ord(char):04X})"
