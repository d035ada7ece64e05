"""Checks of the numbers (and flags) users and API clients send, shared by every panel.

NaN and infinity are floats to Python, and every comparison with NaN is False: ``nan <= 0`` and ``nan > 4``
both pass, so a NaN slips through range checks and reaches the pipeline (a NaN style weight gave an all-black
picture). JSON clients can send NaN and Infinity, strings and integers far beyond any C type. These helpers
turn each into a ``UserError`` naming the parameter, never Python's own exception text.
"""
from __future__ import annotations

import math
import reprlib
from typing import Any

from demos.core.errors import UserError

# Whole numbers beyond this reach C++ as overflowing int32/size_t values; no setting of the suite needs more.
INT_LIMIT = 2**31 - 1
_SHOWN_CHARS = 80
_REPR = reprlib.Repr()  # Python 3.11's takes no keyword arguments
_REPR.maxstring = _REPR.maxother = _SHOWN_CHARS
_REPR.maxlist = _REPR.maxdict = 8


def shown(value: Any) -> str:
    """``repr(value)`` cut to a readable length: a message must never carry a megabyte of someone's input (nor
    build its whole repr first: ``reprlib`` stops early on long strings and big containers)."""
    text = _REPR.repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 1] + "…"


def finite(name: str, value: Any) -> float:
    """``value`` as a float; ``UserError(param=name)`` for NaN, infinity, text, booleans and anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = f"the text {shown(value)}" if isinstance(value, str) else shown(value)
        raise UserError(f"{name} must be a number, not {what}", param=name)
    if isinstance(value, int):
        if abs(value) > 2**63:  # float() would overflow or lose every digit that matters
            raise UserError(f"{name} {value} is far too large: use a number of sensible size", param=name)
        return float(value)
    if math.isnan(value):
        raise UserError(f"{name} must be a number, not NaN", param=name)
    if math.isinf(value):
        raise UserError(f"{name} must be a finite number, not {'-' if value < 0 else ''}infinity", param=name)
    return float(value)


def whole(name: str, value: Any, lo: int | None = -INT_LIMIT, hi: int | None = INT_LIMIT) -> int:
    """``value`` as an int from ``lo`` to ``hi`` (None: unbounded, for callers that say the bound themselves);
    an integral float (3.0, as JSON and sliders send) counts."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        real = finite(name, value)
        if real != int(real):
            raise UserError(f"{name} must be a whole number, not {value!r}", param=name)
        number = int(real)
    if hi is not None and number > hi:
        raise UserError(f"{name} {_big(number)} is too large: use at most {hi}", param=name)
    if lo is not None and number < lo:
        raise UserError(f"{name} {_big(number)} is too small: use at least {lo}", param=name)
    return number


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool: true or false (or 1 and 0); Python's truthiness would take NaN, 'no' and 2 for True."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise UserError(f"{name} must be true or false, not {shown(value)}", param=name)


def _big(number: int) -> str:
    text = str(number)
    return text if len(text) <= 24 else f"{text[:6]}…({len(text)} digits)"
