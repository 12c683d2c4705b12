"""Text from outside (a message's fields, an environment value) made safe to print.

A terminal acts on some characters instead of showing them: C0 and C1 controls
(ESC starts CSI and OSC sequences that move, clear or retitle the screen; a
newline splits a one-line error), and invisible format characters that reorder or
hide text (bidirectional overrides and isolates, zero-width and tag characters,
line and paragraph separators). :func:`escape` writes each of them as ``\\uXXXX``.
"""

from __future__ import annotations

import unicodedata


def _unsafe(c: str) -> bool:
    return unicodedata.category(c)[0] == "C" or c in "\u2028\u2029"


def escape(text: str) -> str:
    """``text`` with every character a terminal would act on, or that hides text,
    written as ``\\uXXXX`` (``\\UXXXXXXXX`` past the basic plane)."""
    if text.isprintable():  # the common case, in C: nothing to do
        return text
    return "".join((f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") if _unsafe(c) else c
                   for c in text)
