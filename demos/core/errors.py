"""Mistakes a user can fix, as types (DESIGN §4).

A ``UserError`` carries a message that says what to change; the UI shows it without blanking anything, the API
answers it with a 4xx, the log gets one line and no traceback. Anything that is not a ``UserError`` is a bug or
a failure of the machine and is logged with its traceback.

``UserError`` derives from ``ValueError`` so that callers written before it existed keep treating it as bad
input; new code raises and catches ``UserError`` itself, never ``ValueError`` wholesale.
"""
from __future__ import annotations

from typing import Literal

Kind = Literal["bad-input", "unknown-id", "not-cached", "device", "draft", "too-long", "too-large", "limit", "backend"]


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


class UnknownId(UserError, KeyError):
    """An id (model, adapter, draft, style) that the catalog does not have; the message lists the valid ones.

    Also a ``KeyError``, so callers written when ``Catalog.entry`` raised ``KeyError`` keep working.
    """

    kind: Kind = "unknown-id"

    __str__ = UserError.__str__  # first in the MRO anyway; said here because KeyError's quotes the message


def check_text(value: str, param: str) -> str:
    """``value`` unchanged, or a ``UserError`` naming ``param`` when it holds a lone UTF-16 surrogate.

    JSON may carry "\\ud800" on its own; Python keeps it in the str, and the tokenizer then fails with
    OpenVINO's exception text (UTF-8 cannot encode it). Refuse it here with its position instead.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # the only str that UTF-8 cannot encode holds a surrogate
            raise UserError(f"{param} contains an invalid character (a lone surrogate at position {exc.start}); "
                            "remove it or send the text as valid UTF-8", param=param) from None
    return value
