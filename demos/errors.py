"""Mistakes a user can fix, as types (DESIGN §4).

A ``UserError`` carries a message that says what to change; the UI shows it without blanking anything, the API
answers it with a 4xx, the log gets one line and no traceback. Anything that is not a ``UserError`` is a bug or
a failure of the machine and is logged with its traceback.

``UserError`` derives from ``ValueError`` so that callers written before it existed keep treating it as bad
input; new code raises and catches ``UserError`` itself, never ``ValueError`` wholesale.
"""
from __future__ import annotations

from typing import Literal

Kind = Literal["bad-input", "unknown-id", "not-cached", "device", "draft", "too-long", "too-large", "limit"]


class UserError(ValueError):
    """A mistake the user can fix; ``str()`` is the whole message, ``param`` the input it is about (if one)."""

    kind: Kind = "bad-input"

    def __init__(self, message: str, *, param: str | None = None, kind: Kind | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        return self.message


class TooLong(UserError):
    """A prompt, chat or text longer than what the model (or the catalog's limit) takes."""

    kind: Kind = "too-long"


class TooLarge(UserError):
    """An upload or payload over the size the app accepts."""

    kind: Kind = "too-large"
