"""Literals for the Show-code views: Python and C++ spellings of the values a snippet passes to openvino_genai."""
from __future__ import annotations

import json
from typing import Any


def cpp_string(text: str) -> str:
    """A C++ string literal (JSON's escapes — ``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX`` — are valid C++ too)."""
    return json.dumps(text, ensure_ascii=False)


def cpp_value(value: Any) -> str:
    """A property value as C++: ``true``/``false``, numbers as written, anything else as a string literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return cpp_string(str(value))


def py_string(text: str) -> str:
    """A Python string literal in double quotes (the same spelling as ``cpp_string`` for any printable text)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be written raw into a UTF-8 file: escape it
        return json.dumps(text)
    return json.dumps(text, ensure_ascii=False)


def comment_text(text: str) -> str:
    """``text`` fit for a ``#`` or ``//`` comment: a line break (or any unprintable character) inside it would end
    the comment and turn the rest into code, so each becomes '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)
